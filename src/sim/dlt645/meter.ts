import {
  BROADCAST_ADDRESS,
  DIR_REPLY,
  F1997,
  F2007,
  findDataItemByPoint,
  FUNCTION_MASK,
  parsePassword,
  type Address,
  type Edition,
  type Frame,
} from '../../../protocols/dlt645/index.js';
import { encodeDigitsOrFf } from './bytes.js';
import { centi, EnergyModel, type MeteringFaults } from './energy.js';
import { demandClear, eventClear, meterClear } from './handlers/clear.js';
import { ReadHandler } from './handlers/read.js';
import { cardLoad, securityAuth } from './handlers/recharge.js';
import { remoteControl } from './handlers/relay.js';
import { broadcastTime, freeze } from './handlers/time.js';
import { changeBaud, changePassword, multiFunctionOutput, writeAddress, writeData } from './handlers/write.js';
import { clockMs, type MeterState } from './meter-state.js';
import { bindPoints, seedPoint } from './points.js';
import { Relay, type RelayCommand, type RelayCommandHeard, type TripCause } from './relay.js';
import { EsamSecurity, PlainSecurity, type EsamStats, type SecurityModule } from './security.js';
import { checkMeterSpec, type MeterKind, type MeterSpec } from './spec.js';
import { Wallet, type LoadRefusal, type PurchaseRecord } from './wallet.js';

type Addressing = 'unicast' | 'wildcard' | 'abbreviated' | 'broadcast';

export interface SimulatedMeterOptions {
  /** Host time the meter is switched on; consumption counts from here. Default: the first time handle() is called. */
  readonly startMs?: number;
  /** Checks the MACs of 0x03 loads. Default: {@link EsamSecurity} when the spec has `esam`, else {@link PlainSecurity} (accepts every MAC). */
  readonly security?: SecurityModule;
}

/** What a test or the CLI can see of a meter without going through the wire. Credit is in fen or 0.01 kWh. */
export interface MeterSnapshot {
  readonly address: Address;
  readonly edition: Edition;
  readonly kind: MeterKind;
  readonly clockMs: number;
  /** Power flowing now: 0 while the relay is open. */
  readonly powerKw: number;
  readonly importKwh: number;
  readonly exportKwh: number;
  readonly balance?: number;
  readonly overdraft?: number;
  readonly purchaseCount?: number;
  readonly customerNumber: string;
  readonly opened: boolean;
  readonly relay: {
    readonly open: boolean;
    readonly command: RelayCommand;
    readonly keepPower: boolean;
    readonly alarm: boolean;
    readonly tripCause?: TripCause;
    readonly tripCount: number;
    readonly closeCount: number;
    /** The 0x1C switching commands the meter carried out, oldest first (the newest 64). */
    readonly commands: readonly RelayCommandHeard[];
  };
  readonly lastOperatorCode?: string;
  readonly requestedBaud?: number;
  readonly multiFunctionOutput: number;
  readonly dailyFreezes: number;
  /** ESAM meters: identity authentications tried, MAC failures, whether a session is open. */
  readonly esam?: EsamStats;
}

/**
 * One DL/T 645 prepaid meter as a pure state machine: a request frame and the host time in, reply frames out
 * (none for broadcasts, foreign addresses and silently refused commands). Time is injected, so consumption,
 * clock skew, valid-until deadlines and daily freezes are all testable without waiting. This class holds the
 * meter's front: addressing, dispatch by function code, and what a test or the CLI does to a meter by hand; the
 * energy model (energy.ts), the point bindings (points.ts) and one handler per function family (handlers/) do
 * the work.
 *
 * @example
 * const meter = new SimulatedMeter({ address: '000000000001', kind: 'money', balance: 50 });
 * const [reply] = meter.handle(readData('000000000001', '00900200'), Date.now());
 */
export class SimulatedMeter {
  readonly edition: Edition;
  readonly kind: MeterKind;
  readonly phases: 1 | 3;
  readonly blockReads: boolean;
  readonly vendorCredit: MeterSpec['vendorCredit'];
  readonly maxReplyData: number;
  /** Reply delay the bus applies to this meter unless told otherwise. */
  readonly delayMs: number;

  readonly #m: MeterState;
  readonly #reads: ReadHandler;

  constructor(input: MeterSpec, options: SimulatedMeterOptions = {}) {
    const spec = checkMeterSpec(input);
    this.edition = spec.edition ?? '2007';
    this.kind = this.edition === '1997' ? 'plain' : (spec.kind ?? 'money');
    this.phases = spec.phases ?? 1;
    this.blockReads = spec.blockReads ?? true;
    this.vendorCredit = spec.vendorCredit;
    this.maxReplyData = spec.maxReplyData ?? 200;
    this.delayMs = spec.delayMs ?? 0;
    const passwords = new Map<number, string>();
    const pw = spec.password ?? '02000000';
    for (const text of typeof pw === 'string' ? [pw] : pw) {
      const p = parsePassword(text);
      if (p.ok) passwords.set(p.value.level, p.value.code);
    }
    const relay = new Relay(spec.relay === 'open', spec.keepPower ?? false);
    const cents = (v: number | undefined) => Math.round((v ?? 0) * 100);
    const wallet =
      this.kind === 'plain'
        ? undefined
        : new Wallet({
            balance: cents(spec.balance),
            overdraft: cents(spec.overdraft),
            overdraftLimit: cents(spec.overdraftLimit),
            hoardingLimit: cents(spec.hoardingLimit),
            purchaseCount: spec.purchaseCount ?? 0,
          });
    this.#m = {
      address: spec.address,
      edition: this.edition,
      kind: this.kind,
      phases: this.phases,
      blockReads: this.blockReads,
      vendorCredit: this.vendorCredit,
      maxReplyData: this.maxReplyData,
      registers: new Map(),
      live: new Map(),
      passwords,
      relay,
      wallet,
      security: options.security ?? (spec.esam ? new EsamSecurity(spec.esam.key) : new PlainSecurity()),
      energy: new EnergyModel({
        kind: this.kind,
        phases: this.phases,
        relay,
        wallet,
        powerKw: spec.powerKw ?? 0,
        price: spec.price ?? 0.56,
      }),
      clock: {
        now: options.startMs ?? 0,
        lastMs: options.startMs,
        offsetMs: (spec.clockOffsetSeconds ?? 0) * 1000,
        maxBroadcastSkewMs: (spec.maxBroadcastSkewSeconds ?? 300) * 1000,
        lastBroadcastDay: undefined,
      },
      counters: { programming: 0, meterClear: 0, demandClear: 0, eventClear: 0, timeSet: 0, coverOpen: 0, powerDown: 0 },
      statusBase: new Map(),
      customerNumber: spec.customerNumber ?? '000000000000',
      opened: spec.opened ?? true,
      lastOperatorCode: undefined,
      requestedBaud: undefined,
      multiFunctionMode: 0,
    };
    this.#reads = new ReadHandler(this.#m);
    bindPoints(this.#m);
    const meterNumber = findDataItemByPoint('meter.number', this.edition);
    if (meterNumber) this.#m.registers.set(meterNumber.di, encodeDigitsOrFf(spec.address, 6));
    for (const [key, value] of Object.entries(spec.registers ?? {})) seedPoint(this.#m, key, value);
  }

  get address(): Address {
    return this.#m.address;
  }

  /** True when a frame to `address` reaches this meter: its own, the wildcard, an abbreviated match, or broadcast. */
  hears(address: Address): boolean {
    return this.#addressing(address) !== undefined;
  }

  /** Answer one request received at host time `nowMs`. Replies (D7 = 1), such as an adapter's echo, are ignored. */
  handle(request: Frame, nowMs: number): Frame[] {
    if (request.control & DIR_REPLY) return [];
    const how = this.#addressing(request.address);
    if (!how) return [];
    this.advance(nowMs);
    const reply = this.edition === '2007' ? this.#dispatch2007(request, how) : this.#dispatch1997(request, how);
    return reply && how !== 'broadcast' ? [reply] : [];
  }

  /** Run consumption, balance and daily freezes up to host time `nowMs`. */
  advance(nowMs: number): void {
    const clock = this.#m.clock;
    if (clock.lastMs === undefined || nowMs <= clock.lastMs) {
      clock.lastMs ??= nowMs;
      clock.now = nowMs;
      return;
    }
    this.#m.energy.run(clock.lastMs, nowMs, clock.offsetMs);
    clock.lastMs = nowMs;
    clock.now = nowMs;
  }

  /** Change the load at host time `nowMs` (consumption before it is counted at the old power). */
  setPowerKw(kw: number, nowMs: number): void {
    if (!Number.isFinite(kw)) throw new TypeError('kw is not a finite number');
    this.advance(nowMs);
    this.#m.energy.powerKw = kw;
  }

  /**
   * A user card inserted at the meter (card-prepaid meters, docs/reference/cards.md § How a meter takes a user card): loads `amount` (fen or 0.01 kWh)
   * when `count` is the meter's purchase count + 1, under the same rules as any load; says why not otherwise.
   */
  insertCardLoad(count: number, amount: number, nowMs: number): 'loaded' | LoadRefusal | 'no-wallet' {
    this.advance(nowMs);
    return cardLoad(this.#m, count, amount);
  }

  /** The customer presses the button: closes a relay left open by "close allowed" when there is credit. */
  pressButton(nowMs: number): boolean {
    this.advance(nowMs);
    if (this.#m.wallet?.exhausted) return false;
    return this.#m.relay.pressButton();
  }

  /**
   * Metering faults from host time `nowMs` on (consumption before it is registered as it was): a lost phase, a
   * bypass, freezes stamped days off. Fields left out keep their setting.
   */
  setMeteringFaults(faults: MeteringFaults, nowMs: number): void {
    const f = { ...this.#m.energy.faults, ...Object.fromEntries(Object.entries(faults).filter(([, v]) => v !== undefined)) };
    if (!Number.isInteger(f.lostPhases) || f.lostPhases < 0 || f.lostPhases > this.phases)
      throw new TypeError(`lostPhases is a whole number from 0 to ${this.phases}`);
    if (!Number.isInteger(f.freezeStampDays)) throw new TypeError('freezeStampDays is a whole number of days');
    this.advance(nowMs);
    this.#m.energy.faults = f;
  }

  /**
   * Sets a register or a settable point at host time `nowMs`, as the spec's `registers` do (`voltage.a`, `status.word1`,
   * `04000504`): how a test or the CLI injects a fault while the meter runs. Throws what is wrong.
   */
  seed(point: string, value: number | string, nowMs: number): void {
    this.advance(nowMs);
    seedPoint(this.#m, point, value);
  }

  /** Injects a metering fault from host time `nowMs`: 0 stops the registers, 8 makes them run 8 times too fast. */
  setMeteringFactor(factor: number, nowMs: number): void {
    if (!Number.isFinite(factor) || factor < 0) throw new TypeError('factor is not a number >= 0');
    this.advance(nowMs);
    this.#m.energy.meteringFactor = factor;
  }

  /** Neutral current as a share of the live current (1 = sound; 0.2 = most current returns another way: a bypass). */
  setNeutralShare(share: number): void {
    if (!Number.isFinite(share) || share < 0) throw new TypeError('share is not a number >= 0');
    this.#m.energy.neutralShare = share;
  }

  /** Moves the meter's clock by `seconds` (its crystal drifted, or someone set it wrong). */
  shiftClock(seconds: number, nowMs: number): void {
    this.advance(nowMs);
    this.#m.clock.offsetMs += seconds * 1000;
  }

  /** Someone opened the meter cover (event 03300D00). */
  recordCoverOpen(nowMs: number): void {
    this.advance(nowMs);
    this.#m.counters.coverOpen++;
  }

  /** The meter lost supply and came back (event 03110000). */
  recordPowerDown(nowMs: number): void {
    this.advance(nowMs);
    this.#m.counters.powerDown++;
  }

  /** The loads the meter accepted, oldest first (the last ten, as record 0333xxNN keeps them): a test's proof of "loaded once". */
  purchaseRecords(): readonly PurchaseRecord[] {
    return [...(this.#m.wallet?.records ?? [])].reverse();
  }

  snapshot(): MeterSnapshot {
    const m = this.#m;
    const w = m.wallet;
    return {
      address: m.address,
      edition: this.edition,
      kind: this.kind,
      clockMs: clockMs(m),
      powerKw: m.energy.effectivePowerKw(),
      importKwh: centi(m.energy.importWh[0]!),
      exportKwh: centi(m.energy.exportWh[0]!),
      ...(w ? { balance: w.balance, overdraft: w.overdraft, purchaseCount: w.purchaseCount } : {}),
      customerNumber: m.customerNumber,
      opened: m.opened,
      relay: {
        open: m.relay.open,
        command: m.relay.command,
        keepPower: m.relay.keepPower,
        alarm: m.relay.alarm,
        ...(m.relay.tripCause ? { tripCause: m.relay.tripCause } : {}),
        tripCount: m.relay.tripCount,
        closeCount: m.relay.closeCount,
        commands: [...m.relay.commands],
      },
      ...(m.lastOperatorCode ? { lastOperatorCode: m.lastOperatorCode } : {}),
      ...(m.requestedBaud ? { requestedBaud: m.requestedBaud } : {}),
      multiFunctionOutput: m.multiFunctionMode,
      dailyFreezes: m.energy.freezes.length,
      ...(m.security.stats ? { esam: m.security.stats(m.clock.now) } : {}),
    };
  }

  #addressing(target: Address): Addressing | undefined {
    const own = this.#m.address;
    if (target === BROADCAST_ADDRESS) return 'broadcast';
    if (target === own) return 'unicast';
    let real = 0;
    for (let i = 0; i < 12; i += 2) {
      const b = target.slice(i, i + 2);
      if (b === 'AA') continue;
      if (b !== own.slice(i, i + 2)) return undefined;
      real++;
    }
    return real === 0 ? 'wildcard' : 'abbreviated';
  }

  #dispatch2007(req: Frame, how: Addressing): Frame | undefined {
    const m = this.#m;
    const fn = req.control & FUNCTION_MASK;
    const readable = how !== 'broadcast';
    switch (fn) {
      case F2007.readData:
        return readable ? this.#reads.read(req, 4) : undefined;
      case F2007.readFollowUp:
        return readable ? this.#reads.readFollowUp(req) : undefined;
      case F2007.readAddress:
        return readable ? this.#reads.readAddress(req) : undefined;
      case F2007.writeAddress:
        return how === 'wildcard' ? writeAddress(m, req) : undefined;
      case F2007.broadcastTime:
        // A meter's own address is not accepted for time sync (docs/reference/dlt645.md § Addresses).
        if (how === 'broadcast') broadcastTime(m, req);
        return undefined;
      case F2007.freeze:
        return how === 'unicast' || how === 'broadcast' ? freeze(m, req) : undefined;
      case F2007.multiFunctionOutput:
        return how === 'unicast' || how === 'broadcast' ? multiFunctionOutput(m, req) : undefined;
    }
    // Writes, clears, control and security act only on the meter's own address; the wildcard would make every meter act.
    if (how !== 'unicast') return undefined;
    switch (fn) {
      case F2007.securityAuth:
        return securityAuth(m, req);
      case F2007.writeData:
        return writeData(m, req, true);
      case F2007.changeBaud:
        return changeBaud(m, req);
      case F2007.changePassword:
        return changePassword(m, req);
      case F2007.demandClear:
        return demandClear(m, req);
      case F2007.meterClear:
        return meterClear(m, req);
      case F2007.eventClear:
        return eventClear(m, req);
      case F2007.remoteControl:
        return remoteControl(m, req);
    }
    return undefined; // unknown function code: meters stay silent
  }

  #dispatch1997(req: Frame, how: Addressing): Frame | undefined {
    const m = this.#m;
    switch (req.control & FUNCTION_MASK) {
      case F1997.readData:
        return how !== 'broadcast' ? this.#reads.read(req, 2) : undefined;
      case F1997.readFollowUp:
        return how !== 'broadcast' ? this.#reads.readFollowUp1997(req) : undefined;
      case F1997.broadcastTime:
        if (how === 'broadcast') broadcastTime(m, req);
        return undefined;
      case F1997.writeAddress:
        return how === 'wildcard' ? writeAddress(m, req) : undefined;
      case F1997.writeData:
        return how === 'unicast' ? writeData(m, req, false) : undefined;
    }
    return undefined;
  }
}
