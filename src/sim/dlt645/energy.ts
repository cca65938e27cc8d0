import type { MeterTime } from '../../../protocols/dlt645/index.js';
import type { Relay } from './relay.js';
import type { MeterKind } from './spec.js';
import { meterTimeAt, nextMidnight } from './time.js';
import type { Wallet } from './wallet.js';

const DAY_MS = 86_400_000;
/** An XXXXXX.XX kWh register holds 999999.99 at most and then counts on from 0: 10^6 kWh in Wh. */
export const REGISTER_MODULUS_WH = 1e9;
/** Daily freezes a meter keeps (05060001..0506003E, docs/reference/dlt645.md § Freezes). */
export const MAX_FREEZES = 62;

export interface DailyFreeze {
  readonly at: MeterTime;
  /** Forward active energy total and tariffs 1-4, in 0.01 kWh. */
  readonly energy: readonly number[];
  /** Reverse active energy total and tariffs 1-4, in 0.01 kWh. */
  readonly exported: readonly number[];
}

/**
 * Metering faults a test switches on (line-loss scenarios, docs/lineloss.md): what the meter registers, not what
 * flows. The load (`powerKw`) keeps flowing through the line either way.
 */
export interface MeteringFaults {
  /** Phases whose voltage or current the meter lost: it registers only the other phases' share. Default 0. */
  readonly lostPhases?: number;
  /** The customer's load goes around the meter: it registers nothing. Default false. */
  readonly bypass?: boolean;
  /** Freezes are stamped this many days off their real midnight (a meter whose calendar is wrong). Default 0. */
  readonly freezeStampDays?: number;
}

export interface EnergyModelOptions {
  readonly kind: MeterKind;
  readonly phases: 1 | 3;
  readonly relay: Relay;
  readonly wallet: Wallet | undefined;
  readonly powerKw: number;
  /** Yuan per kWh. */
  readonly price: number;
}

/**
 * What flows through the meter: the load, the energy registers, what the energy costs the wallet, and the daily
 * freezes. Energy is counted in Wh with fractions kept for the total and tariffs 1-4 (the simulator's one time
 * period is tariff 1); a wallet that runs dry inside a step trips the relay at that instant.
 */
export class EnergyModel {
  importWh = [0, 0, 0, 0, 0];
  exportWh = [0, 0, 0, 0, 0];
  powerKw: number;
  voltage = [220, 220, 220];
  powerFactor = 1;
  frequency = 50;
  /** Price in 0.0001 yuan/kWh. */
  priceE4: number;
  /**
   * How much of the energy that flows the registers count: 1 for a sound meter, 0 for a stuck register, 8 for a
   * meter running away (an injected fault; the wallet is charged for what the registers count).
   */
  meteringFactor = 1;
  /** Neutral current as a share of the live current: 1 on a sound single-phase circuit, else a bypass or leakage. */
  neutralShare = 1;
  /** Most recent first. */
  freezes: DailyFreeze[] = [];
  faults: Required<MeteringFaults> = { lostPhases: 0, bypass: false, freezeStampDays: 0 };
  readonly #kind: MeterKind;
  readonly #phases: 1 | 3;
  readonly #relay: Relay;
  readonly #wallet: Wallet | undefined;

  constructor(o: EnergyModelOptions) {
    this.#kind = o.kind;
    this.#phases = o.phases;
    this.#relay = o.relay;
    this.#wallet = o.wallet;
    this.powerKw = o.powerKw;
    this.priceE4 = Math.round(o.price * 1e4);
  }

  /** Power flowing now: 0 while the relay is open. */
  effectivePowerKw(): number {
    return this.#relay.open ? 0 : this.powerKw;
  }

  /**
   * Counts consumption from host time `from` to `to`, with a daily freeze at every meter midnight in between.
   * `offsetMs` is the meter clock's offset from host time.
   */
  run(from: number, to: number, offsetMs: number): void {
    let t = from;
    // Days older than the freeze history leave no trace, so years of simulated time cost one step, not one per day.
    const horizon = to - MAX_FREEZES * DAY_MS;
    if (t < horizon) {
      this.#accrue(t, horizon);
      t = horizon;
    }
    while (t < to) {
      const boundary = nextMidnight(t + offsetMs) - offsetMs;
      const end = Math.min(to, boundary);
      this.#accrue(t, end);
      if (end === boundary) this.dailyFreeze(boundary + offsetMs);
      t = end;
    }
  }

  /** Freezes the energy registers at meter time `clockMs`, most recent first. */
  dailyFreeze(clockMs: number): void {
    const energy = this.importWh.map((wh) => Math.floor(wh / 10));
    const exported = this.exportWh.map((wh) => Math.floor(wh / 10));
    this.freezes.unshift({ at: meterTimeAt(clockMs + this.faults.freezeStampDays * DAY_MS), energy, exported });
    if (this.freezes.length > MAX_FREEZES) this.freezes.length = MAX_FREEZES;
  }

  /** Meter clear: energy and freezes back to zero. */
  clear(): void {
    this.importWh = [0, 0, 0, 0, 0];
    this.exportWh = [0, 0, 0, 0, 0];
    this.freezes = [];
  }

  /** Current of phase `k` (0 = A) from the power, voltage and power factor. */
  phaseCurrent(k: number): number {
    if (k >= this.#phases) return 0;
    const v = this.voltage[k]!;
    if (v === 0 || this.powerFactor === 0) return 0;
    return ((this.effectivePowerKw() / this.#phases) * 1000) / (v * this.powerFactor);
  }

  /** Credit units (fen or 0.01 kWh) one kWh costs. */
  #unitsPerKwh(): number {
    return this.#kind === 'money' ? this.priceE4 / 100 : 100;
  }

  #accrue(from: number, to: number): void {
    const p = this.effectivePowerKw();
    if (p === 0 || to <= from) return;
    const flowing = (Math.abs(p) * (to - from)) / 3_600_000;
    // What the meter registers of what flows: nothing when bypassed, the healthy phases' share after a phase loss.
    const kwh = this.faults.bypass ? 0 : (flowing * (this.#phases - Math.min(this.faults.lostPhases, this.#phases))) / this.#phases;
    if (p < 0) {
      addWrapped(this.exportWh, kwh * 1000);
      return;
    }
    const w = this.#wallet;
    if (w && !this.#relay.keepPower) {
      const cost = kwh * this.#unitsPerKwh();
      const available = w.available;
      if (cost >= available) {
        // Credit runs out inside this step: count the energy up to that instant, then trip as a prepaid meter does.
        this.#addImport(cost > 0 ? (kwh * available) / cost : kwh);
        w.spendAll();
        this.#relay.trip('credit');
        return;
      }
    }
    w?.spend(kwh * this.#unitsPerKwh());
    this.#addImport(kwh);
  }

  #addImport(kwh: number): void {
    addWrapped(this.importWh, kwh * 1000 * this.meteringFactor);
  }
}

/** Adds to the total and tariff 1 registers, which roll over from 999999.99 kWh to 0 as a real register does. */
function addWrapped(registers: number[], wh: number): void {
  for (const k of [0, 1]) {
    registers[k]! += wh;
    if (registers[k]! >= REGISTER_MODULUS_WH) registers[k]! -= REGISTER_MODULUS_WH;
  }
}

/** Wh to kWh as the register shows it: truncated to 0.01 kWh, as a meter's display never rounds up. */
export function centi(wh: number): number {
  return Math.floor(wh / 10) / 100;
}

/** Reactive power for active power `p` at power factor `pf`. */
export function reactive(p: number, pf: number): number {
  if (pf <= 0 || pf >= 1) return 0;
  return Math.abs(p) * Math.sqrt(1 / (pf * pf) - 1);
}
