import type { PointValue } from '../../store/index.js';
import type { AlertKind, AlertThresholds, Severity } from './kinds.js';

/** Thresholds for one meter (config `alerts:` with its overrides applied): one type, shared with the config. */
export type DetectorSettings = AlertThresholds;

/** What a meter's profile (and its config tags) say about where a fault shows. Built once per meter. */
export interface MeterModel {
  /** Status-word bits that mean an alert kind, with the phase when the condition names one. */
  readonly statusBits: readonly { point: string; bit: number; kind: AlertKind; phase?: string }[];
  /** Event counters whose rise means an alert kind. */
  readonly counters: readonly { point: string; kind: AlertKind }[];
  /** The relay's actual and commanded bits, when the meter reports both. */
  readonly relay?: { readonly point: string; readonly actualBit: number; readonly commandBit: number };
  /** Tagged `pv`: export is expected, not reverse power. */
  readonly pv: boolean;
  /** Phases the meter measures (1 or 3). */
  readonly phases: 1 | 3;
  /** Energy registers wrap here (DL/T 645 XXXXXX.XX kWh: 1,000,000). */
  readonly energyModulus: number;
}

/** One detector's verdict on one source of evidence in one reading. Never made from a value that is missing. */
export interface Observation {
  readonly kind: AlertKind;
  /** Where the verdict comes from (a status bit, a register, the inference); each source clears on its own. */
  readonly source: string;
  readonly bad: boolean;
  readonly evidence?: Readonly<Record<string, unknown>>;
  /** Severity for this raise when it is not the kind's configured one (an over-difference is a warning). */
  readonly severity?: Severity;
  /** Bad verdicts in a row before a raise (current-mismatch waits for 3). */
  readonly raiseAfter?: number;
  /** Each bad verdict is a new event (a counter rose), not a state that lasts. */
  readonly pulse?: boolean;
  /** Good verdicts in a row that end this source's fault, when not the configured `clearAfter`. */
  readonly clearAfter?: number;
}

/** Bounds on the energy the power samples imply over a stretch of time (kWh), each segment between two samples taken at its lower and higher end. */
interface Implied {
  lower: number;
  upper: number;
  /** False when a gap without power samples lies in it: nothing is judged on it. */
  whole: boolean;
}

/** An energy reading whose window waits for the power sample after it, so the last stretch is bounded on both sides. */
interface PendingWindow {
  at: number;
  kwh: number;
  delta: number;
  minutes: number;
  implied: Implied;
  /** The register did not move: judge whether it should have. */
  stuckCheck: boolean;
}

/** What the detectors remember of a meter between readings; JSON, kept in SQLite so a restart loses nothing. */
export interface DetectorMemory {
  /** The last accepted total import register (kWh) and its time. */
  energy?: { kwh: number; at: number };
  /** The last power sample (kW) and its time. */
  power?: { kw: number; at: number };
  /** Implied energy since the last energy reading, over the segments closed by a power sample. */
  window?: Implied;
  /** When the import register last moved, and the least energy the power implies since then. */
  stuck?: { since: number; lower: number; whole: boolean };
  pending?: PendingWindow;
  export?: number;
  /** Last value of each event counter. */
  counters?: Record<string, number>;
  /** Since when the relay's commanded and actual bits disagree. */
  relaySince?: number;
}

/** Power samples further apart than this bound nothing: the meter was silent, the stretch is not judged. */
const MAX_POWER_GAP_MS = 10 * 60_000;
/** Below this the power implies too little energy to judge a register by (a 0.01 kWh step is noise). */
const MIN_IMPLIED_KWH = 0.01;

/**
 * Runs every detector over one answered reading and returns their verdicts; `memory` is updated in place.
 * Pure: no clock, no I/O; `at` is the reading's time. Detectors judge only the values that are present.
 */
export function detect(
  model: MeterModel,
  settings: DetectorSettings,
  memory: DetectorMemory,
  at: number,
  values: Readonly<Record<string, PointValue>>,
): Observation[] {
  const out: Observation[] = [];
  statusBits(model, values, out);
  counters(model, memory, values, out);
  relay(model, settings, memory, at, values, out);
  power(settings, memory, at, values, out);
  energy(model, settings, memory, at, values, out);
  exportRise(model, memory, values, out);
  phases(model, settings, values, out);
  neutral(model, values, out);
  balance(settings, values, out);
  return out;
}

/** A numeric value of a point, or undefined when it is missing, failed or not a number. */
export function num(values: Readonly<Record<string, PointValue>>, point: string): number | undefined {
  const v = values[point];
  return v !== undefined && 'v' in v && typeof v.v === 'number' && Number.isFinite(v.v) ? v.v : undefined;
}

function statusBits(model: MeterModel, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  for (const s of model.statusBits) {
    const word = num(values, s.point);
    if (word === undefined) continue;
    const set = ((word >>> s.bit) & 1) === 1;
    out.push({
      kind: s.kind,
      source: `${s.point}.${s.bit}`,
      bad: set,
      ...(set ? { evidence: { [s.point]: word, bit: s.bit, ...(s.phase ? { phase: s.phase } : {}) } } : {}),
    });
  }
}

function counters(model: MeterModel, memory: DetectorMemory, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  for (const c of model.counters) {
    const now = num(values, c.point);
    if (now === undefined) continue;
    memory.counters ??= {};
    const seen = memory.counters;
    const before = seen[c.point];
    seen[c.point] = now;
    // The first look only learns the count; a count that fell was cleared at the meter (a new baseline).
    if (before === undefined || now <= before) {
      out.push({ kind: c.kind, source: c.point, bad: false, pulse: true });
      continue;
    }
    out.push({ kind: c.kind, source: c.point, bad: true, pulse: true, evidence: { [c.point]: now, before } });
  }
}

function relay(
  model: MeterModel,
  settings: DetectorSettings,
  memory: DetectorMemory,
  at: number,
  values: Readonly<Record<string, PointValue>>,
  out: Observation[],
): void {
  if (!model.relay) return;
  const word = num(values, model.relay.point);
  if (word === undefined) return;
  const actualOpen = ((word >>> model.relay.actualBit) & 1) === 1;
  const commandOpen = ((word >>> model.relay.commandBit) & 1) === 1;
  if (actualOpen === commandOpen) {
    delete memory.relaySince;
    out.push({ kind: 'relay-mismatch', source: 'relay-bits', bad: false });
    return;
  }
  memory.relaySince ??= at;
  const forMs = at - memory.relaySince;
  if (forMs < settings.relayDelayMs) return; // still inside the meter's switching delay: no verdict yet
  out.push({
    kind: 'relay-mismatch',
    source: 'relay-bits',
    bad: true,
    evidence: { commanded: commandOpen ? 'open' : 'closed', actual: actualOpen ? 'open' : 'closed', forSeconds: Math.round(forMs / 1000) },
  });
}

/** A power sample closes the segment since the previous one: its bounds go to the windows, and a waiting energy window is judged. */
function power(
  settings: DetectorSettings,
  memory: DetectorMemory,
  at: number,
  values: Readonly<Record<string, PointValue>>,
  out: Observation[],
): void {
  const kw = powerKw(values);
  if (kw === undefined) return;
  const prev = memory.power;
  memory.power = { kw, at };
  if (!prev || at <= prev.at) return;
  memory.window ??= { lower: 0, upper: 0, whole: true };
  const window = memory.window;
  const stuck = memory.stuck;
  const pending = memory.pending;
  if (at - prev.at > MAX_POWER_GAP_MS) {
    window.whole = false;
    if (stuck) stuck.whole = false;
    memory.pending = undefined;
    return;
  }
  const lo = Math.max(0, Math.min(prev.kw, kw)) / 3_600_000;
  const hi = Math.max(0, prev.kw, kw) / 3_600_000;
  // The part of the segment before a waiting energy reading belongs to its window.
  const split = pending && pending.at > prev.at && pending.at <= at ? pending.at : prev.at;
  if (pending && split === pending.at) {
    pending.implied.lower += lo * (split - prev.at);
    pending.implied.upper += hi * (split - prev.at);
    if (stuck) stuck.lower += lo * (split - prev.at);
    judge(settings, memory, pending, out);
    memory.pending = undefined;
  }
  window.lower += lo * (at - split);
  window.upper += hi * (at - split);
  if (stuck) stuck.lower += lo * (at - split);
}

/** Total active power in kW, from a profile point in kW or W. */
export function powerKw(values: Readonly<Record<string, PointValue>>): number | undefined {
  const v = values['power.active'];
  if (v === undefined || !('v' in v) || typeof v.v !== 'number' || !Number.isFinite(v.v)) return undefined;
  return v.unit === 'W' ? v.v / 1000 : v.v;
}

function energy(
  model: MeterModel,
  settings: DetectorSettings,
  memory: DetectorMemory,
  at: number,
  values: Readonly<Record<string, PointValue>>,
  out: Observation[],
): void {
  const kwh = num(values, 'energy.active.import');
  if (kwh === undefined) return;
  const last = memory.energy;
  if (!last) {
    memory.energy = { kwh, at };
    memory.stuck = { since: at, lower: 0, whole: true };
    memory.window = { lower: 0, upper: 0, whole: memory.power !== undefined };
    return;
  }
  let delta = kwh - last.kwh;
  // A drop of more than half the register's range is the register wrapping past 999999.99, not a decrease.
  if (delta < 0 && -delta > model.energyModulus / 2) delta += model.energyModulus;
  if (delta < 0) {
    // Not accepted: the next reading is judged against the last good value, and nothing else is judged on this one.
    out.push({
      kind: 'energy-backwards',
      source: 'energy.active.import',
      bad: true,
      evidence: { lastAcceptedKwh: last.kwh, lastAcceptedAt: new Date(last.at).toISOString(), readKwh: kwh },
    });
    return;
  }
  out.push({ kind: 'energy-backwards', source: 'energy.active.import', bad: false });
  memory.energy = { kwh, at };
  const window = memory.window ?? { lower: 0, upper: 0, whole: false };
  const pending: PendingWindow = {
    at,
    kwh,
    delta,
    minutes: Math.round((at - last.at) / 60_000),
    implied: { ...window, whole: window.whole && memory.power !== undefined && at - memory.power.at <= MAX_POWER_GAP_MS },
    stuckCheck: delta === 0,
  };
  memory.window = { lower: 0, upper: 0, whole: true };
  if (delta > 0) {
    memory.stuck = { since: at, lower: 0, whole: true };
    // A register that moves is no longer stuck: firmware clears the stopped event on any change.
    out.push({ kind: 'energy-stuck', source: 'energy.active.import', bad: false, clearAfter: 1 });
  }
  // Read with its power (one group): the window is closed now. Else the next power sample closes it.
  if (memory.power?.at === at) judge(settings, memory, pending, out);
  else memory.pending = pending;
}

/** Stuck and runaway over a closed window: the least implied energy for stuck, the most for runaway. */
function judge(settings: DetectorSettings, memory: DetectorMemory, w: PendingWindow, out: Observation[]): void {
  const stuck = memory.stuck;
  if (w.stuckCheck && stuck?.whole && w.at - stuck.since >= settings.stuckAfterMs && stuck.lower >= settings.stuckMinKwh) {
    out.push({
      kind: 'energy-stuck',
      source: 'energy.active.import',
      bad: true,
      evidence: {
        importKwh: w.kwh,
        unchangedSince: new Date(stuck.since).toISOString(),
        impliedKwh: round3(stuck.lower),
        powerKw: memory.power?.kw,
      },
    });
  }
  // Runaway and over-difference: judged only on a whole window in which the power implies a measurable energy.
  if (!w.implied.whole || w.implied.upper <= MIN_IMPLIED_KWH) return;
  const ratio = w.delta / w.implied.upper;
  const evidence = { deltaKwh: round3(w.delta), impliedKwh: round3(w.implied.upper), ratio: round3(ratio), minutes: w.minutes };
  if (ratio > settings.runawayFactor) out.push({ kind: 'energy-runaway', source: 'ratio', bad: true, evidence });
  else if (ratio > settings.overDifferenceFactor)
    out.push({
      kind: 'energy-runaway',
      source: 'ratio',
      bad: true,
      severity: 'warning',
      evidence: { ...evidence, level: 'over-difference' },
    });
  else out.push({ kind: 'energy-runaway', source: 'ratio', bad: false });
}

function exportRise(model: MeterModel, memory: DetectorMemory, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  const kwh = num(values, 'energy.active.export');
  if (kwh === undefined) return;
  const before = memory.export;
  memory.export = kwh;
  if (before === undefined || model.pv) return;
  let delta = kwh - before;
  if (delta < 0 && -delta > model.energyModulus / 2) delta += model.energyModulus;
  out.push({
    kind: 'reverse-power',
    source: 'energy.active.export',
    bad: delta > 0,
    ...(delta > 0 ? { evidence: { exportKwh: kwh, risenKwh: round3(delta) } } : {}),
  });
}

function phases(model: MeterModel, settings: DetectorSettings, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  const names = model.phases === 3 ? ['a', 'b', 'c'] : ['a'];
  const low = settings.nominalVoltage * settings.voltageLossShare;
  const volts = names.map((p) => num(values, `voltage.${p}`));
  const amps = names.map((p) => num(values, `current.${p}`));
  names.forEach((phase, i) => {
    const u = volts[i];
    const a = amps[i];
    if (u === undefined || a === undefined) return;
    const flowing = Math.abs(a) >= settings.currentFlowingA;
    out.push({
      kind: 'voltage-loss',
      source: `inferred.${phase}`,
      bad: u < low && flowing,
      ...(u < low && flowing ? { evidence: { phase, voltage: u, current: a, nominal: settings.nominalVoltage } } : {}),
    });
    if (model.phases !== 3) return;
    // A phase without voltage or current beside a healthy one: the phase is broken (a single-phase meter without voltage does not answer).
    const healthy = volts.some((v, k) => k !== i && v !== undefined && v >= settings.nominalVoltage * 0.8);
    const broken = u < low && !flowing && healthy;
    out.push({
      kind: 'phase-break',
      source: `inferred.${phase}`,
      bad: broken,
      ...(broken ? { evidence: { phase, voltage: u, current: a, nominal: settings.nominalVoltage } } : {}),
    });
  });
}

function neutral(model: MeterModel, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  if (model.phases !== 1) return;
  const live = num(values, 'current.a');
  const n = num(values, 'current.n');
  if (live === undefined || n === undefined) return;
  const diff = Math.abs(Math.abs(live) - Math.abs(n));
  const limit = Math.max(0.5, 0.1 * Math.max(Math.abs(live), Math.abs(n)));
  const bad = diff > limit;
  out.push({
    kind: 'current-mismatch',
    source: 'current.n',
    bad,
    raiseAfter: 3,
    ...(bad ? { evidence: { liveA: live, neutralA: n, differenceA: round3(diff), limitA: round3(limit) } } : {}),
  });
}

function balance(settings: DetectorSettings, values: Readonly<Record<string, PointValue>>, out: Observation[]): void {
  const money = num(values, 'credit.balance.money');
  const energy = num(values, 'credit.balance.energy');
  const b = money ?? energy;
  if (b === undefined) return;
  const bad = b < settings.balanceLow;
  out.push({
    kind: 'balance-low',
    source: money !== undefined ? 'credit.balance.money' : 'credit.balance.energy',
    bad,
    ...(bad ? { evidence: { balance: b, unit: money !== undefined ? 'CNY' : 'kWh', threshold: settings.balanceLow } } : {}),
  });
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
