import type { Command } from 'commander';
import { findDataItemByPoint, isValidDi, plainValue, type Edition } from '../../../protocols/dlt645/index.js';
import { addBusOptions, addressOption, parseBusOptions } from '../bus-options.js';
import { meterOn, withDlt645Bus } from '../dlt645-session.js';
import { CliError, usageError } from '../errors.js';

interface ReadRow {
  address: string;
  point: string | null;
  di: string;
  value?: unknown;
  unit?: string;
  error?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerReadCommand(program: Command, io: { out: (line: string) => void }): void {
  const cmd = program
    .command('read')
    .description('read points from one meter and print value and unit')
    .requiredOption('--addr <address>', 'meter address, 12 digits (shorter numbers are left-padded with 0)')
    .option('--point <name>', 'canonical point name, e.g. energy.active.import, voltage.a (repeatable)', collect)
    .option('--di <identifier>', 'data identifier, 8 hex digits (4 for --edition 1997) (repeatable)', collect)
    .option('--edition <year>', 'DL/T 645 edition: 2007 or 1997', '2007')
    .option('--json', 'print a JSON list of { address, point, di, value, unit }');
  addBusOptions(cmd).addHelpText(
    'after',
    `
Examples:
  meterd read --port /dev/ttyUSB0 --addr 000012345678 --point energy.active.import --point voltage.a
  meterd read --port tcp://10.0.0.7:8899 --addr 12345678 --di 00900200 --json
  meterd read --port /dev/ttyUSB1 --baud 1200 --edition 1997 --addr 1 --di 9010

Exit code 0 when every point was read; 1 when any failed (timeout, or the meter's named error).`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const bus = parseBusOptions(opts);
    const address = addressOption(opts.addr);
    const edition = opts.edition === '1997' ? '1997' : opts.edition === '2007' ? '2007' : undefined;
    if (!edition) throw usageError(`--edition must be 2007 or 1997, not "${String(opts.edition)}"`);
    const targets = resolveTargets((opts.point as string[] | undefined) ?? [], (opts.di as string[] | undefined) ?? [], edition);
    const rows: ReadRow[] = await withDlt645Bus(bus, undefined, async (link, timeoutMs) => {
      const meter = meterOn(link, address, timeoutMs, bus.retries, edition);
      const out: ReadRow[] = [];
      for (const t of targets) {
        try {
          const r = await meter.read(t.di);
          out.push({ address, point: t.point, di: r.di, value: plainValue(r.value), unit: r.item?.unit ?? '' });
        } catch (err) {
          const code = (err as { code?: string }).code ?? 'ERROR';
          // A dead line fails every point the same way: stop at the first and say why.
          if (code === 'BUS_TIMEOUT' || code === 'BUS_DOWN' || code === 'PORT_OPEN_FAILED') throw err;
          out.push({ address, point: t.point, di: t.di, error: `${code}: ${(err as Error).message}` });
        }
      }
      return out;
    });
    if (opts.json) io.out(JSON.stringify(rows));
    else printTable(rows, io.out);
    const failed = rows.filter((r) => r.error);
    if (failed.length > 0) throw new CliError(failed.length === rows.length ? 'READ_FAILED' : 'READ_PARTIAL', `${failed.length} of ${rows.length} point(s) could not be read`);
  });
}

function resolveTargets(points: string[], dis: string[], edition: Edition): { point: string | null; di: string }[] {
  if (points.length === 0 && dis.length === 0) throw usageError('say what to read: --point NAME or --di XXXXXXXX (repeatable)');
  const out: { point: string | null; di: string }[] = [];
  for (const p of points) {
    const item = findDataItemByPoint(p, edition);
    if (!item) throw usageError(`unknown point "${p}" for DL/T 645-${edition}; see device-profiles/README.md for names, or use --di`);
    out.push({ point: p, di: item.di });
  }
  for (const d of dis) {
    if (!isValidDi(d, edition)) throw usageError(`--di ${d}: a ${edition} identifier has ${edition === '2007' ? 8 : 4} hex digits`);
    out.push({ point: null, di: d.toUpperCase() });
  }
  return out;
}

function printTable(rows: ReadRow[], out: (line: string) => void): void {
  const cells = rows.map((r) => [r.point ?? '-', r.di, r.error ? 'ERROR' : formatValue(r.value), r.error ? r.error : (r.unit ?? '')]);
  const header = ['point', 'di', 'value', 'unit'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!))).join('  ');
  out(line(header));
  for (const c of cells) out(line(c));
}

function formatValue(v: unknown): string {
  if (v === null) return 'n/a';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
