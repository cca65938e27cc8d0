import type { DataValue } from '../../protocols/dlt645/index.js';
import type { DeviceProfile, Dlt645Point } from '../profiles/types.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { MeterError } from './errors.js';

/** One daily freeze as a meter keeps it. */
export interface DailyFreezeReading {
  readonly kind: 'freeze';
  /** The freeze time in the meter's own clock, 'YYYY-MM-DDThh:mm'. */
  readonly frozenAt: string;
  /** Forward active energy total, 0.01 kWh. */
  readonly importCenti: number;
  /** Reverse active energy total, 0.01 kWh, when the profile reads it. */
  readonly exportCenti?: number;
}

/** The meter answered, but keeps no such freeze (not that old, or never frozen). */
export interface NoFreeze {
  readonly kind: 'none';
  readonly reason: string;
}

/** What the line-loss job needs from a meter: its Nth last daily freeze. A meter that does not answer rejects. */
export interface DailyFreezeSource {
  read(n: number, opts: { priority: Priority; signal?: AbortSignal }): Promise<DailyFreezeReading | NoFreeze>;
}

/** Freezes a meter keeps by the standard's numbering (DI0 = 01…3E; 62 days on most meters). */
export const MAX_DAILY_FREEZES = 62;

const TIME = 'frozen.daily.time[1]';
const IMPORT = 'frozen.daily.energy.active.import[1]';
const EXPORT = 'frozen.daily.energy.active.export[1]';

/**
 * The daily freezes of a DL/T 645-2007 meter whose profile names the last freeze's time and energy (05060001 and
 * 05060101, DL/T 645-2007 Appendix A, freezes 0x05 class): the Nth last is the same identifier with DI0 = N.
 * Undefined when the profile has no such points.
 */
export function dlt645DailyFreezes(meter: Dlt645Meter, profile: DeviceProfile): DailyFreezeSource | undefined {
  const time = dlt(profile, TIME);
  const imp = dlt(profile, IMPORT);
  if (time === undefined || imp === undefined || meter.edition !== '2007') return undefined;
  const exp = dlt(profile, EXPORT);
  return {
    async read(n, opts) {
      if (!Number.isInteger(n) || n < 1 || n > MAX_DAILY_FREEZES) throw new RangeError(`freeze ${n} is not 1 to ${MAX_DAILY_FREEZES}`);
      const t = await readItem(meter, time, n, opts);
      if (t.kind !== 'time') return { kind: 'none', reason: t.kind === 'refused' ? t.reason : `freeze ${n} has no time` };
      const e = await readItem(meter, imp, n, opts);
      if (e.kind !== 'number') return { kind: 'none', reason: e.kind === 'refused' ? e.reason : `freeze ${n} has no forward energy` };
      if (exp === undefined) return { kind: 'freeze', frozenAt: t.value, importCenti: e.centi };
      const x = await readItem(meter, exp, n, opts);
      return { kind: 'freeze', frozenAt: t.value, importCenti: e.centi, ...(x.kind === 'number' ? { exportCenti: x.centi } : {}) };
    },
  };
}

function dlt(profile: DeviceProfile, name: string): Dlt645Point | undefined {
  const p = profile.points.get(name);
  return p?.kind === 'dlt645' ? p : undefined;
}

type Item = { kind: 'time'; value: string } | { kind: 'number'; centi: number } | { kind: 'refused'; reason: string } | { kind: 'other' };

async function readItem(
  meter: Dlt645Meter,
  spec: Dlt645Point,
  n: number,
  opts: { priority: Priority; signal?: AbortSignal },
): Promise<Item> {
  const di = spec.di.slice(0, 6) + n.toString(16).toUpperCase().padStart(2, '0');
  let value: DataValue | undefined;
  try {
    value = (await meter.read(di, opts)).value;
  } catch (err) {
    // The meter answered with a refusal ("no requested data"): it keeps no such freeze. Silence rejects, as it should.
    if (err instanceof MeterError && (err.code === 'DLT645_ABNORMAL' || err.code === 'DLT645_BAD_VALUE'))
      return { kind: 'refused', reason: err.message };
    throw err;
  }
  if (spec.item !== undefined) value = value.kind === 'list' ? value.items[spec.item] : undefined;
  if (value?.kind === 'time') return { kind: 'time', value: value.value };
  // Energy is kept as the exact scaled integer: XXXXXX.XX is 0.01 kWh.
  if (value?.kind === 'number' && value.decimals === 2 && value.scaled >= 0) return { kind: 'number', centi: value.scaled };
  if (value?.kind === 'number') return { kind: 'number', centi: Math.round(value.value * 100) };
  return { kind: 'other' };
}
