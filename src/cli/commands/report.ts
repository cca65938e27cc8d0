import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { systemClock, type Clock } from '../../clock.js';
import type { GatewayConfig } from '../../config/index.js';
import {
  Books,
  BooksError,
  formatUnits,
  LOAD_STATUS_LABELS,
  LOAD_STATUSES,
  localDate,
  localDateTime,
  parseBooksDate,
  parseBooksMonth,
  periodLabel,
  reportCsv,
  reportJson,
  unitLabel,
  type BooksPeriod,
  type BooksReport,
  type BooksSum,
} from '../../services/books/index.js';
import { openStore } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { CliError, usageError } from '../errors.js';
import { columns } from '../table.js';

export interface ReportCommandDeps {
  /** Default systemClock; decides "today", "this month" and how far confirmations are known. */
  readonly clock?: Clock;
}

type Format = 'table' | 'csv' | 'json';

interface CommonOptions {
  config: string;
  operator?: string;
  format: Format;
}

/**
 * `meterd report daily|monthly`: the cashier's books for a local day or month, as a table, CSV or JSON.
 *
 * ```ts
 * registerReportCommand(program, { out: console.log });
 * // meterd report daily --date 2026-11-27 --operator alice -c /etc/meterd/meterd.yaml
 * ```
 */
export function registerReportCommand(program: Command, io: { out: (line: string) => void }, deps: ReportCommandDeps = {}): Command {
  const clock = deps.clock ?? systemClock;
  const report = program
    .command('report')
    .description(
      "the books: sales, refunds and allowances per operator and channel, where each load stands, and the meters' purchase counters reconciled",
    );

  const common = (c: Command) =>
    c
      .requiredOption('-c, --config <file>', 'the gateway config (YAML): its dataDir holds the books, its time zone decides the days')
      .option('--operator <name>', "only this operator's sales and refunds (the reconciliation stays whole)")
      .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'));

  common(
    report
      .command('daily')
      .description('the books of one local day (default: today)')
      .option('--date <YYYY-MM-DD>', "the day, in the gateway's time zone"),
  )
    .addHelpText(
      'after',
      `
Examples:
  meterd report daily -c /etc/meterd/meterd.yaml                       # today so far
  meterd report daily --date 2026-11-27 --operator alice -c /etc/meterd/meterd.yaml
  meterd report daily --date 2026-11-27 --format csv -c /etc/meterd/meterd.yaml > 2026-11-27.csv

Amounts are yuan (CNY) for money wallets and kWh for energy wallets, never added together. A card sale counts as
applied once the meter's purchase counter has reached the card's count; until then it is awaiting meter confirmation.
The daemon publishes each closed day on reports/daily at 00:05.`,
    )
    .action((opts: CommonOptions & { date?: string }) => {
      const config = loadConfigFile(opts.config);
      const date = opts.date === undefined ? localDate(clock.now(), config.gateway.timeZone) : checked(() => parseBooksDate(opts.date!));
      print(io, run(config, clock, { kind: 'daily', date }, opts.operator), opts.format);
    });

  common(
    report
      .command('monthly')
      .description('the books of one local month (default: this month)')
      .option('--month <YYYY-MM>', "the month, in the gateway's time zone"),
  )
    .addHelpText('after', '\nExample:\n  meterd report monthly --month 2026-11 --format json -c /etc/meterd/meterd.yaml\n')
    .action((opts: CommonOptions & { month?: string }) => {
      const config = loadConfigFile(opts.config);
      const month =
        opts.month === undefined
          ? localDate(clock.now(), config.gateway.timeZone).slice(0, 7)
          : checked(() => parseBooksMonth(opts.month!));
      print(io, run(config, clock, { kind: 'monthly', month }, opts.operator), opts.format);
    });
  return report;
}

function run(config: GatewayConfig, clock: Clock, period: BooksPeriod, operator: string | undefined): BooksReport {
  const path = join(config.gateway.dataDir, 'meterd.db');
  if (!existsSync(path)) throw new CliError('STORE_MISSING', `no books at ${path}: the gateway has not run with this config's dataDir yet`);
  const store = openStore({ path, clock });
  try {
    return new Books({ store, clock, gateway: config.gateway, meters: config.meters }).report(
      period,
      operator === undefined ? {} : { operator },
    );
  } finally {
    store.close();
  }
}

function print(io: { out: (line: string) => void }, r: BooksReport, format: Format): void {
  const lines = format === 'json' ? [JSON.stringify(reportJson(r), null, 2)] : format === 'csv' ? reportCsv(r) : reportTable(r);
  for (const line of lines) io.out(line);
}

function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BooksError) throw usageError(err.message);
    throw err;
  }
}

// ─── Table ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** The report as aligned text: sums per operator and channel, totals, the state split, unconfirmed loads, reconciliation. */
export function reportTable(r: BooksReport): string[] {
  const out: string[] = [];
  const tz = r.timeZone;
  out.push(
    `${r.period.kind === 'daily' ? 'Daily' : 'Monthly'} books ${periodLabel(r.period)} (${tz}), gateway ${r.gatewayId}, as of ${localDateTime(r.asOf, tz)}${r.operator === null ? '' : `, operator ${r.operator} only`}`,
  );
  out.push('');
  if (r.totals.length === 0) out.push('No sales, refunds or allowances in this period.');
  else {
    out.push('Sales and refunds per operator and channel');
    const rows: string[][] = [['operator', 'channel', 'unit', 'loads', 'amount', 'refunds', 'amount', 'net']];
    const row = (operator: string, channel: string, s: BooksSum) => [
      operator,
      channel,
      unitLabel(s.unit),
      String(s.loads.count),
      formatUnits(s.loads.amount),
      String(s.refunds.count),
      formatUnits(s.refunds.amount),
      formatUnits(s.net),
    ];
    for (const l of r.lines) rows.push(row(name(l.operator), l.channel, l));
    if (r.byOperator.length > 1) for (const o of r.byOperator) rows.push(row(name(o.operator), 'all', o));
    if (r.byChannel.length > 1) for (const c of r.byChannel) rows.push(row('all', c.channel, c));
    for (const t of r.totals) rows.push(row('TOTAL', 'all', t));
    out.push(...columns(rows, [false, false, false, true, true, true, true, true]));
    out.push('');
    out.push('Cash (allowances and transfers are not cash)');
    for (const t of r.totals) {
      const u = unitLabel(t.unit);
      out.push(
        `  ${u}: sales ${t.cash.sales.count} = ${formatUnits(t.cash.sales.amount)}, refunds ${t.cash.refunds.count} = ${formatUnits(t.cash.refunds.amount)}, net ${formatUnits(t.cash.net)} ${u}` +
          (t.allowances.count > 0 ? `; allowances ${t.allowances.count} = ${formatUnits(t.allowances.amount)} ${u}` : '') +
          (t.transfers.count > 0 ? `; transfers from replaced meters ${t.transfers.count} = ${formatUnits(t.transfers.amount)} ${u}` : ''),
      );
    }
    out.push('');
    out.push('State of loads');
    const head = ['state', ...r.totals.flatMap((t) => [`count`, unitLabel(t.unit)])];
    const states = [
      head,
      ...LOAD_STATUSES.map((s) => [
        LOAD_STATUS_LABELS[s] + (s === 'refused' ? ' (not in sales)' : ''),
        ...r.totals.flatMap((t) => [String(t.states[s].count), formatUnits(t.states[s].amount)]),
      ]),
    ];
    out.push(...columns(states, [false, ...r.totals.flatMap(() => [true, true])]));
  }
  if (r.unconfirmed.length > 0) {
    out.push('');
    out.push('Loads not confirmed by their meter');
    const rows = [['time', 'meter', 'channel', 'operator', 'amount', 'count', 'state', 'request', 'why']];
    for (const u of r.unconfirmed) {
      rows.push([
        localDateTime(u.createdAt, tz),
        u.meterId,
        u.channel,
        name(u.operator),
        `${formatUnits(u.amount)} ${unitLabel(u.unit)}`,
        u.purchaseCount === null ? '-' : String(u.purchaseCount),
        LOAD_STATUS_LABELS[u.status],
        u.requestId,
        u.reason,
      ]);
    }
    out.push(...columns(rows, [false, false, false, false, true, true, false, false, false]));
  }
  out.push('');
  out.push("Reconciliation against the meters' purchase counters (all operators)");
  if (r.reconciliation.length === 0) out.push('  no meter had loads or a moving counter in this period');
  else {
    const rows = [['meter', 'counter', 'moved', 'books', 'difference', 'status']];
    for (const m of r.reconciliation) {
      const counter = m.opening && m.closing ? `${m.opening.count} -> ${m.closing.count}` : '-';
      rows.push([
        m.meterId,
        counter,
        m.counterDelta === null ? '-' : String(m.counterDelta),
        String(m.booksLoads),
        m.difference === null ? '-' : signed(m.difference),
        m.status,
      ]);
    }
    const table = columns(rows, [false, false, true, true, true, false]);
    out.push(table[0]!);
    r.reconciliation.forEach((m, i) => {
      out.push(table[i + 1]!);
      for (const w of m.swaps) out.push(`    * ${w.text}`);
      for (const f of m.findings) out.push(`    - ${f.meaning}`);
    });
  }
  if (r.supply !== null) out.push('', ...supplyTable(r));
  return out;
}

/** The month's cuts and restores (停(送)电记录): counts, then each confirmed one with who asked, approved or restored. */
function supplyTable(r: BooksReport): string[] {
  const s = r.supply!;
  const cuts = Object.entries(s.cuts);
  const total = cuts.reduce((n, [, c]) => n + c, 0);
  const out = [
    `Supply cut off and restored: ${total} cut${total === 1 ? '' : 's'} under a notice${cuts.length > 0 ? ` (${cuts.map(([k, c]) => `${k} ${c}`).join(', ')})` : ''}, ${s.restores} restored; plain relay commands: ${s.relayTrips} trip${s.relayTrips === 1 ? '' : 's'}, ${s.relayCloses} close${s.relayCloses === 1 ? '' : 's'}`,
  ];
  if (s.lines.length === 0) return out;
  const rows = [['time', 'meter', 'what', 'notice', 'reason', 'by', 'approved by', 'why']];
  for (const l of s.lines)
    rows.push([
      localDateTime(l.at, r.timeZone),
      l.meterId,
      l.kind,
      l.noticeId === null ? 'relay' : String(l.noticeId),
      l.reason ?? '-',
      l.by ?? '-',
      l.approvedBy ?? '-',
      l.why ?? '',
    ]);
  out.push(
    ...columns(
      rows,
      rows[0]!.map(() => false),
    ),
  );
  return out;
}

function name(operator: string | null): string {
  return operator ?? '-';
}

function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}
