import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock, type Clock } from '../../clock.js';
import type { GatewayConfig } from '../../config/index.js';
import { addDays, BooksError, localDate, parseBooksDate, parseBooksMonth } from '../../services/books/index.js';
import { explainDay, linelossSeries, type Explanation, type LinelossSeries } from '../../services/lineloss/index.js';
import { openStore, type Store, type StoredFigure } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { CliError, usageError } from '../errors.js';
import { columns } from '../table.js';
import { csvField } from '../../values/index.js';

export interface LinelossCommandDeps {
  /** Default systemClock: decides "this month". */
  readonly clock?: Clock;
}

interface SeriesOptions {
  config?: string;
  district?: string;
  from?: string;
  to?: string;
  month?: string;
  json?: boolean;
  csv?: boolean;
}

/**
 * `meterd lineloss`: each district's daily line loss with its class, and the month's figure; `meterd lineloss
 * explain`: the members behind one day. Reads the gateway's database directly (only reads), as `meterd report` does,
 * so it works with or without the daemon running.
 */
export function registerLinelossCommand(program: Command, io: { out: (line: string) => void }, deps: LinelossCommandDeps = {}): Command {
  const clock = deps.clock ?? systemClock;
  const cmd = program
    .command('lineloss')
    .description("line loss per transformer district from the meters' daily freezes: each day with its class, and the month")
    // Not a requiredOption: commander would then demand it before `explain` too, which has its own.
    .option('-c, --config <file>', 'the gateway config (YAML), required: its dataDir holds the figures, its time zone decides the days')
    .option('--district <id>', 'only this district')
    .option('--from <YYYY-MM-DD>', 'first day (default: the first of this month)')
    .option('--to <YYYY-MM-DD>', 'last day (default: today)')
    .option('--month <YYYY-MM>', 'one month: its days and its figure')
    .option('--json', 'JSON: the figures as published on MQTT')
    .option('--csv', 'CSV, one line per day or month')
    .addHelpText(
      'after',
      `
Examples:
  meterd lineloss -c /etc/meterd/meterd.yaml                            # this month, every district
  meterd lineloss -c /etc/meterd/meterd.yaml --district d1 --month 2026-11
  meterd lineloss -c /etc/meterd/meterd.yaml --from 2026-11-01 --to 2026-11-15 --csv > d1.csv
  meterd lineloss explain -c /etc/meterd/meterd.yaml --district d1 --date 2026-11-27

Classes: qualified (inside the district's band, default 0–10 %), high, negative, not-computable (a supply freeze
missing, or fewer members read than lineloss.completeness %: no rate is given). "≥20%" marks a day at or above 20 %
whatever the band. rev is the revision: a day recalled and computed later is published again with rev + 1.`,
    )
    .action((opts: SeriesOptions) => {
      if (opts.config === undefined) throw usageError("required option '-c, --config <file>' not specified");
      if (opts.json && opts.csv) throw usageError('choose one of --json and --csv');
      if (opts.month !== undefined && (opts.from !== undefined || opts.to !== undefined))
        throw usageError('--month stands for --from and --to; give either --month or --from/--to');
      const config = loadConfigFile(opts.config);
      checkDistrict(config, opts.district);
      const today = localDate(clock.now(), config.gateway.timeZone);
      let from: string;
      let to: string;
      if (opts.month !== undefined) {
        const month = checked(() => parseBooksMonth(opts.month!));
        from = `${month}-01`;
        to = addDays(addDays(`${month}-28`, 7).slice(0, 7).concat('-01'), -1);
      } else {
        from = opts.from === undefined ? `${today.slice(0, 7)}-01` : checked(() => parseBooksDate(opts.from!));
        to = opts.to === undefined ? today : checked(() => parseBooksDate(opts.to!));
        if (from > to) throw usageError(`--from ${from} is after --to ${to}`);
      }
      const series = withStore(config, (store) =>
        linelossSeries(store, { from, to, ...(opts.district ? { district: opts.district } : {}) }),
      );
      const lines = opts.json
        ? [JSON.stringify(seriesJson(series), null, 2)]
        : opts.csv
          ? seriesCsv(series)
          : seriesTable(config, series, from, to);
      for (const line of lines) io.out(line);
    });

  cmd
    .command('explain')
    .description("the members behind one district's day: largest change against their previous week first, missing ones named")
    // -c is this command's and the parent's: commander hands it to whichever parses first (see optsWithGlobals).
    .option('-c, --config <file>', 'the gateway config (YAML), required')
    .option('--district <id>', 'the district, required')
    .requiredOption('--date <YYYY-MM-DD>', "the day, in the gateway's time zone")
    .option('--json', 'JSON')
    .addHelpText('after', '\nExample:\n  meterd lineloss explain -c /etc/meterd/meterd.yaml --district d1 --date 2026-11-27\n')
    .action((_: unknown, command: Command) => {
      const opts = command.optsWithGlobals<{ config?: string; district?: string; date: string; json?: boolean }>();
      if (opts.config === undefined) throw usageError("required option '-c, --config <file>' not specified");
      if (opts.district === undefined) throw usageError("required option '--district <id>' not specified");
      const district = opts.district;
      const config = loadConfigFile(opts.config);
      checkDistrict(config, district);
      const date = checked(() => parseBooksDate(opts.date));
      const e = withStore(config, (store) => explainDay(store, district, date));
      if (e === null)
        throw new CliError('LINELOSS_NO_FIGURE', `no figure for district ${district} on ${date}: the day has not been computed (yet)`);
      const lines = opts.json ? [JSON.stringify({ figure: e.figure.figure, members: e.members }, null, 2)] : explainTable(e);
      for (const line of lines) io.out(line);
    });
  return cmd;
}

function checkDistrict(config: GatewayConfig, district: string | undefined): void {
  if (district === undefined || config.districts.some((d) => d.id === district)) return;
  throw usageError(
    `no district "${district}" in ${config.source}; districts are: ${config.districts.map((d) => d.id).join(', ') || '(none)'}`,
  );
}

function withStore<T>(config: GatewayConfig, fn: (store: Store) => T): T {
  const path = join(config.gateway.dataDir, 'meterd.db');
  if (!existsSync(path))
    throw new CliError('STORE_MISSING', `no database at ${path}: the gateway has not run with this config's dataDir yet`);
  const store = openStore({ path, clock: systemClock });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BooksError) throw usageError(err.message);
    throw err;
  }
}

function seriesJson(s: LinelossSeries): Record<string, unknown> {
  return { days: s.days.map((f) => f.figure), months: s.months.map((f) => f.figure) };
}

const num = (v: unknown, digits = 2) => (typeof v === 'number' ? v.toFixed(digits) : '-');

/** The series as aligned text, per district: one line per day, then the month's figure. */
export function seriesTable(config: GatewayConfig, s: LinelossSeries, from: string, to: string): string[] {
  const out: string[] = [];
  const districts = [...new Set([...s.days, ...s.months].map((f) => f.district))].sort();
  if (districts.length === 0) {
    out.push(`No line-loss figures from ${from} to ${to}.`);
    return out;
  }
  for (const id of districts) {
    const d = config.districts.find((x) => x.id === id);
    if (out.length > 0) out.push('');
    out.push(
      `District ${id}${d?.name ? ` (${d.name})` : ''}, ${from} … ${to} (${config.gateway.timeZone}), band ${d ? `${d.lineloss.qualified[0]}–${d.lineloss.qualified[1]} %` : '?'}${d?.lineloss.target !== undefined ? `, target ${d.lineloss.target} %` : ''}`,
    );
    const rows: string[][] = [['period', 'supply kWh', 'sales kWh', 'loss kWh', 'rate %', 'class', 'read', 'rev', 'missing']];
    const row = (f: StoredFigure) => {
      const x = f.figure;
      const members = x.members as { expected: number; read: number } | undefined;
      const missing = (x.missing ?? []) as string[];
      rows.push([
        f.period,
        num(x.supplyKwh),
        num(x.salesKwh),
        num(x.lossKwh),
        num(x.ratePct) + (typeof x.diffPct === 'number' ? ` (${x.diffPct >= 0 ? '+' : ''}${x.diffPct.toFixed(2)})` : ''),
        f.class + (x.flagged20 === true ? ' ≥20%' : ''),
        members ? `${members.read}/${members.expected}` : '-',
        String(f.revision),
        missing.length === 0
          ? ''
          : missing.length <= 3
            ? missing.join(', ')
            : `${missing.slice(0, 3).join(', ')} and ${missing.length - 3} more`,
      ]);
    };
    for (const f of s.days.filter((x) => x.district === id)) row(f);
    const months = s.months.filter((x) => x.district === id);
    if (months.length > 0) rows.push(['', '', '', '', '', '', '', '', '']);
    for (const f of months) row(f);
    out.push(...columns(rows, [false, true, true, true, true, false, true, true, false]));
  }
  return out;
}

export function seriesCsv(s: LinelossSeries): string[] {
  const head =
    'district,kind,period,supplyKwh,salesKwh,lossKwh,ratePct,class,flagged20,target,diffPct,membersRead,membersExpected,missing,revision';
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const line = (f: StoredFigure) => {
    const x = f.figure;
    const m = (x.members ?? {}) as { expected?: number; read?: number };
    return [
      f.district,
      f.kind,
      f.period,
      cell(x.supplyKwh),
      cell(x.salesKwh),
      cell(x.lossKwh),
      cell(x.ratePct),
      f.class,
      cell(x.flagged20),
      cell(x.target),
      cell(x.diffPct),
      cell(m.read),
      cell(m.expected),
      csvField(((x.missing ?? []) as string[]).join(' ')),
      String(f.revision),
    ].join(',');
  };
  return [head, ...s.days.map(line), ...s.months.map(line)];
}

export function explainTable(e: Explanation): string[] {
  const f = e.figure.figure;
  const out = [
    `District ${e.figure.district}, ${e.figure.period}: ${e.figure.class}${typeof f.ratePct === 'number' ? `, rate ${f.ratePct.toFixed(2)} %` : ''}, supply ${num(f.supplyKwh)} kWh, sales ${num(f.salesKwh)} kWh, revision ${e.figure.revision}`,
  ];
  if (typeof f.reason === 'string') out.push(`Not computable: ${f.reason}`);
  out.push('');
  const rows: string[][] = [['meter', 'kWh', 'week avg', 'change', 'note']];
  for (const m of e.members) {
    rows.push([
      m.meter,
      m.kwh === null ? '-' : m.kwh.toFixed(2),
      m.averageKwh === null ? '-' : m.averageKwh.toFixed(2),
      m.changeKwh === null ? '-' : `${m.changeKwh >= 0 ? '+' : ''}${m.changeKwh.toFixed(2)}`,
      m.kwh === null ? `missing: ${m.why ?? 'no usable freeze'}` : m.averageKwh === null ? 'no earlier days' : '',
    ]);
  }
  out.push(...columns(rows, [false, true, true, true, false]));
  return out;
}
