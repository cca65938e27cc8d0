import { existsSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Dlt645Decoder, type Frame } from '../../../protocols/dlt645/index.js';
import { openBus, responseTimeoutMs, type FrameBus } from '../../bus/index.js';
import { systemClock } from '../../clock.js';
import { redactUrl } from '../../config/broker-url.js';
import { ConfigError, loadGatewayConfig, type GatewayConfig } from '../../config/index.js';
import { formatIssue } from '../../config/yaml-source.js';
import { Dlt645Meter } from '../../devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../devices/dlt645-points.js';
import { openStore, walSizing } from '../../store/index.js';
import { unsignedCommandsRisk } from '../../uplink/commands/auth-policy.js';
import { probeBroker } from '../../uplink/probe.js';
import { registerDisagreements } from '../register-check.js';
import { CliError } from '../errors.js';

interface Check {
  ok: boolean;
  /** Passes, but names a risk the operator should know about (printed WARN, not counted as a failure). */
  warn?: boolean;
  what: string;
  detail?: string;
}

/** Free space below which the gateway risks filling the card before the storage cap prunes. */
const MIN_FREE_BYTES = 100 * 1024 * 1024;

export function registerDoctorCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('doctor')
    .description('check an installation: config, serial ports, each meter, the broker login, the database, disk space')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--json', 'print the checks as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  sudo -u meterd meterd doctor -c /etc/meterd/meterd.yaml\n\nRun it while the daemon is stopped: a serial port can be open in one program only.\n',
    )
    .action(async (opts: { config: string; json?: boolean }) => {
      const checks: Check[] = [];
      const report = (c: Check) => {
        checks.push(c);
        if (!opts.json) io.out(`${c.ok ? (c.warn ? 'WARN' : 'PASS') : 'FAIL'}  ${c.what}${c.detail ? `: ${c.detail}` : ''}`);
      };
      let config: GatewayConfig;
      try {
        config = loadGatewayConfig(opts.config);
        report({ ok: true, what: `config ${opts.config}`, detail: `${config.buses.length} bus(es), ${config.meters.length} meter(s)` });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        report({ ok: false, what: `config ${opts.config}`, detail: err.issues.map(formatIssue).join('; ') });
        return finish(checks, opts.json, io);
      }
      const risk = unsignedCommandsRisk(config.commands);
      if (risk !== undefined) report({ ok: true, warn: true, what: 'station commands are not authenticated', detail: risk });
      else if (config.commands.hmacKey !== undefined) report({ ok: true, what: 'station commands must be signed (commands.hmacKey)' });
      else
        report({
          ok: true,
          what: 'station commands that move money or cut power are refused',
          detail: 'no commands.hmacKey is set, so only read and card-read run; set a key to allow top-ups and relay commands',
        });

      for (const b of config.buses) {
        if (b.protocol !== 'dlt645') {
          report({ ok: false, what: `bus ${b.id} (${b.port})`, detail: `${b.protocol} checks are not supported by this build` });
          continue;
        }
        let bus: FrameBus<Frame>;
        try {
          bus = await openBus<Frame>({ id: b.id, port: b.port, line: b.line, decoder: new Dlt645Decoder(), gapMs: b.gapMs });
          report({ ok: true, what: `bus ${b.id}: port ${b.port} opens` });
        } catch (err) {
          report({ ok: false, what: `bus ${b.id}: port ${b.port} opens`, detail: (err as Error).message });
          for (const m of config.meters.filter((x) => x.busId === b.id))
            report({ ok: false, what: `meter ${m.id} answers`, detail: `bus ${b.id} is not open` });
          continue;
        }
        const timeoutMs = b.timeoutMs ?? responseTimeoutMs({ settings: b.line, requestBytes: 24, expectedReplyBytes: 64 });
        for (const m of config.meters.filter((x) => x.busId === b.id)) {
          const meter = new Dlt645Meter({
            link: bus,
            address: m.address!,
            edition: m.profile.protocol === 'dlt645-1997' ? '1997' : '2007',
            timeoutMs,
            readRetries: b.retries,
          });
          const point = m.profile.groups[0]?.points[0];
          try {
            const values = await new Dlt645PointReader(meter, m.profile).read(point ? [point] : [], { priority: 'operator' });
            const v = point ? values.get(point) : undefined;
            report({
              ok: true,
              what: `meter ${m.id} (${m.address}) answers`,
              detail: v && 'v' in v ? `${point} = ${v.v} ${v.unit}`.trim() : undefined,
            });
          } catch (err) {
            report({
              ok: false,
              what: `meter ${m.id} (${m.address}) answers`,
              detail: `${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}`,
            });
          }
        }
        await bus.close();
      }

      // Every node of a cluster: the gateway moves to any of them when the one it uses goes.
      for (const endpoint of config.mqtt.brokers) {
        try {
          await probeBroker(config.mqtt, 5000, endpoint);
          report({ ok: true, what: `broker ${redactUrl(endpoint.url)} accepts the credentials` });
        } catch (err) {
          report({
            ok: false,
            what: `broker ${redactUrl(endpoint.url)} accepts the credentials`,
            detail: (err as Error).message,
          });
        }
      }

      const dbPath = join(config.gateway.dataDir, 'meterd.db');
      if (!existsSync(dbPath)) report({ ok: true, what: `database ${dbPath}`, detail: 'not created yet (the daemon creates it)' });
      else {
        try {
          const store = openStore({ path: dbPath, clock: systemClock });
          const r = store.integrityCheck();
          const pending = store.outbox.counts();
          const deadLetters = store.deadLetters.count();
          store.close();
          report({
            ok: r.ok,
            what: `database ${dbPath} integrity`,
            detail: r.ok ? `ok, ${pending.total} message(s) waiting for the broker` : r.messages.join('; '),
          });
          for (const d of registerDisagreements(config))
            report({ ok: true, warn: true, what: `meter ${d.meterId} address in the config`, detail: d.message });
          if (deadLetters > 0) {
            report({
              ok: true,
              warn: true,
              what: 'messages the broker refused for good',
              detail: `${deadLetters} dead letter(s) kept in the store: check the broker ACL for this gateway and its message size limit`,
            });
          }
        } catch (err) {
          report({ ok: false, what: `database ${dbPath}`, detail: (err as Error).message });
        }
      }

      const where = existsSync(config.gateway.dataDir) ? config.gateway.dataDir : join(config.gateway.dataDir, '..');
      try {
        const fs = statfsSync(where);
        const free = fs.bavail * fs.bsize;
        report({
          ok: free >= MIN_FREE_BYTES,
          what: `disk space at ${where}`,
          detail: `${(free / 1024 ** 3).toFixed(2)} GiB free${free < MIN_FREE_BYTES ? ' (below 100 MiB)' : ''}`,
        });
        // The WAL grows to its checkpoint size before it is reused; if that does not fit, the first commits fail.
        const wal = walSizing(fs.blocks * fs.bsize, SQLITE_PAGE_SIZE);
        const walNow = existsSync(`${dbPath}-wal`) ? statSync(`${dbPath}-wal`).size : 0;
        const needed = Math.max(0, wal.journalSizeLimitBytes - walNow);
        report({
          ok: free >= needed,
          what: `room for the WAL at ${where}`,
          detail:
            `${kib(free)} free, the WAL needs ${kib(needed)} more to reach its checkpoint size (${kib(wal.journalSizeLimitBytes)})` +
            (free >= needed ? '' : ': free space or move gateway.dataDir, or the store reports STORE_FULL'),
        });
      } catch (err) {
        report({ ok: false, what: `disk space at ${where}`, detail: (err as Error).message });
      }
      finish(checks, opts.json, io);
    });
}

/** SQLite's default page size, which the store keeps. */
const SQLITE_PAGE_SIZE = 4096;

function kib(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

function finish(checks: Check[], json: boolean | undefined, io: { out: (line: string) => void }): void {
  if (json) io.out(JSON.stringify(checks));
  const failed = checks.filter((c) => !c.ok).length;
  if (failed > 0) throw new CliError('DOCTOR_FAILED', `${failed} of ${checks.length} check(s) failed`);
  const warned = checks.filter((c) => c.warn).length;
  if (!json) io.out(`all ${checks.length} checks passed${warned > 0 ? `, ${warned} with a warning` : ''}`);
}
