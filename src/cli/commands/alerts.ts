import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { localDateTime } from '../../services/books/periods.js';
import { AlertService, AlertsError } from '../../services/alerts/service.js';
import { alertAckSchema } from '../../uplink/commands/schema.js';
import { openStore, type AlertRecord } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { defaultOperator, findDaemon, resultOf, sendToDaemon } from '../daemon-client.js';
import { CliError, usageError } from '../errors.js';

/** Adds `meterd alerts` (list) and `meterd alerts ack` (through the running daemon, else on the store directly). */
export function registerAlertsCommand(program: Command, io: { out: (line: string) => void }): void {
  const alerts = program
    .command('alerts')
    .description('meter-fault alerts: the active ones, or the history with --all; `alerts ack` acknowledges one')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .option('--meter <id>', 'only this meter')
    .option('--all', 'the history too (cleared alerts), newest first')
    .option('--json', 'print JSON lines')
    .addHelpText(
      'after',
      `
Examples:
  meterd alerts -c /etc/meterd/meterd.yaml                       # what is wrong now
  meterd alerts -c /etc/meterd/meterd.yaml --meter room-101 --all
  meterd alerts ack -c /etc/meterd/meterd.yaml room-101:cover-open:1764576060000 --operator wang --note "seal replaced"

Kinds, thresholds and how each clears: docs/alerts.md.`,
    )
    .action((opts: { config?: string; meter?: string; all?: boolean; json?: boolean }) => {
      const config = loadConfigFile(configPathOf(opts.config));
      if (opts.meter !== undefined && !config.meters.some((m) => m.id === opts.meter))
        throw usageError(`no meter "${opts.meter}" in ${config.source}`);
      ensureDataDir(config.gateway.dataDir);
      const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
      try {
        const list = opts.all
          ? store.alerts.history({ meterId: opts.meter })
          : store.alerts.active().filter((a) => opts.meter === undefined || a.meterId === opts.meter);
        if (opts.json) {
          for (const a of list) io.out(JSON.stringify(alertJson(a)));
          return;
        }
        const tz = config.gateway.timeZone;
        io.out(`${'raised'.padEnd(17)} ${'meter'.padEnd(12)} ${'kind'.padEnd(18)} ${'severity'.padEnd(9)} ${'state'.padEnd(22)} id`);
        for (const a of list) {
          const state = a.clearedAt === null ? 'active' : `cleared ${localDateTime(a.clearedAt, tz).slice(5)}`;
          io.out(
            `${localDateTime(a.raisedAt, tz).padEnd(17)} ${a.meterId.padEnd(12)} ${a.kind.padEnd(18)} ${a.severity.padEnd(9)} ${state.padEnd(22)} ${a.alertId}${a.unsynced ? '  (gateway clock unsynced)' : ''}`,
          );
          io.out(`${''.padEnd(17)} ${evidenceText(a.evidence)}`);
        }
        io.out(`${list.length} ${opts.all ? '' : 'active '}alert${list.length === 1 ? '' : 's'} (times in ${tz})`);
      } finally {
        store.close();
      }
    });

  alerts
    .command('ack <alertId>')
    .description('acknowledge an alert and leave a repair note; clears cover-open, purchase-mismatch and malignant-load')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .option('--operator <name>', 'who handled it (default: your user name)')
    .requiredOption('--note <text>', 'what was found and done')
    .action(async (alertId: string, _local: unknown, cmd: Command) => {
      // `-c` may come before or after `ack`: the parent command takes it when it comes first.
      const opts = cmd.optsWithGlobals<{ config?: string; operator?: string; note: string }>();
      const config = loadConfigFile(configPathOf(opts.config));
      const operator = opts.operator ?? defaultOperator();
      const request = { requestId: `cli-alert-ack-${randomUUID()}`, alertId, operator, note: opts.note };
      // The same schema as the station's alert-ack: one set of limits whichever door the request comes in by.
      const parsed = alertAckSchema.safeParse(request);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw usageError(`${issue.path.join('.') || 'alertId'}: ${issue.message}`);
      }
      const daemon = await findDaemon(config);
      if (daemon !== null) {
        const result = resultOf('alert-ack', await sendToDaemon(config, 'alert-ack', request, { operator }));
        io.out(
          `${alertId}: ${result.cleared ? 'acknowledged and cleared' : `acknowledged (still ${String(result.state)}: it clears when its cause is gone)`}`,
        );
        return;
      }
      ensureDataDir(config.gateway.dataDir);
      const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
      try {
        const r = new AlertService({ store, clock: systemClock, meters: [] }).acknowledge({ alertId, operator, note: opts.note });
        io.out(
          `${alertId}: ${r.cleared ? 'acknowledged and cleared' : `acknowledged (still ${r.alert.clearedAt === null ? 'raised' : 'cleared'})`}; the station hears it when the daemon starts`,
        );
      } catch (err) {
        if (err instanceof AlertsError) throw new CliError(err.code, err.message);
        throw err;
      } finally {
        store.close();
      }
    });
}

function configPathOf(option: string | undefined): string {
  const path = option ?? process.env.METERD_CONFIG;
  if (path === undefined || path === '') throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
  return path;
}

function alertJson(a: AlertRecord): Record<string, unknown> {
  return {
    alertId: a.alertId,
    meter: a.meterId,
    kind: a.kind,
    severity: a.severity,
    raisedAt: new Date(a.raisedAt).toISOString(),
    clearedAt: a.clearedAt === null ? null : new Date(a.clearedAt).toISOString(),
    clearedBy: a.clearedBy,
    evidence: a.evidence,
    ...(a.unsynced ? { unsynced: true } : {}),
  };
}

function evidenceText(evidence: Readonly<Record<string, unknown>>): string {
  return Object.entries(evidence)
    .filter(([k]) => k !== 'source')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join('  ');
}
