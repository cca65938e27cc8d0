/** The alert kinds meterd raises: these names are the contract with the station (docs/alerts.md). */
export const ALERT_KINDS = [
  'comm-loss',
  'voltage-loss',
  'phase-break',
  'reverse-power',
  'relay-mismatch',
  'battery-low',
  'cover-open',
  'energy-backwards',
  'energy-stuck',
  'energy-runaway',
  'current-mismatch',
  'clock-drift',
  'balance-low',
  'purchase-mismatch',
  'malignant-load',
  'line-loss-high',
  'line-loss-negative',
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * How each kind ends. `auto`: the detector clears it after `clearAfter` good polls in a row. `ack`: a person
 * acknowledges it (a counter never falls; an outside load does not undo itself).
 */
export const CLEARED_BY: Readonly<Record<AlertKind, 'auto' | 'ack'>> = {
  'comm-loss': 'auto',
  'voltage-loss': 'auto',
  'phase-break': 'auto',
  'reverse-power': 'auto',
  'relay-mismatch': 'auto',
  'battery-low': 'auto',
  'cover-open': 'ack',
  'energy-backwards': 'auto',
  'energy-stuck': 'auto',
  'energy-runaway': 'auto',
  'current-mismatch': 'auto',
  'clock-drift': 'auto',
  'balance-low': 'auto',
  'purchase-mismatch': 'ack',
  'malignant-load': 'ack',
  'line-loss-high': 'auto',
  'line-loss-negative': 'auto',
};

export const DEFAULT_SEVERITY: Readonly<Record<AlertKind, Severity>> = {
  'comm-loss': 'warning',
  'voltage-loss': 'critical',
  'phase-break': 'critical',
  'reverse-power': 'warning',
  'relay-mismatch': 'critical',
  'battery-low': 'warning',
  'cover-open': 'critical',
  'energy-backwards': 'critical',
  'energy-stuck': 'critical',
  'energy-runaway': 'critical',
  'current-mismatch': 'warning',
  'clock-drift': 'warning',
  'balance-low': 'info',
  'purchase-mismatch': 'critical',
  'malignant-load': 'warning',
  'line-loss-high': 'warning',
  'line-loss-negative': 'warning',
};

/**
 * Status-word conditions (the names profiles give their bits, `device-profiles/*.yaml` `status:`) that mean an alert
 * kind; a phase suffix (`voltage-loss.a`) is kept as the phase. A profile adds its own with `alerts.conditions`.
 */
export const CONDITION_KINDS: Readonly<Record<string, AlertKind>> = {
  'clock-battery-low': 'battery-low',
  'reading-battery-low': 'battery-low',
  'battery-low': 'battery-low',
  'reverse-power': 'reverse-power',
  'power-reversal': 'reverse-power',
  'relay-fault': 'relay-mismatch',
  'voltage-loss': 'voltage-loss',
  'phase-break': 'phase-break',
  'cover-open': 'cover-open',
  'terminal-cover-open': 'cover-open',
  'malignant-load': 'malignant-load',
};

/** Event counters whose rise means an alert kind; a profile adds its own with `alerts.counters`. */
export const COUNTER_KINDS: Readonly<Record<string, AlertKind>> = {
  'events.cover-open.count': 'cover-open',
  'events.terminal-cover-open.count': 'cover-open',
  'events.malignant-load.count': 'malignant-load',
};

export function isAlertKind(text: string): text is AlertKind {
  return (ALERT_KINDS as readonly string[]).includes(text);
}

/** Detector thresholds of one meter, durations in ms: what config `alerts:` resolves to and the detectors take. */
export interface AlertThresholds {
  /** Import energy unchanged this long while the power says it should have moved: energy-stuck. */
  readonly stuckAfterMs: number;
  /** The least energy the power implies over the stuck window (kWh) before the register counts as stuck. */
  readonly stuckMinKwh: number;
  /** Δenergy ÷ (power × Δt) above this: energy-runaway, critical. */
  readonly runawayFactor: number;
  /** … above this (but not the runaway factor): energy-runaway as an over-difference warning. */
  readonly overDifferenceFactor: number;
  readonly clockDriftMs: number;
  /** Prepaid balance under this (yuan on money meters, kWh on energy meters): balance-low. */
  readonly balanceLow: number;
  readonly nominalVoltage: number;
  /** Share of the nominal voltage under which a phase with current flowing has lost voltage (0.6 = 60 %). */
  readonly voltageLossShare: number;
  /** Current (A) at or above which current counts as flowing. */
  readonly currentFlowingA: number;
  /** Commanded and actual relay may disagree this long (the meter's own switching delay). */
  readonly relayDelayMs: number;
  /** Good polls in a row that clear a self-clearing alert. */
  readonly clearAfter: number;
  readonly severity: Readonly<Record<AlertKind, Severity>>;
}
