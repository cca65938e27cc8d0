import type { Command } from 'commander';
import { Dlt645Decoder, findDataItemByPoint, isValidDi, plainValue, type Edition, type Frame } from '../../../protocols/dlt645/index.js';
import { openBus, responseTimeoutMs } from '../../bus/index.js';
import { openModbusLink } from '../../bus/modbus-link.js';
import { Dlt645Meter } from '../../devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../devices/dlt645-points.js';
import { ModbusMeter } from '../../devices/modbus-meter.js';
import type { PointValue } from '../../devices/point-value.js';
import { BUILTIN_PROFILES_DIR, loadProfiles } from '../../profiles/registry.js';
import type { DeviceProfile, PointSpec } from '../../profiles/types.js';
import { randomUUID } from 'node:crypto';
import type { MeterConfig } from '../../config/index.js';
import { meterDrivers, openConfiguredBus } from '../../daemon/meters.js';
import { addBusOptions, addressOption, parseBusOptions } from '../bus-options.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { configuredMeter, DIRECT_HELP, routeCommand, type CommandRoute } from '../daemon-route.js';
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
    .option('--addr <address>', 'DL/T 645 meter address, 12 digits (shorter numbers are left-padded with 0)')
    .option('--unit <id>', 'Modbus unit id (with --profile of a Modbus meter)')
    .option('--profile <id>', 'read through a device profile: its point names, formats and scaling (any DL/T 645 or Modbus model)')
    .option('--profiles-dir <dir>', 'an extra folder of site profiles')
    .option('--modbus-tcp', 'the port is a Modbus TCP gateway (MBAP framing), not a transparent serial-over-TCP converter')
    .option(
      '--point <name>',
      'canonical point name, e.g. energy.active.import, voltage.a; "all" = every point of --profile (repeatable)',
      collect,
    )
    .option('--di <identifier>', 'data identifier, 8 hex digits (4 for --edition 1997) (repeatable)', collect)
    .option('--edition <year>', 'DL/T 645 edition: 2007 or 1997', '2007')
    .option('--json', 'print a JSON list of { address, point, di, value, unit }')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): with --meter, or to go through its running daemon')
    .option('--meter <id>', 'a meter of the config, read through its profile (through the daemon when one runs)')
    .option('--operator <name>', 'who reads, recorded by the daemon (default: your user name)')
    .option('--direct', DIRECT_HELP);
  addBusOptions(cmd).addHelpText(
    'after',
    `
Examples:
  meterd read -c /etc/meterd/meterd.yaml --meter room-101 --point voltage.a --point energy.active.import
  meterd read -c /etc/meterd/meterd.yaml --meter room-101 --point all --json
  meterd read --port /dev/ttyUSB0 --addr 000012345678 --point energy.active.import --point voltage.a
  meterd read --port tcp://10.0.0.7:8899 --addr 12345678 --di 00900200 --json
  meterd read --port /dev/ttyUSB1 --baud 1200 --edition 1997 --addr 1 --di 9010
  meterd read --port /dev/ttyUSB2 --baud 9600 --parity none --profile eastron-sdm630 --unit 1 --point all
  meterd read --port tcp://10.0.0.9:502 --modbus-tcp --profile chint-dtsu666 --unit 3 --point voltage.a --json

With a config (-c or METERD_CONFIG) whose daemon runs, a configured meter (--meter, or the --port and --addr of
one) is read through the daemon: its bus arbiter puts the read before routine polls, and polling goes on.
Without a daemon the port is opened directly. --di reads of raw identifiers need the port: --direct.
Exit code 0 when every point was read; 1 when any failed (timeout, or the meter's named error).`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const wantsConfig = opts.meter !== undefined || opts.config !== undefined || opts.direct === true;
    const route = wantsConfig || process.env.METERD_CONFIG ? await routeCommand(opts as { config?: string; direct?: boolean }) : undefined;
    const meter = configuredMeter(route, opts);
    if (route !== undefined && meter !== undefined) return readConfiguredMeter(route, meter, opts, io);
    const bus = parseBusOptions(opts);
    if (opts.profile !== undefined) return readWithProfile(opts, bus, io);
    if (opts.addr === undefined) throw usageError('give --addr ADDRESS (DL/T 645), or --profile ID with --addr or --unit');
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
    if (failed.length > 0)
      throw new CliError(
        failed.length === rows.length ? 'READ_FAILED' : 'READ_PARTIAL',
        `${failed.length} of ${rows.length} point(s) could not be read`,
      );
  });
}

/** A configured meter's points by their profile names: through the daemon when one runs, else on its port directly. */
async function readConfiguredMeter(
  route: CommandRoute,
  meter: MeterConfig,
  opts: Record<string, unknown>,
  io: { out: (line: string) => void },
) {
  if (opts.di !== undefined)
    throw usageError('--di reads a raw identifier on the port: use --point names with --meter, or --port with --direct');
  const asked = (opts.point as string[] | undefined) ?? [];
  if (asked.length === 0) throw usageError('say what to read: --point NAME (repeatable) or --point all');
  const profile = meter.profile;
  const names = asked.includes('all') ? [...profile.points.keys()] : asked;
  for (const n of names)
    if (!profile.points.has(n))
      throw usageError(`meter ${meter.id} (${profile.id}) has no point "${n}"; it has: ${[...profile.points.keys()].join(', ')}`);
  let values: Record<string, PointValue>;
  if (route.daemon !== null) {
    const reply = await sendToDaemon(
      route.config,
      'read',
      { requestId: `cli-read-${randomUUID()}`, meter: meter.id, points: names },
      { operator: typeof opts.operator === 'string' ? opts.operator : defaultOperator() },
    );
    values = resultOf('read', reply).values as Record<string, PointValue>;
  } else {
    const opened = await openConfiguredBus(route.config.buses.find((b) => b.id === meter.busId)!, { waitForPort: false });
    try {
      values = Object.fromEntries(await meterDrivers(meter, opened, route.config).reader.read(names, { priority: 'operator' }));
    } finally {
      await opened.bus.close();
    }
  }
  const rows: ReadRow[] = names.map((n) => {
    const v = values[n] ?? { error: 'MISSING', message: 'no value in the reply' };
    const source = sourceOf(profile, profile.points.get(n)!);
    return 'v' in v
      ? { address: meter.id, point: n, di: source, value: v.v, unit: v.unit }
      : { address: meter.id, point: n, di: source, error: `${v.error}${v.message ? `: ${v.message}` : ''}` };
  });
  if (opts.json) io.out(JSON.stringify(rows));
  else printTable(rows, io.out);
  const failed = rows.filter((r) => r.error);
  if (failed.length > 0)
    throw new CliError(
      failed.length === rows.length ? 'READ_FAILED' : 'READ_PARTIAL',
      `${failed.length} of ${rows.length} point(s) could not be read`,
    );
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

/** Read through a device profile: the same points, formats and scaling the daemon uses, for any supported model. */
async function readWithProfile(
  opts: Record<string, unknown>,
  bus: ReturnType<typeof parseBusOptions>,
  io: { out: (line: string) => void },
): Promise<void> {
  const dirs = [BUILTIN_PROFILES_DIR, ...(opts.profilesDir ? [String(opts.profilesDir)] : [])];
  const profile = loadProfiles(dirs).get(String(opts.profile));
  if (!profile) throw usageError(`unknown profile "${String(opts.profile)}"; see meterd profile list`);
  const asked = (opts.point as string[] | undefined) ?? [];
  if (asked.length === 0) throw usageError('say what to read: --point NAME (repeatable) or --point all');
  const names = asked.includes('all') ? [...profile.points.keys()] : asked;
  for (const n of names)
    if (!profile.points.has(n))
      throw usageError(`profile ${profile.id} has no point "${n}"; it has: ${[...profile.points.keys()].join(', ')}`);
  const line = { baudRate: bus.baudRate, parity: bus.parity, dataBits: bus.dataBits, stopBits: bus.stopBits };
  let values: Map<string, PointValue>;
  let who: string;
  if (profile.protocol.startsWith('modbus')) {
    if (opts.unit === undefined) throw usageError(`${profile.id} is a Modbus meter: give --unit N`);
    const unit = Number(opts.unit);
    if (!Number.isInteger(unit) || unit < 0 || unit > 247) throw usageError('--unit is a whole number from 0 to 247');
    const protocol = opts.modbusTcp || profile.protocol === 'modbus-tcp' ? 'modbus-tcp' : 'modbus-rtu';
    const link = await openModbusLink({ id: 'cli', port: bus.port, protocol, line, readRetries: bus.retries });
    try {
      values = await new ModbusMeter({ link, unit, profile, timeoutMs: bus.timeoutMs }).read(names, { priority: 'operator' });
    } finally {
      await link.close();
    }
    who = `unit ${unit}`;
  } else {
    if (opts.addr === undefined) throw usageError(`${profile.id} is a DL/T 645 meter: give --addr ADDRESS`);
    const address = addressOption(opts.addr);
    const link = await openBus<Frame>({ id: 'cli', port: bus.port, line, decoder: new Dlt645Decoder() });
    try {
      const timeoutMs = bus.timeoutMs ?? responseTimeoutMs({ settings: line, requestBytes: 24, expectedReplyBytes: 64 });
      const meter = new Dlt645Meter({
        link,
        address,
        edition: profile.protocol === 'dlt645-1997' ? '1997' : '2007',
        timeoutMs,
        readRetries: bus.retries,
      });
      values = await new Dlt645PointReader(meter, profile).read(names, { priority: 'operator' });
    } finally {
      await link.close();
    }
    who = address;
  }
  const rows: ReadRow[] = names.map((n) => {
    const v = values.get(n)!;
    const source = sourceOf(profile, profile.points.get(n)!);
    return 'v' in v
      ? { address: who, point: n, di: source, value: v.v, unit: v.unit }
      : { address: who, point: n, di: source, error: `${v.error}${v.message ? `: ${v.message}` : ''}` };
  });
  if (opts.json) io.out(JSON.stringify(rows));
  else printTable(rows, io.out);
  const failed = rows.filter((r) => r.error);
  if (failed.length > 0)
    throw new CliError(
      failed.length === rows.length ? 'READ_FAILED' : 'READ_PARTIAL',
      `${failed.length} of ${rows.length} point(s) could not be read`,
    );
}

/** Where a point comes from, as a technician would look it up: the identifier, the register, or the source bit. */
function sourceOf(_profile: DeviceProfile, spec: PointSpec): string {
  if (spec.kind === 'dlt645') return spec.di;
  if (spec.kind === 'modbus') return `${spec.table}:0x${spec.address.toString(16).padStart(4, '0').toUpperCase()}`;
  return `${spec.from}#${spec.bit}`;
}
