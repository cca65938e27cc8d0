import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { systemClock } from '../../clock.js';
import type { GatewayConfig } from '../../config/index.js';
import { localDateTime } from '../../services/books/periods.js';
import { supplyNoticeJson } from '../../services/supply/service.js';
import { OPEN_NOTICE_STATES, openStore, type SupplyNotice, type SupplyRecordLine } from '../../store/index.js';
import { COMMAND_SCHEMAS, type CommandName } from '../../uplink/commands/schema.js';
import { loadConfigFile } from '../config-file.js';
import { defaultOperator, findDaemon, resultOf, sendToDaemon, type DaemonRequest } from '../daemon-client.js';
import { CliError, usageError } from '../errors.js';
import { columns } from '../table.js';

type Io = { out: (line: string) => void };

/**
 * `meterd supply list|notice|approve|cancel|restore`: the 停(送)电 record and its steps. `list` reads the store; the
 * others go through the running daemon as the station's supply-* commands (the same schemas, record and replies).
 */
export function registerSupplyCommand(program: Command, io: Io): void {
  const supply = program
    .command('supply')
    .description('cut off and restore supply with a notice and a second person’s approval, and the 停(送)电 record')
    .addHelpText(
      'after',
      `
Examples:
  meterd supply notice -c /etc/meterd/meterd.yaml --meter room-101 --reason arrears --note "third reminder" --operator zhang
  meterd supply approve -c /etc/meterd/meterd.yaml --notice 12 --operator wang
  meterd supply list -c /etc/meterd/meterd.yaml --open
  meterd supply list -c /etc/meterd/meterd.yaml --notice 12          # every step of one notice
  meterd supply restore -c /etc/meterd/meterd.yaml --meter room-102 --reason "socket replaced" --operator chen

The cut happens at or after the notice's time (supply.noticeHours), outside supply.protectedWindows unless the
reason is safety, and is confirmed from the meter. A cut for arrears restores itself once a payment clears the arrears.
docs/lifecycle.md explains the steps.`,
    );

  supply
    .command('list')
    .description('the notices (newest first), or every step of one notice or meter (--notice, --record)')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .option('--meter <id>', 'only this meter')
    .option('--open', 'only notices in progress (waiting, approved, cut, being restored)')
    .option('--notice <id>', 'the record of one notice, step by step')
    .option('--record', 'the record (every step, plain relay commands too) instead of the notices')
    .option('--json', 'print JSON lines')
    .action((opts: { config?: string; meter?: string; open?: boolean; notice?: string; record?: boolean; json?: boolean }) => {
      const config = loadConfigFile(configPathOf(opts.config));
      const noticeId = opts.notice === undefined ? undefined : noticeIdOf(opts.notice);
      const path = join(config.gateway.dataDir, 'meterd.db');
      if (!existsSync(path))
        throw new CliError('STORE_MISSING', `no store at ${path}: the gateway has not run with this config's dataDir yet`);
      const store = openStore({ path, clock: systemClock });
      try {
        const tz = config.gateway.timeZone;
        if (opts.record || noticeId !== undefined) {
          if (noticeId !== undefined && store.supply.notice(noticeId) === null)
            throw new CliError('UNKNOWN_NOTICE', `no supply notice ${noticeId} in ${path}`);
          const lines = store.supply.record({ meterId: opts.meter, noticeId });
          if (opts.json) for (const l of lines) io.out(JSON.stringify(recordJson(l)));
          else printRecord(io, lines, tz);
          return;
        }
        const notices = store.supply.list({ meterId: opts.meter, ...(opts.open ? { states: OPEN_NOTICE_STATES } : {}) });
        if (opts.json) for (const n of notices) io.out(JSON.stringify(supplyNoticeJson(n)));
        else printNotices(io, notices, tz);
      } finally {
        store.close();
      }
    });

  const send = async <C extends CommandName>(configPath: string | undefined, command: C, request: DaemonRequest<C>, json: boolean) => {
    const config = loadConfigFile(configPathOf(configPath));
    const parsed = COMMAND_SCHEMAS[command].safeParse(request);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw usageError(`${issue.path.join('.')}: ${issue.message}`);
    }
    const result = resultOf(command, await viaDaemon(config, command, request));
    if (json) io.out(JSON.stringify(result));
    return { config, result };
  };

  supply
    .command('notice')
    .description('give notice of a cut: recorded with its earliest time; nothing is cut before a second person approves')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .requiredOption('--meter <id>', 'the meter to cut')
    .addOption(new Option('--reason <reason>', 'why').choices(['arrears', 'safety', 'customer-request', 'other']).makeOptionMandatory())
    .option('--note <text>', 'what the notice says (reminders sent, the danger found, …)')
    .option('--operator <name>', 'who asks for the cut (default: your user name)')
    .option('--json', 'print the notice as JSON')
    .action(async (opts: { config?: string; meter: string; reason: 'arrears'; note?: string; operator?: string; json?: boolean }) => {
      const request = {
        requestId: `cli-supply-notice-${randomUUID()}`,
        meter: opts.meter,
        reason: opts.reason,
        operator: opts.operator ?? defaultOperator(),
        ...(opts.note !== undefined ? { note: opts.note } : {}),
      };
      const { config, result } = await send(opts.config, 'supply-notice', request, opts.json === true);
      if (opts.json) return;
      const tz = config.gateway.timeZone;
      io.out(
        `notice ${String(result.noticeId)} for ${opts.meter} (${opts.reason}) recorded; earliest cut ${local(result.earliestAt, tz)}, planned ${local(result.plannedAt, tz)} (${tz}); it needs a second person's approval: meterd supply approve --notice ${String(result.noticeId)}`,
      );
    });

  supply
    .command('approve')
    .description('approve a notice (not your own): the gateway then cuts at its planned time and confirms it')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .requiredOption('--notice <id>', 'the notice id')
    .option('--operator <name>', 'who approves (default: your user name)')
    .option('--json', 'print the notice as JSON')
    .action(async (opts: { config?: string; notice: string; operator?: string; json?: boolean }) => {
      const request = {
        requestId: `cli-supply-approve-${randomUUID()}`,
        noticeId: noticeIdOf(opts.notice),
        operator: opts.operator ?? defaultOperator(),
      };
      const { config, result } = await send(opts.config, 'supply-approve', request, opts.json === true);
      if (!opts.json)
        io.out(
          `notice ${String(result.noticeId)} approved by ${String(result.approvedBy)}: ${String(result.meter)} is cut at ${local(result.plannedAt, config.gateway.timeZone)} (${config.gateway.timeZone}) or later`,
        );
    });

  supply
    .command('cancel')
    .description('cancel a notice not carried out yet')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .requiredOption('--notice <id>', 'the notice id')
    .option('--operator <name>', 'who cancels (default: your user name)')
    .option('--json', 'print the notice as JSON')
    .action(async (opts: { config?: string; notice: string; operator?: string; json?: boolean }) => {
      const request = {
        requestId: `cli-supply-cancel-${randomUUID()}`,
        noticeId: noticeIdOf(opts.notice),
        operator: opts.operator ?? defaultOperator(),
      };
      const { result } = await send(opts.config, 'supply-cancel', request, opts.json === true);
      if (!opts.json) io.out(`notice ${String(result.noticeId)} for ${String(result.meter)} cancelled`);
    });

  supply
    .command('restore')
    .description("restore a meter's supply: close its relay and confirm it; its cut notice ends restored")
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)')
    .requiredOption('--meter <id>', 'the meter')
    .requiredOption('--reason <text>', 'why (paid at the counter, repair done, …)')
    .option('--operator <name>', 'who restores (default: your user name)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { config?: string; meter: string; reason: string; operator?: string; json?: boolean }) => {
      const request = {
        requestId: `cli-supply-restore-${randomUUID()}`,
        meter: opts.meter,
        operator: opts.operator ?? defaultOperator(),
        reason: opts.reason,
      };
      const { result } = await send(opts.config, 'supply-restore', request, opts.json === true);
      if (!opts.json)
        io.out(
          `${opts.meter}: relay ${String(result.relay)}, confirmed by the meter${result.noticeId !== undefined ? `; notice ${String(result.noticeId)} restored` : ''}`,
        );
    });
}

async function viaDaemon<C extends CommandName>(config: GatewayConfig, command: C, request: DaemonRequest<C>) {
  if ((await findDaemon(config)) === null)
    throw new CliError(
      'DAEMON_NOT_RUNNING',
      `no meterd daemon runs for ${config.source}: cuts and restores are carried out by the daemon (systemctl start meterd)`,
    );
  return sendToDaemon(config, command, request, { operator: (request as { operator?: string }).operator ?? defaultOperator() });
}

function configPathOf(option: string | undefined): string {
  const path = option ?? process.env.METERD_CONFIG;
  if (path === undefined || path === '') throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
  return path;
}

function noticeIdOf(text: string): number {
  const n = Number(text);
  if (!/^\d{1,15}$/.test(text) || n < 1) throw usageError(`--notice is a notice id (a whole number), not "${text}"`);
  return n;
}

function local(iso: unknown, tz: string): string {
  return typeof iso === 'string' ? localDateTime(Date.parse(iso), tz) : '-';
}

function printNotices(io: Io, notices: readonly SupplyNotice[], tz: string): void {
  const rows = [['notice', 'meter', 'reason', 'state', 'asked by', 'approved by', 'earliest', 'cut', 'restored', 'by']];
  const t = (ms: number | null) => (ms === null ? '-' : localDateTime(ms, tz));
  for (const n of notices)
    rows.push([
      String(n.id),
      n.meterId,
      n.reason,
      n.state,
      n.requestedBy,
      n.approvedBy ?? '-',
      t(n.earliestAt),
      t(n.tripConfirmedAt),
      t(n.restoredAt),
      n.restoredBy ?? (n.cancelledBy !== null ? `cancelled by ${n.cancelledBy}` : '-'),
    ]);
  for (const line of columns(
    rows,
    rows[0]!.map(() => false),
  ))
    io.out(line);
  io.out(`${notices.length} notice${notices.length === 1 ? '' : 's'} (times in ${tz})`);
}

function printRecord(io: Io, lines: readonly SupplyRecordLine[], tz: string): void {
  const rows = [['time', 'meter', 'notice', 'step', 'operator', 'reason', 'detail']];
  for (const l of lines)
    rows.push([
      localDateTime(l.at, tz),
      l.meterId,
      l.noticeId === null ? '-' : String(l.noticeId),
      l.step,
      l.operator ?? '-',
      l.reason ?? '-',
      l.detail === null
        ? ''
        : Object.entries(l.detail)
            .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
            .join(' '),
    ]);
  for (const line of columns(
    rows,
    rows[0]!.map(() => false),
  ))
    io.out(line);
  io.out(`${lines.length} step${lines.length === 1 ? '' : 's'} (times in ${tz})`);
}

function recordJson(l: SupplyRecordLine): Record<string, unknown> {
  return {
    at: new Date(l.at).toISOString(),
    meter: l.meterId,
    noticeId: l.noticeId,
    step: l.step,
    operator: l.operator,
    reason: l.reason,
    requestId: l.requestId,
    detail: l.detail,
  };
}
