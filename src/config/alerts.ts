import { z } from 'zod';
import { ALERT_KINDS, DEFAULT_SEVERITY, SEVERITIES, type AlertKind, type AlertThresholds, type Severity } from '../values/alert-kinds.js';
import { durationProblem, parseDuration } from './duration.js';

const duration = z.union([z.string(), z.number()]);
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time of day, HH:MM, e.g. "00:00"');

/** The thresholds a station may set for all meters, and per tag, district or meter. */
const thresholdFields = {
  /** Import energy unchanged this long while the power says it should have moved (concentrators: 15 min). */
  stuckAfter: duration.optional(),
  /** Energy (kWh) the power must imply over the stuck window before an unchanged register is stuck. */
  stuckMinKwh: z.number().positive().max(100).optional(),
  /** Δenergy ÷ (power × Δt) above this raises energy-runaway (firmware default 6). */
  runawayFactor: z.number().gt(1).max(100).optional(),
  /** … above this it is an over-difference warning (firmware default 4). */
  overDifferenceFactor: z.number().gt(1).max(100).optional(),
  /** Meter clock off by more than this raises clock-drift (default 5m; smaller drifts are corrected by broadcast). */
  clockDrift: duration.optional(),
  /** Prepaid balance under this raises balance-low: yuan on money meters, kWh on energy meters. */
  balanceLow: z.number().min(0).max(1_000_000).optional(),
  /** Nominal phase voltage (V). */
  nominalVoltage: z.number().positive().max(1000).optional(),
  /** A phase under this share of nominal with current flowing has lost voltage (0.6 = 60 %). */
  voltageLossShare: z.number().gt(0).lt(1).optional(),
  /** Current (A) at or above which current counts as flowing. */
  currentFlowing: z.number().positive().max(100).optional(),
  /** How long commanded and actual relay state may disagree (the meter's switching delay). */
  relayDelay: duration.optional(),
  /** Good polls in a row that clear a self-clearing alert (concentrators: 3). */
  clearAfter: z.number().int().min(1).max(100).optional(),
  severity: z.partialRecord(z.enum(ALERT_KINDS), z.enum(SEVERITIES)).optional(),
};

export const alertsSchema = z.strictObject({
  ...thresholdFields,
  /** Later entries win; a meter takes every entry whose tags, districts or meters name it. */
  overrides: z
    .array(
      z.strictObject({
        tags: z.array(z.string()).optional(),
        districts: z.array(z.string()).optional(),
        meters: z.array(z.string()).optional(),
        ...thresholdFields,
      }),
    )
    .default([]),
});

export const clockSchema = z.strictObject({
  /** auto: correct meter clocks 1 to 5 minutes off by broadcast, at most once a day per bus; off: only alert. */
  sync: z.enum(['auto', 'off']).default('auto'),
  /** Local times (besides midnight) near which no clock is checked or set: the meters' settlement times. */
  settlementTimes: z.array(hhmm).default([]),
});

/** Resolved thresholds, durations in ms: one type with the detectors' settings (src/values). */
export type { AlertThresholds };

export interface AlertsConfig {
  readonly defaults: AlertThresholds;
  readonly overrides: readonly {
    readonly tags: readonly string[];
    readonly districts: readonly string[];
    readonly meters: readonly string[];
    readonly set: Partial<AlertThresholds>;
  }[];
}

export interface ClockConfig {
  readonly sync: 'auto' | 'off';
  readonly settlementTimes: readonly string[];
}

export const DEFAULT_THRESHOLDS: AlertThresholds = {
  stuckAfterMs: 15 * 60_000,
  stuckMinKwh: 0.1,
  runawayFactor: 6,
  overDifferenceFactor: 4,
  clockDriftMs: 5 * 60_000,
  balanceLow: 10,
  nominalVoltage: 220,
  voltageLossShare: 0.6,
  currentFlowingA: 0.25,
  relayDelayMs: 2 * 60_000,
  clearAfter: 3,
  severity: DEFAULT_SEVERITY,
};

type Raw = z.infer<typeof alertsSchema>;
type RawThresholds = Omit<Raw, 'overrides'>;

/** Resolves the `alerts:` section; `at` reports a problem at a path below `alerts`. */
export function resolveAlerts(raw: Raw | undefined, at: (path: PropertyKey[], message: string) => void): AlertsConfig {
  const section = raw ?? { overrides: [] };
  const defaults = { ...DEFAULT_THRESHOLDS, ...thresholds(section, ['alerts'], at) };
  defaults.severity = { ...DEFAULT_SEVERITY, ...section.severity };
  if (defaults.overDifferenceFactor >= defaults.runawayFactor)
    at(
      ['alerts', 'overDifferenceFactor'],
      `must be below runawayFactor (${defaults.runawayFactor}): the over-difference warning comes first`,
    );
  return {
    defaults,
    overrides: section.overrides.map((o, i) => {
      if (!o.tags && !o.districts && !o.meters) at(['alerts', 'overrides', i], 'name the meters it applies to: tags, districts or meters');
      return {
        tags: o.tags ?? [],
        districts: o.districts ?? [],
        meters: o.meters ?? [],
        set: thresholds(o, ['alerts', 'overrides', i], at),
      };
    }),
  };
}

/** The thresholds of one meter: the defaults, then every override naming it, in order. */
export function thresholdsFor(config: AlertsConfig, meter: { id: string; tags: readonly string[]; district?: string }): AlertThresholds {
  let out: AlertThresholds = config.defaults;
  for (const o of config.overrides) {
    const hit =
      o.meters.includes(meter.id) ||
      o.tags.some((t) => meter.tags.includes(t)) ||
      (meter.district !== undefined && o.districts.includes(meter.district));
    if (hit) out = { ...out, ...o.set, severity: { ...out.severity, ...o.set.severity } };
  }
  return out;
}

function thresholds(
  raw: RawThresholds,
  path: PropertyKey[],
  at: (path: PropertyKey[], message: string) => void,
): Partial<AlertThresholds> & { severity?: Partial<Record<AlertKind, Severity>> } {
  const ms = (v: string | number | undefined, key: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const parsed = parseDuration(v);
    if (parsed === undefined || parsed < min) {
      at([...path, key], durationProblem(v, min));
      return undefined;
    }
    return parsed;
  };
  const out: Record<string, unknown> = {};
  const put = (key: keyof AlertThresholds, value: unknown) => {
    if (value !== undefined) out[key] = value;
  };
  put('stuckAfterMs', ms(raw.stuckAfter, 'stuckAfter', 60_000));
  put('stuckMinKwh', raw.stuckMinKwh);
  put('runawayFactor', raw.runawayFactor);
  put('overDifferenceFactor', raw.overDifferenceFactor);
  put('clockDriftMs', ms(raw.clockDrift, 'clockDrift', 60_000));
  put('balanceLow', raw.balanceLow);
  put('nominalVoltage', raw.nominalVoltage);
  put('voltageLossShare', raw.voltageLossShare);
  put('currentFlowingA', raw.currentFlowing);
  put('relayDelayMs', ms(raw.relayDelay, 'relayDelay', 0));
  put('clearAfter', raw.clearAfter);
  if (raw.severity) out.severity = raw.severity;
  return out as Partial<AlertThresholds>;
}
