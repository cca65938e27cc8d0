import type { Command } from 'commander';
import type { DaemonStatus } from '../../control/index.js';
import { daemonStatus } from '../daemon-client.js';
import { routeCommand } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

export function registerStatusCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('status')
    .description('what the running daemon is doing now: uptime, broker, buses, meters, outbox, alerts, batches')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .option('--json', 'print the status as one JSON object')
    .option('--watch [seconds]', 'refresh every few seconds (default 2) until Ctrl-C')
    .addHelpText(
      'after',
      `
Examples:
  meterd status -c /etc/meterd/meterd.yaml
  meterd status -c /etc/meterd/meterd.yaml --json | jq .outbox
  meterd status -c /etc/meterd/meterd.yaml --watch 5

Asks the daemon over its control socket (control.socket, default <dataDir>/meterd.sock).
Exit code 0 when the daemon answered; 1 when none runs for the config (DAEMON_NOT_RUNNING).`,
    )
    .action(async (opts: { config?: string; json?: boolean; watch?: string | boolean }) => {
      const route = await routeCommand(opts);
      if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
      if (route.daemon === null)
        throw new CliError(
          'DAEMON_NOT_RUNNING',
          `no daemon runs for ${route.configPath} (nothing answers on ${route.config.control.socketPath}); start it: systemctl start meterd`,
        );
      const show = async () => {
        const status = await daemonStatus(route.config);
        if (opts.json) io.out(JSON.stringify(status));
        else for (const line of statusLines(status)) io.out(line);
      };
      if (opts.watch === undefined) return show();
      const seconds = opts.watch === true ? 2 : Number(opts.watch);
      if (!Number.isFinite(seconds) || seconds < 0.5 || seconds > 3600) throw usageError('--watch takes seconds, 0.5 to 3600');
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      while (!stop.signal.aborted) {
        // Clear the screen between frames on a terminal; a pipe gets one block after the other.
        if (!opts.json && process.stdout.isTTY) io.out('\x1b[2J\x1b[H');
        await show();
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, seconds * 1000);
          stop.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
        });
      }
    });
}

/** One screen of the status, for people. */
export function statusLines(s: DaemonStatus): string[] {
  const age = s.outbox.oldestAgeSeconds === null ? 'empty' : `oldest ${duration(s.outbox.oldestAgeSeconds)}`;
  return [
    `meterd ${s.version}, gateway ${s.gatewayId}, pid ${s.pid}, up ${duration(s.uptimeSeconds)} (since ${s.startedAt})`,
    `broker   ${s.broker.connected ? 'connected' : 'NOT CONNECTED'} ${s.broker.url}`,
    ...s.buses.map(
      (b) => `bus      ${b.id}: ${b.state}, load ${Math.round(b.utilisation * 100)} %, ${b.queued} queued, ${b.skippedPolls} polls skipped`,
    ),
    `meters   ${s.meters.total}: ${s.meters.online} online, ${s.meters.offline} offline, ${s.meters.unreachable} unreachable`,
    `outbox   ${s.outbox.depth} message(s), ${age}, ${s.outbox.deadLetters} dead letter(s)`,
    `commands ${s.commands.running} running`,
    `alerts   ${s.alerts.active} active`,
    `batches  ${s.batches.inProgress} in progress`,
    `memory   ${s.memoryMiB.rss} MiB resident, heap ${s.memoryMiB.heapUsed} MiB, running the ${s.build === 'bundle' ? 'production build' : 'TypeScript sources (npm run build and NODE_ENV=production for a gateway)'}`,
  ];
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}
