import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { parseAddress, type Edition } from '../../../protocols/dlt645/index.js';
import { encodeRegisterValue, resolveIdentifier, type RegisterValue } from './registers.js';

/** How a meter takes credit: kWh-prepaid, money-prepaid (both local fee control), or a plain meter with no wallet. */
export type MeterKind = 'energy' | 'money' | 'plain';

/**
 * One simulated meter. Amounts are in the unit the meter displays: yuan for money meters, kWh for energy meters
 * (two decimals), the same numbers a read of 00900200 or 00900100 returns.
 */
export interface MeterSpec {
  /** 1 to 12 decimal digits; shorter addresses are left-padded with 0. */
  readonly address: string;
  /** Default '2007'. A 1997 meter answers 0x01/0x02/0x04/0x08/0x0A with 2-byte identifiers and is always 'plain'. */
  readonly edition?: Edition;
  /** Default 'money' for 2007 meters. */
  readonly kind?: MeterKind;
  /** Seed values by DI or point name (`'02010100': 221.5`, `'voltage.a': 221.5`, `'meter.model': 'DDSY1352'`). */
  readonly registers?: Readonly<Record<string, RegisterValue>>;
  /** Default 1: single-phase meters have no phase B or C items. */
  readonly phases?: 1 | 3;
  /** Load while the relay is closed; negative = reverse (exported) power. Default 0, so nothing changes with time. */
  readonly powerKw?: number;
  /** Price in yuan per kWh (4 decimals) that money meters deduct at. Default 0.5600. */
  readonly price?: number;
  readonly balance?: number;
  readonly overdraft?: number;
  /** How far into overdraft the meter lets the customer go before it trips. Default 0. */
  readonly overdraftLimit?: number;
  /** The largest balance a load may leave; 0 = no limit (default). */
  readonly hoardingLimit?: number;
  readonly purchaseCount?: number;
  /** 1 to 12 digits, left-padded. Recharges must carry the same number. */
  readonly customerNumber?: string;
  /** Account opened (开户): default true. A meter that is not opened takes only an opening (070101FF). */
  readonly opened?: boolean;
  /** Level then password, 8 hex digits, e.g. '02000000' (the default) or a list of them for several levels. */
  readonly password?: string | readonly string[];
  /** Default 'closed'. */
  readonly relay?: 'closed' | 'open';
  /** Keep-power (保电): trips are refused. Default false. */
  readonly keepPower?: boolean;
  /** Answer block identifiers (0201FF00, 040005FF…); false makes them answer "no requested data". Default true. */
  readonly blockReads?: boolean;
  /**
   * A vendor meter that takes credit as a 0x14 write to its own identifier with a payload layout (fields
   * purchaseCount, amount in fen or 0.01 kWh, customerNumber), under the same purchase-count rule as 0x03 loads.
   */
  readonly vendorCredit?: { readonly di: string; readonly layout: readonly { readonly field: string; readonly format: string }[] };
  /**
   * An ESAM meter: 0x03 needs identity authentication (070000FF) and MACs from this 32-hex-digit test key, computed
   * with the simulator's stand-in algorithm (esam-stand-in.ts), not the real ESAM one.
   */
  readonly esam?: { readonly key: string };
  /** Longest data field of one read reply; longer items go out in follow-up frames. Default 200 (the standard's L limit). */
  readonly maxReplyData?: number;
  /** Reply delay on the bus, in milliseconds. Default 0. */
  readonly delayMs?: number;
  /** Meter clock minus host clock, in seconds. Default 0. */
  readonly clockOffsetSeconds?: number;
  /** Largest correction a broadcast time may make (docs/reference/dlt645.md § Broadcast time 0x08: 5 minutes). Raise it so a demo can fix large drift. */
  readonly maxBroadcastSkewSeconds?: number;
}

export interface SimulatorSpec {
  readonly meters: readonly MeterSpec[];
}

const digitsText = (max: number, what: string) =>
  z
    .union([z.string(), z.number().int().nonnegative()])
    .transform((v) => String(v).trim())
    .refine((v) => new RegExp(`^\\d{1,${max}}$`).test(v), { message: `${what} must be 1 to ${max} decimal digits` })
    .transform((v) => v.padStart(max, '0'));

const address = digitsText(12, 'a meter address').refine((a) => parseAddress(a).ok && a !== '999999999999', {
  message: 'address 999999999999 is the broadcast address, not a meter',
});

const cents = (what: string) =>
  z
    .number()
    .nonnegative(`${what} cannot be negative`)
    .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-6, { message: `${what} has at most 2 decimals` });

const password = z.string().regex(/^[0-9A-Fa-f]{8}$/, 'a password is 8 hex digits: level then password, e.g. 02000000');

const meterSpecSchema = z
  .strictObject({
    address,
    edition: z
      .union([z.literal('2007'), z.literal('1997'), z.literal(2007), z.literal(1997)])
      .transform((e) => String(e) as Edition)
      .optional(),
    kind: z.enum(['energy', 'money', 'plain']).optional(),
    registers: z.record(z.string(), z.union([z.number(), z.string()])).optional(),
    phases: z.union([z.literal(1), z.literal(3)]).optional(),
    powerKw: z.number().finite().optional(),
    price: z
      .number()
      .nonnegative()
      .refine((v) => Math.abs(Math.round(v * 1e4) - v * 1e4) < 1e-6, { message: 'price has at most 4 decimals (yuan/kWh)' })
      .optional(),
    balance: cents('balance').optional(),
    overdraft: cents('overdraft').optional(),
    overdraftLimit: cents('overdraftLimit').optional(),
    hoardingLimit: cents('hoardingLimit').optional(),
    purchaseCount: z.number().int().nonnegative().max(0xffffffff).optional(),
    customerNumber: digitsText(12, 'a customer number').optional(),
    opened: z.boolean().optional(),
    password: z.union([password, z.array(password).min(1)]).optional(),
    relay: z.enum(['closed', 'open']).optional(),
    keepPower: z.boolean().optional(),
    blockReads: z.boolean().optional(),
    vendorCredit: z
      .object({
        di: z
          .string()
          .regex(/^[0-9A-Fa-f]{8}$/, 'the vendor credit identifier is 8 hex digits')
          .transform((d) => d.toUpperCase()),
        layout: z.array(z.object({ field: z.string(), format: z.string() })).min(1),
      })
      .optional(),
    esam: z.strictObject({ key: z.string().regex(/^[0-9A-Fa-f]{32}$/, 'the ESAM test key is 32 hex digits') }).optional(),
    maxReplyData: z.number().int().min(6, 'maxReplyData must leave room for DI, SEQ and one byte (at least 6)').max(255).optional(),
    delayMs: z.number().nonnegative().finite().optional(),
    clockOffsetSeconds: z.number().finite().optional(),
    maxBroadcastSkewSeconds: z.number().nonnegative().optional(),
  })
  .superRefine((m, ctx) => {
    const edition = m.edition ?? '2007';
    if (edition === '1997' && m.kind !== undefined && m.kind !== 'plain') {
      ctx.addIssue({
        code: 'custom',
        path: ['kind'],
        message: 'a 1997 meter has no remote recharge (0x03 security is 2007 only); use kind: plain',
      });
    }
    for (const [key, value] of Object.entries(m.registers ?? {})) {
      const di = resolveIdentifier(key, edition);
      if (!di) {
        ctx.addIssue({
          code: 'custom',
          path: ['registers', key],
          message: `"${key}" is neither a ${edition === '2007' ? '8' : '4'}-hex-digit DI nor a point name of a ${edition} meter`,
        });
        continue;
      }
      const r = encodeRegisterValue(di, value, edition);
      if (!r.ok) ctx.addIssue({ code: 'custom', path: ['registers', key], message: r.error.message });
    }
  });

const simulatorSpecSchema = z.strictObject({ meters: z.array(meterSpecSchema).min(1, 'list at least one meter') }).superRefine((s, ctx) => {
  const seen = new Map<string, number>();
  s.meters.forEach((m, i) => {
    const first = seen.get(m.address);
    if (first !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['meters', i, 'address'],
        message: `address ${m.address} is already used by meter ${first + 1}`,
      });
    else seen.set(m.address, i);
  });
});

export interface SpecError {
  readonly code: 'SIM_SPEC_INVALID';
  readonly message: string;
}

/** Check a meter spec written in code; throws a TypeError naming every problem (the constructor's guard). */
export function checkMeterSpec(spec: MeterSpec): MeterSpec {
  const r = meterSpecSchema.safeParse(spec);
  if (!r.success)
    throw new TypeError(`meter spec ${String(spec.address)}: ${r.error.issues.map((i) => `${pathText(i.path)}${i.message}`).join('; ')}`);
  return r.data;
}

/**
 * Parse a simulator spec from YAML or JSON text, reporting each problem with its line number.
 *
 * @example
 * const r = parseSimulatorSpec('meters:\n  - address: 000000000001\n    kind: money\n    balance: 50\n');
 * if (r.ok) startDlt645Simulator({ tcpPort: 0, spec: r.value });
 */
export function parseSimulatorSpec(text: string, source = 'spec'): { ok: true; value: SimulatorSpec } | { ok: false; error: SpecError } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = lines.linePos(e.pos[0]);
    return { ok: false, error: { code: 'SIM_SPEC_INVALID', message: `${source}:${at.line}: ${e.message.split('\n')[0]}` } };
  }
  const r = simulatorSpecSchema.safeParse(doc.toJS());
  if (r.success) return { ok: true, value: r.data };
  const problems = r.error.issues.map((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const node = findNode(doc, path);
    const line = node?.range ? `:${lines.linePos(node.range[0]).line}` : '';
    return `${source}${line}: ${pathText(path)}${issue.message}`;
  });
  return { ok: false, error: { code: 'SIM_SPEC_INVALID', message: problems.join('\n') } };
}

/** Read and parse a spec file. */
export async function loadSimulatorSpec(path: string): Promise<{ ok: true; value: SimulatorSpec } | { ok: false; error: SpecError }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return { ok: false, error: { code: 'SIM_SPEC_INVALID', message: `cannot read ${path}: ${(e as Error).message}` } };
  }
  return parseSimulatorSpec(text, path);
}

// The deepest node that exists on the issue's path, so a missing key still points at its parent's line.
function findNode(
  doc: ReturnType<typeof parseDocument>,
  path: (string | number)[],
): { range?: [number, number, number] | null } | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] | null } | undefined;
    if (node && typeof node === 'object' && node.range) return node;
  }
  return undefined;
}

function pathText(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '';
  return `${path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '')}: `;
}

/**
 * `n` plausible dormitory meters: addresses 000000000001…, money-prepaid at 0.5600 yuan/kWh, 219–223 V, a few
 * hundred watts of load, thousands of kWh on the register and a few dozen yuan left. The same `n` always gives the
 * same meters. `overrides` apply to every meter (e.g. `{ powerKw: 0 }` for a frozen bus).
 */
export function defaultMeters(n: number, overrides: Partial<Omit<MeterSpec, 'address'>> = {}): MeterSpec[] {
  if (!Number.isInteger(n) || n < 1) throw new TypeError('n is not a whole number of meters (at least 1)');
  const meters: MeterSpec[] = [];
  for (let i = 1; i <= n; i++) {
    const rand = mulberry32(i * 7919);
    const pick = (lo: number, hi: number, decimals: number) => Number((lo + rand() * (hi - lo)).toFixed(decimals));
    const importKwh = pick(800, 9000, 2);
    meters.push({
      address: String(i).padStart(12, '0'),
      kind: 'money',
      powerKw: pick(0.05, 1.8, 4),
      price: 0.56,
      balance: pick(15, 300, 2),
      overdraftLimit: 0,
      hoardingLimit: 5000,
      purchaseCount: 1 + Math.floor(rand() * 30),
      customerNumber: String(880000000000 + i),
      registers: {
        'voltage.a': pick(219, 223.9, 1),
        'power.factor': pick(0.9, 0.999, 3),
        frequency: pick(49.95, 50.05, 2),
        'energy.active.import': importKwh,
        'energy.active.import.t1': Number((importKwh * 0.4).toFixed(2)),
        'energy.active.import.t2': Number((importKwh * 0.6).toFixed(2)),
        'meter.model': 'DDSY1352',
        'meter.rated-voltage': '220V',
        'meter.rated-current': '5(60)A',
        'meter.protocol': 'DL/T645-2007',
        'meter.constant': 1200,
      },
      ...overrides,
    });
  }
  return meters;
}

// A tiny seeded generator so default meters look varied but are the same on every run.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
