import type { DistrictLineloss } from '../../config/lineloss.js';
import type { LinelossClass } from '../../store/index.js';

// The line-loss arithmetic of a transformer district over one window (a day or a month), from the meters' daily
// freezes at the window's two midnights. Pure: freezes in, a figure out. Energy is counted in 0.01 kWh.

/** A register of XXXXXX.XX kWh goes from 999999.99 to 0: it counts modulo 10^8 hundredths. */
export const REGISTER_MODULUS_CENTI = 100_000_000;
/** A day at or above this loss rate is flagged on the station's list whatever the qualified band (NARI SEA's daily alarm). */
export const FLAG_RATE_PCT = 20;

/** What a district is made of, for the computation. */
export interface DistrictShape {
  readonly id: string;
  readonly supplyMeter: string;
  readonly ctRatio: number;
  readonly ptRatio: number;
  /** The customer meters (the meters whose `district` names it, without the supply meter). */
  readonly members: readonly string[];
  /** Members tagged `pv`: their exported energy feeds the district beside the supply meter. */
  readonly pvMembers: ReadonlySet<string>;
  readonly lineloss: DistrictLineloss;
}

/** A meter's freeze at one midnight, as read. */
export interface FreezeValue {
  /** The meter's freeze time, 'YYYY-MM-DDThh:mm' in its own clock. */
  readonly frozenAt: string;
  readonly importCenti: number;
  readonly exportCenti?: number;
}

/**
 * A meter replaced inside the window (docs/lifecycle.md): the old meter's last register and the new meter's first,
 * in 0.01 kWh, so the point's energy is old final − old start + new end − new initial.
 */
export interface MeterSwap {
  readonly finalImportCenti: number;
  readonly initialImportCenti: number;
  readonly finalExportCenti?: number;
  readonly initialExportCenti?: number;
}

export interface WindowInput {
  readonly kind: 'daily' | 'monthly';
  /** '2026-11-27' or '2026-11'. */
  readonly period: string;
  /** The local dates whose 00:00 opens and closes the window. */
  readonly startBoundary: string;
  readonly endBoundary: string;
  readonly start: ReadonlyMap<string, FreezeValue>;
  readonly end: ReadonlyMap<string, FreezeValue>;
  /** Meters replaced inside the window, oldest swap first. */
  readonly swaps?: ReadonlyMap<string, readonly MeterSwap[]>;
}

/** One meter's energy over the window, or why it has none. */
export type MeterDelta =
  | { readonly ok: true; readonly importCenti: number; readonly exportCenti?: number }
  | { readonly ok: false; readonly kind: 'missing' | 'backwards'; readonly reason: string };

export interface LinelossFigure {
  readonly district: string;
  readonly kind: 'daily' | 'monthly';
  readonly period: string;
  /** Supply at the primary side (× CT × PT), plus PV export; null when the supply meter has no usable freezes. */
  readonly supplyCenti: number | null;
  /** The sum over the members read; null when none was. */
  readonly salesCenti: number | null;
  /** null when not computable. */
  readonly lossCenti: number | null;
  /** Loss ÷ supply in %, two decimals; null when not computable. */
  readonly ratePct: number | null;
  readonly class: LinelossClass;
  readonly members: { readonly expected: number; readonly read: number };
  /** Every member or supply meter without a usable freeze at either end, sorted. */
  readonly missing: readonly string[];
  /** Why each meter in `missing` (or with a register that went backwards) could not be used. */
  readonly why: Readonly<Record<string, string>>;
  /** Why the window is not computable, when it is not. */
  readonly reason?: string;
  readonly target?: number;
  /** rate − target, two decimals; null when not computable. Present only with a target. */
  readonly diffPct?: number | null;
  /** The rate is at or above FLAG_RATE_PCT. */
  readonly flagged20: boolean;
  /** Each member's consumption over the window (0.01 kWh), for those read. */
  readonly memberCenti: ReadonlyMap<string, number>;
}

/** '2026-11-27T00:00': the freeze time a meter must report for the midnight that starts `boundary`. */
export function expectedFreezeTime(boundary: string): string {
  return `${boundary}T00:00`;
}

/**
 * A meter's energy between two freezes: end − start, plus the register's modulus when the register rolled over
 * (999999.99 → 0: the end is below the start by more than half the register). A freeze missing, a freeze time
 * that is not the expected midnight (a stopped or wrong meter clock), or a register that went backwards (a meter
 * swapped in the window, a fault) gives no energy and a reason: it is never guessed, never a zero.
 */
export function meterDelta(
  start: FreezeValue | undefined,
  end: FreezeValue | undefined,
  startBoundary: string,
  endBoundary: string,
  swaps: readonly MeterSwap[] = [],
): MeterDelta {
  if (start === undefined) return { ok: false, kind: 'missing', reason: `no freeze for ${startBoundary} 00:00` };
  if (end === undefined) return { ok: false, kind: 'missing', reason: `no freeze for ${endBoundary} 00:00` };
  if (start.frozenAt !== expectedFreezeTime(startBoundary))
    return { ok: false, kind: 'missing', reason: `the freeze for ${startBoundary} 00:00 is stamped ${start.frozenAt.replace('T', ' ')}` };
  if (end.frozenAt !== expectedFreezeTime(endBoundary))
    return { ok: false, kind: 'missing', reason: `the freeze for ${endBoundary} 00:00 is stamped ${end.frozenAt.replace('T', ' ')}` };
  const imp = swappedDelta(
    start.importCenti,
    end.importCenti,
    swaps.map((w) => [w.finalImportCenti, w.initialImportCenti]),
  );
  if (imp === undefined)
    return {
      ok: false,
      kind: 'backwards',
      reason: `forward energy went backwards (${kwhText(start.importCenti)} → ${kwhText(end.importCenti)} kWh): meter swapped or faulty`,
    };
  if (start.exportCenti === undefined || end.exportCenti === undefined) return { ok: true, importCenti: imp };
  if (swaps.some((w) => w.finalExportCenti === undefined || w.initialExportCenti === undefined)) return { ok: true, importCenti: imp };
  const exp = swappedDelta(
    start.exportCenti,
    end.exportCenti,
    swaps.map((w) => [w.finalExportCenti!, w.initialExportCenti!]),
  );
  if (exp === undefined)
    return {
      ok: false,
      kind: 'backwards',
      reason: `reverse energy went backwards (${kwhText(start.exportCenti)} → ${kwhText(end.exportCenti)} kWh): meter swapped or faulty`,
    };
  return { ok: true, importCenti: imp, exportCenti: exp };
}

/**
 * A register's movement over a window in which its meter was replaced: start → first old final, each new meter's
 * initial → its final (or the window's end). Undefined when any stretch went backwards.
 */
function swappedDelta(startCenti: number, endCenti: number, swaps: readonly (readonly [number, number])[]): number | undefined {
  let total = 0;
  let from = startCenti;
  for (const [finalCenti, initialCenti] of swaps) {
    const d = registerDelta(from, finalCenti);
    if (d === undefined) return undefined;
    total += d;
    from = initialCenti;
  }
  const last = registerDelta(from, endCenti);
  return last === undefined ? undefined : total + last;
}

/** end − start of a register that counts modulo REGISTER_MODULUS_CENTI; undefined when it went backwards. */
export function registerDelta(startCenti: number, endCenti: number): number | undefined {
  if (endCenti >= startCenti) return endCenti - startCenti;
  if (startCenti - endCenti > REGISTER_MODULUS_CENTI / 2) return endCenti + REGISTER_MODULUS_CENTI - startCenti;
  return undefined;
}

/** Classify a rate against a band [low, high] in %. */
export function classify(ratePct: number, band: readonly [number, number]): Exclude<LinelossClass, 'not-computable'> {
  if (ratePct < band[0]) return 'negative';
  if (ratePct > band[1]) return 'high';
  return 'qualified';
}

/**
 * The district's figure over one window:
 *   supply = Δ(supply meter forward − reverse) × CT × PT + Σ Δ(PV members' export)
 *   sales  = Σ Δ(members' forward)
 *   loss   = supply − sales,   rate = loss ÷ supply × 100 (two decimals)
 * Not computable when the supply meter has no usable freeze at either end (or supplied nothing), when a member's
 * register went backwards, or when fewer members than `completeness` % were read; the rate is then null.
 */
export function computeFigure(d: DistrictShape, w: WindowInput): LinelossFigure {
  const why: Record<string, string> = {};
  const missing: string[] = [];
  const supply = meterDelta(
    w.start.get(d.supplyMeter),
    w.end.get(d.supplyMeter),
    w.startBoundary,
    w.endBoundary,
    w.swaps?.get(d.supplyMeter),
  );
  if (!supply.ok) {
    missing.push(d.supplyMeter);
    why[d.supplyMeter] = supply.reason;
  }
  const memberCenti = new Map<string, number>();
  let salesCenti = 0;
  let pvCenti = 0;
  const backwards: string[] = [];
  for (const id of d.members) {
    const m = meterDelta(w.start.get(id), w.end.get(id), w.startBoundary, w.endBoundary, w.swaps?.get(id));
    if (!m.ok) {
      why[id] = m.reason;
      if (m.kind === 'backwards') backwards.push(id);
      else missing.push(id);
      continue;
    }
    memberCenti.set(id, m.importCenti);
    salesCenti += m.importCenti;
    if (d.pvMembers.has(id) && m.exportCenti !== undefined) pvCenti += m.exportCenti;
  }
  missing.sort();
  const read = memberCenti.size;
  const expected = d.members.length;
  const supplyCenti = supply.ok ? Math.round((supply.importCenti - (supply.exportCenti ?? 0)) * d.ctRatio * d.ptRatio) + pvCenti : null;

  let reason: string | undefined;
  if (supplyCenti === null) reason = `the supply meter ${d.supplyMeter}: ${why[d.supplyMeter]}`;
  else if (supplyCenti <= 0) reason = `the supply meter ${d.supplyMeter} registered no supply`;
  else if (backwards.length > 0) reason = `a member's register went backwards (${backwards.join(', ')}): not guessed`;
  else if (expected > 0 && (read / expected) * 100 < d.lineloss.completeness)
    reason = `${read} of ${expected} members read (${round2((read / expected) * 100)} %), fewer than the ${d.lineloss.completeness} % required`;

  const base = {
    district: d.id,
    kind: w.kind,
    period: w.period,
    supplyCenti,
    salesCenti: read > 0 || expected === 0 ? salesCenti : null,
    members: { expected, read },
    missing,
    why,
    memberCenti,
    ...(d.lineloss.target !== undefined ? { target: d.lineloss.target } : {}),
  };
  if (reason !== undefined || supplyCenti === null) {
    return {
      ...base,
      lossCenti: null,
      ratePct: null,
      class: 'not-computable',
      reason,
      flagged20: false,
      ...(d.lineloss.target !== undefined ? { diffPct: null } : {}),
    };
  }
  const lossCenti = supplyCenti - salesCenti;
  const ratePct = round2((lossCenti / supplyCenti) * 100);
  return {
    ...base,
    lossCenti,
    ratePct,
    class: classify(ratePct, d.lineloss.qualified),
    flagged20: ratePct >= FLAG_RATE_PCT,
    ...(d.lineloss.target !== undefined ? { diffPct: round2(ratePct - d.lineloss.target) } : {}),
  };
}

/** A member whose consumption moved against its own recent average. */
export interface Contributor {
  readonly meter: string;
  readonly kwh: number;
  /** Its average over the previous days it was read (up to a week). */
  readonly averageKwh: number;
  readonly changeKwh: number;
}

/**
 * The members that explain a change: each member's consumption in the window against its average over the previous
 * days it was read (`previous`, date → meter → 0.01 kWh), largest change first (ties by meter id). Members without
 * history are left out: there is nothing to compare them with.
 */
export function contributors(
  today: ReadonlyMap<string, number>,
  previous: ReadonlyMap<string, ReadonlyMap<string, number>>,
  limit = Number.POSITIVE_INFINITY,
): Contributor[] {
  const out: Contributor[] = [];
  for (const [meter, centi] of today) {
    let sum = 0;
    let days = 0;
    for (const day of previous.values()) {
      const v = day.get(meter);
      if (v !== undefined) {
        sum += v;
        days++;
      }
    }
    if (days === 0) continue;
    const avg = sum / days;
    out.push({ meter, kwh: centi / 100, averageKwh: round2(avg / 100), changeKwh: round2((centi - avg) / 100) });
  }
  out.sort((a, b) => Math.abs(b.changeKwh) - Math.abs(a.changeKwh) || (a.meter < b.meter ? -1 : 1));
  return out.slice(0, limit);
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function kwhText(centi: number): string {
  return (centi / 100).toFixed(2);
}
