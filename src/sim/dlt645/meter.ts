import {
  abnormalReply,
  addressFromBytes,
  addressToBytes,
  allDataItems,
  BAUD_CODES,
  BROADCAST_ADDRESS,
  decodeMeterTime,
  decodeLayout,
  decodeLoadPayload,
  decodeValue,
  DIR_REPLY,
  diFromBytes,
  diToBytes,
  encodeBcdInteger,
  encodeDigits,
  encodeTime,
  encodeWord,
  ERR_2007,
  F1997,
  F2007,
  findDataItem,
  findDataItemByPoint,
  formatSize,
  IDENTITY_DI,
  LOAD_PAYLOAD_BYTES,
  FUNCTION_MASK,
  normalReply,
  OPENING_DI,
  parsePassword,
  readReplyData,
  RECHARGE_DI,
  SERR,
  type Address,
  type Edition,
  type Frame,
  type MeterTime,
  type TimeLayout,
  type ValueFormat,
} from '../../../protocols/dlt645/index.js';
import { blockMembers, defaultBytes, encodeRegisterValue, isBlockIdentifier, resolveIdentifier } from './registers.js';
import { Relay, type RelayCommand, type TripCause } from './relay.js';
import { EsamSecurity, PlainSecurity, type EsamStats, type SecurityModule } from './security.js';
import { checkMeterSpec, type MeterKind, type MeterSpec } from './spec.js';
import { dayOf, epochOf, meterTimeAt, minuteOfDay, nextMidnight } from './time.js';
import { Wallet, type LoadRefusal } from './wallet.js';

const bit = (table: typeof ERR_2007, name: string): number => 1 << table.find((e) => e.name === name)!.bit;
const ERR = {
  other: bit(ERR_2007, 'other-error'),
  noData: bit(ERR_2007, 'no-requested-data'),
  password: bit(ERR_2007, 'password-error'),
  baud: bit(ERR_2007, 'baud-rate-unchangeable'),
};
const SERR_BIT: Record<LoadRefusal | 'other-error' | 'mac-failed' | 'authentication-failed' | 'customer-number-mismatch', number> = {
  'other-error': bit(SERR, 'other-error'),
  'authentication-failed': bit(SERR, 'authentication-failed'),
  'repeat-recharge': bit(SERR, 'repeat-recharge'),
  'mac-failed': bit(SERR, 'mac-failed'),
  'customer-number-mismatch': bit(SERR, 'customer-number-mismatch'),
  'purchase-count-error': bit(SERR, 'purchase-count-error'),
  'over-hoarding-limit': bit(SERR, 'over-hoarding-limit'),
};

/** Status word 1 and 3 bits the simulator computes (docs/reference/dlt645.md § Status words); the other bits come from the seeded word. */
const SW1 = { reversePower: 1 << 4, overdraft: 1 << 14 };
const SW3 = {
  relayOpen: 1 << 4,
  commandTrip: 1 << 6,
  alarm: 1 << 7,
  kwhPrepaid: 1 << 8,
  moneyPrepaid: 1 << 9,
  keepPower: 1 << 12,
  notOpened: 1 << 14,
};
const SW1_MANAGED = SW1.reversePower | SW1.overdraft;
const SW3_MANAGED = Object.values(SW3).reduce((a, b) => a | b, 0);

const DAY_MS = 86_400_000;
const MAX_FREEZES = 62;
const MIDNIGHT_GUARD_MIN = 5;

const COUNTER_POINTS = {
  'events.programming.count': 'programming',
  'events.meter-clear.count': 'meterClear',
  'events.demand-clear.count': 'demandClear',
  'events.event-clear.count': 'eventClear',
  'events.time-set.count': 'timeSet',
  'events.cover-open.count': 'coverOpen',
  'events.power-down.count': 'powerDown',
} as const;
type Counter = (typeof COUNTER_POINTS)[keyof typeof COUNTER_POINTS];

type Addressing = 'unicast' | 'wildcard' | 'abbreviated' | 'broadcast';

/** A value the meter computes from its state; `write` is how a seed or a 0x14 write sets it. */
interface LiveValue {
  read(): Uint8Array;
  write?(bytes: Uint8Array): boolean;
  /** A master may set it with 0x14 (parameters such as the clock or the customer number). */
  master?: boolean;
  /** Why a spec cannot seed it, when it cannot. */
  notSeedable?: string;
}
type LiveFactory = (format: ValueFormat) => LiveValue;

interface DailyFreeze {
  readonly at: MeterTime;
  /** Forward active energy total and tariffs 1-4, in 0.01 kWh. */
  readonly energy: readonly number[];
}

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
 * clock skew, valid-until deadlines and daily freezes are all testable without waiting.
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

  #address: Address;
  private readonly registers = new Map<string, Uint8Array>();
  private readonly live = new Map<string, LiveValue>();
  private readonly passwords = new Map<number, string>();
  private readonly relay: Relay;
  private readonly wallet: Wallet | undefined;
  private readonly security: SecurityModule;
  private readonly counters: Record<Counter, number> = {
    programming: 0,
    meterClear: 0,
    demandClear: 0,
    eventClear: 0,
    timeSet: 0,
    coverOpen: 0,
    powerDown: 0,
  };
  /** Energy in Wh (fractions kept) for total and tariffs 1-4; the simulator's one time period is tariff 1. */
  private importWh = [0, 0, 0, 0, 0];
  private exportWh = [0, 0, 0, 0, 0];
  private powerKw: number;
  private voltage = [220, 220, 220];
  private powerFactor = 1;
  private frequency = 50;
  /** Price in 0.0001 yuan/kWh. */
  private priceE4: number;
  private statusBase = new Map<string, number>();
  private customerNumber: string;
  private opened: boolean;
  private clockOffsetMs: number;
  private readonly maxBroadcastSkewMs: number;
  private lastBroadcastDay: string | undefined;
  private lastMs: number | undefined;
  private now: number;
  private freezes: DailyFreeze[] = [];
  private pending: { di: string; chunks: Uint8Array[]; next: number } | undefined;
  // The identifiers a meter has are fixed once it is built, so block expansions are computed once each.
  private candidateCache: string[] | undefined;
  private readonly blockCache = new Map<string, string[]>();
  private lastOperatorCode: string | undefined;
  private requestedBaud: number | undefined;
  private multiFunctionMode = 0;

  constructor(input: MeterSpec, options: SimulatedMeterOptions = {}) {
    const spec = checkMeterSpec(input);
    this.#address = spec.address;
    this.edition = spec.edition ?? '2007';
    this.kind = this.edition === '1997' ? 'plain' : (spec.kind ?? 'money');
    this.phases = spec.phases ?? 1;
    this.blockReads = spec.blockReads ?? true;
    this.vendorCredit = spec.vendorCredit;
    this.maxReplyData = spec.maxReplyData ?? 200;
    this.delayMs = spec.delayMs ?? 0;
    this.powerKw = spec.powerKw ?? 0;
    this.priceE4 = Math.round((spec.price ?? 0.56) * 1e4);
    this.clockOffsetMs = (spec.clockOffsetSeconds ?? 0) * 1000;
    this.maxBroadcastSkewMs = (spec.maxBroadcastSkewSeconds ?? 300) * 1000;
    this.customerNumber = spec.customerNumber ?? '000000000000';
    this.opened = spec.opened ?? true;
    const pw = spec.password ?? '02000000';
    for (const text of typeof pw === 'string' ? [pw] : pw) {
      const p = parsePassword(text);
      if (p.ok) this.passwords.set(p.value.level, p.value.code);
    }
    this.relay = new Relay(spec.relay === 'open', spec.keepPower ?? false);
    const cents = (v: number | undefined) => Math.round((v ?? 0) * 100);
    this.wallet =
      this.kind === 'plain'
        ? undefined
        : new Wallet({
            balance: cents(spec.balance),
            overdraft: cents(spec.overdraft),
            overdraftLimit: cents(spec.overdraftLimit),
            hoardingLimit: cents(spec.hoardingLimit),
            purchaseCount: spec.purchaseCount ?? 0,
          });
    this.security = options.security ?? (spec.esam ? new EsamSecurity(spec.esam.key) : new PlainSecurity());
    this.lastMs = options.startMs;
    this.now = options.startMs ?? 0;
    this.bindLiveValues();
    const meterNumber = findDataItemByPoint('meter.number', this.edition);
    if (meterNumber) this.registers.set(meterNumber.di, encodeDigitsOrFf(this.#address, 6));
    for (const [key, value] of Object.entries(spec.registers ?? {})) this.seed(key, value);
  }

  get address(): Address {
    return this.#address;
  }

  /** True when a frame to `address` reaches this meter: its own, the wildcard, an abbreviated match, or broadcast. */
  hears(address: Address): boolean {
    return this.addressing(address) !== undefined;
  }

  /** Answer one request received at host time `nowMs`. Replies (D7 = 1), such as an adapter's echo, are ignored. */
  handle(request: Frame, nowMs: number): Frame[] {
    if (request.control & DIR_REPLY) return [];
    const how = this.addressing(request.address);
    if (!how) return [];
    this.advance(nowMs);
    const reply = this.edition === '2007' ? this.dispatch2007(request, how) : this.dispatch1997(request, how);
    return reply && how !== 'broadcast' ? [reply] : [];
  }

  /** Run consumption, balance and daily freezes up to host time `nowMs`. */
  advance(nowMs: number): void {
    if (this.lastMs === undefined || nowMs <= this.lastMs) {
      this.lastMs ??= nowMs;
      this.now = nowMs;
      return;
    }
    let t = this.lastMs;
    // Days older than the freeze history leave no trace, so years of simulated time cost one step, not one per day.
    const horizon = nowMs - MAX_FREEZES * DAY_MS;
    if (t < horizon) {
      this.accrue(t, horizon);
      t = horizon;
    }
    while (t < nowMs) {
      const boundary = nextMidnight(t + this.clockOffsetMs) - this.clockOffsetMs;
      const end = Math.min(nowMs, boundary);
      this.accrue(t, end);
      if (end === boundary) this.dailyFreeze(boundary + this.clockOffsetMs);
      t = end;
    }
    this.lastMs = nowMs;
    this.now = nowMs;
  }

  /** Change the load at host time `nowMs` (consumption before it is counted at the old power). */
  setPowerKw(kw: number, nowMs: number): void {
    if (!Number.isFinite(kw)) throw new TypeError('kw is not a finite number');
    this.advance(nowMs);
    this.powerKw = kw;
  }

  /** The customer presses the button: closes a relay left open by "close allowed" when there is credit. */
  /**
   * A user card inserted at the meter (card-prepaid meters, docs/reference/cards.md § How a meter takes a user card): loads `amount` (fen or 0.01 kWh)
   * when `count` is the meter's purchase count + 1, under the same rules as any load; says why not otherwise.
   */
  insertCardLoad(count: number, amount: number, nowMs: number): 'loaded' | LoadRefusal | 'no-wallet' {
    this.advance(nowMs);
    if (!this.wallet) return 'no-wallet';
    const refusal = this.wallet.check(amount, count);
    if (refusal) return refusal;
    this.wallet.load(amount, count, meterTimeAt(this.clockMs()));
    return 'loaded';
  }

  pressButton(nowMs: number): boolean {
    this.advance(nowMs);
    if (this.wallet?.exhausted) return false;
    return this.relay.pressButton();
  }

  /** Someone opened the meter cover (event 03300D00). */
  recordCoverOpen(nowMs: number): void {
    this.advance(nowMs);
    this.counters.coverOpen++;
  }

  /** The meter lost supply and came back (event 03110000). */
  recordPowerDown(nowMs: number): void {
    this.advance(nowMs);
    this.counters.powerDown++;
  }

  snapshot(): MeterSnapshot {
    const w = this.wallet;
    return {
      address: this.#address,
      edition: this.edition,
      kind: this.kind,
      clockMs: this.clockMs(),
      powerKw: this.effectivePowerKw(),
      importKwh: centi(this.importWh[0]!),
      exportKwh: centi(this.exportWh[0]!),
      ...(w ? { balance: w.balance, overdraft: w.overdraft, purchaseCount: w.purchaseCount } : {}),
      customerNumber: this.customerNumber,
      opened: this.opened,
      relay: {
        open: this.relay.open,
        command: this.relay.command,
        keepPower: this.relay.keepPower,
        alarm: this.relay.alarm,
        ...(this.relay.tripCause ? { tripCause: this.relay.tripCause } : {}),
        tripCount: this.relay.tripCount,
        closeCount: this.relay.closeCount,
      },
      ...(this.lastOperatorCode ? { lastOperatorCode: this.lastOperatorCode } : {}),
      ...(this.requestedBaud ? { requestedBaud: this.requestedBaud } : {}),
      multiFunctionOutput: this.multiFunctionMode,
      dailyFreezes: this.freezes.length,
      ...(this.security.stats ? { esam: this.security.stats(this.now) } : {}),
    };
  }

  // ---- addressing and dispatch ---------------------------------------------------------------------------------

  private addressing(target: Address): Addressing | undefined {
    if (target === BROADCAST_ADDRESS) return 'broadcast';
    if (target === this.#address) return 'unicast';
    let real = 0;
    for (let i = 0; i < 12; i += 2) {
      const b = target.slice(i, i + 2);
      if (b === 'AA') continue;
      if (b !== this.#address.slice(i, i + 2)) return undefined;
      real++;
    }
    return real === 0 ? 'wildcard' : 'abbreviated';
  }

  private dispatch2007(req: Frame, how: Addressing): Frame | undefined {
    const fn = req.control & FUNCTION_MASK;
    const readable = how !== 'broadcast';
    switch (fn) {
      case F2007.readData:
        return readable ? this.read(req, 4) : undefined;
      case F2007.readFollowUp:
        return readable ? this.readFollowUp(req) : undefined;
      case F2007.readAddress:
        return readable ? normalReply(req, this.#address, addressToBytes(this.#address)) : undefined;
      case F2007.writeAddress:
        return how === 'wildcard' ? this.writeAddress(req) : undefined;
      case F2007.broadcastTime:
        // A meter's own address is not accepted for time sync (docs/reference/dlt645.md § Addresses).
        if (how === 'broadcast') this.broadcastTime(req);
        return undefined;
      case F2007.freeze:
        return how === 'unicast' || how === 'broadcast' ? this.freeze(req) : undefined;
      case F2007.multiFunctionOutput:
        return how === 'unicast' || how === 'broadcast' ? this.multiFunctionOutput(req) : undefined;
    }
    // Writes, clears, control and security act only on the meter's own address; the wildcard would make every meter act.
    if (how !== 'unicast') return undefined;
    switch (fn) {
      case F2007.securityAuth:
        return this.securityAuth(req);
      case F2007.writeData:
        return this.writeData(req, true);
      case F2007.changeBaud:
        return this.changeBaud(req);
      case F2007.changePassword:
        return this.changePassword(req);
      case F2007.demandClear:
        return this.demandClear(req);
      case F2007.meterClear:
        return this.meterClear(req);
      case F2007.eventClear:
        return this.eventClear(req);
      case F2007.remoteControl:
        return this.remoteControl(req);
    }
    return undefined; // unknown function code: meters stay silent
  }

  private dispatch1997(req: Frame, how: Addressing): Frame | undefined {
    const fn = req.control & FUNCTION_MASK;
    switch (fn) {
      case F1997.readData:
        return how !== 'broadcast' ? this.read(req, 2) : undefined;
      case F1997.readFollowUp:
        return how !== 'broadcast' ? this.readFollowUp1997(req) : undefined;
      case F1997.broadcastTime:
        if (how === 'broadcast') this.broadcastTime(req);
        return undefined;
      case F1997.writeAddress:
        return how === 'wildcard' ? this.writeAddress(req) : undefined;
      case F1997.writeData:
        return how === 'unicast' ? this.writeData(req, false) : undefined;
    }
    return undefined;
  }

  private err(req: Frame, word: number): Frame {
    return abnormalReply(req, this.#address, word, this.edition);
  }

  private ok(req: Frame, data: Uint8Array = new Uint8Array(0)): Frame {
    return normalReply(req, this.#address, data);
  }

  // ---- 0x11 / 0x12 read ----------------------------------------------------------------------------------------

  private read(req: Frame, diSize: number): Frame {
    if (req.data.length < diSize) return this.err(req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, diSize));
    const value = this.valueOf(di);
    if (!value) return this.err(req, ERR.noData);
    const first = this.maxReplyData - diSize;
    if (value.length <= first) return this.ok(req, readReplyData(di, value));
    // Follow-up frames carry DI + chunk (+ SEQ in 2007); the master asks for them with 0x12 SEQ 1, 2, ...
    const step = this.maxReplyData - diSize - (this.edition === '2007' ? 1 : 0);
    const chunks: Uint8Array[] = [];
    for (let p = first; p < value.length; p += step) chunks.push(value.slice(p, p + step));
    this.pending = { di, chunks, next: 0 };
    return normalReply(req, this.#address, readReplyData(di, value.subarray(0, first)), true);
  }

  private readFollowUp(req: Frame): Frame {
    if (req.data.length < 5) return this.err(req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, 4));
    const seq = req.data[4]!;
    // SEQ indexes the chunk, so a master that lost a follow-up reply can ask for the same SEQ again.
    const chunk = this.pending?.di === di ? this.pending.chunks[seq - 1] : undefined;
    if (!chunk || !this.pending) return this.err(req, ERR.noData);
    return normalReply(req, this.#address, readReplyData(di, chunk, seq), seq < this.pending.chunks.length);
  }

  private readFollowUp1997(req: Frame): Frame {
    if (req.data.length < 2) return this.err(req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, 2));
    const p = this.pending;
    const chunk = p?.di === di ? p.chunks[p.next] : undefined;
    if (!chunk || !p) return this.err(req, ERR.noData);
    p.next++;
    return normalReply(req, this.#address, readReplyData(di, chunk), p.next < p.chunks.length);
  }

  /** The bytes a read of `di` returns, or undefined for "no requested data". */
  private valueOf(di: string): Uint8Array | undefined {
    if (!this.supports(di)) return undefined;
    const live = this.live.get(di);
    if (live) return live.read();
    const family = this.familyValue(di);
    if (family !== null) return family;
    const stored = this.registers.get(di);
    if (stored) return stored;
    const item = findDataItem(di, this.edition);
    if (isBlockIdentifier(di, this.edition)) return this.edition === '2007' && !item ? undefined : this.blockValue(di);
    return item ? defaultBytes(item.format) : undefined;
  }

  private blockValue(di: string): Uint8Array | undefined {
    if (!this.blockReads) return undefined;
    const parts: Uint8Array[] = [];
    let members = this.blockCache.get(di);
    if (!members) {
      members = blockMembers(di, this.candidates(), this.edition);
      this.blockCache.set(di, members);
    }
    for (const member of members) {
      const v = this.valueOf(member);
      if (v) parts.push(v);
    }
    return parts.length > 0 ? concat(parts) : undefined;
  }

  /** Every identifier this meter might answer, for expanding blocks. */
  private candidates(): string[] {
    if (!this.candidateCache) {
      const set = new Set<string>([...allDataItems(this.edition).map((i) => i.di), ...this.registers.keys(), ...this.live.keys()]);
      if (this.wallet) for (let f = 1; f <= 6; f++) for (let n = 1; n <= 10; n++) set.add(`03330${f}${hex2(n)}`);
      this.candidateCache = [...set];
    }
    return this.candidateCache;
  }

  /** Items a meter of this kind and phase count does not have (a money meter has no kWh balance, and so on). */
  private supports(di: string): boolean {
    const point = findDataItem(di, this.edition)?.point;
    if (this.phases === 1 && point && /\.(b|c)$/.test(point)) return false;
    if (this.edition === '1997') return true;
    if (/^009002|^040010/.test(di)) return this.kind === 'money';
    if (/^009001|^04000F/.test(di)) return this.kind === 'energy';
    if (di.startsWith('0333')) return this.kind !== 'plain';
    return true;
  }

  /** Purchase records and daily freezes, generated from state; null when `di` is not one of them. */
  private familyValue(di: string): Uint8Array | undefined | null {
    if (this.edition !== '2007') return null;
    const n = parseInt(di.slice(6, 8), 16);
    const purchase = /^0333(0[1-6])/.exec(di);
    if (purchase && n >= 1 && n <= 10 && this.wallet) {
      const r = this.wallet.records[n - 1];
      switch (purchase[1]) {
        case '01':
          return r ? encodeTime('YYMMDDhhmm', r.at) : new Uint8Array(5).fill(0xff);
        case '02':
          // A meter seeded with a purchase count has had that many purchases, even if their records were not seeded.
          return bcd((r ? r.countAfter : n === 1 ? this.wallet.purchaseCount : 0) % 10_000, 2);
        case '03':
          return bcd(r?.amount ?? 0, 4);
        case '04':
          return bcd(r?.balanceBefore ?? 0, 4);
        case '05':
          return bcd(r?.balanceAfter ?? 0, 4);
        default:
          return bcd(r?.cumulative ?? 0, 4);
      }
    }
    if ((di.startsWith('050600') || di.startsWith('050601')) && n >= 1 && n <= MAX_FREEZES) {
      const f = this.freezes[n - 1];
      if (!f) return undefined;
      return di.startsWith('050600') ? encodeTime('YYMMDDhhmm', f.at) : concat(f.energy.map((e) => bcd(e, 4)));
    }
    return null;
  }

  // ---- 0x14 write ----------------------------------------------------------------------------------------------

  private writeData(req: Frame, withOperator: boolean): Frame {
    const diSize = this.edition === '2007' ? 4 : 2;
    const head = diSize + 4 + (withOperator ? 4 : 0);
    if (req.data.length < head) return this.err(req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, diSize));
    if (!this.passwordOk(req.data.subarray(diSize, diSize + 4))) return this.err(req, ERR.password);
    if (withOperator) this.lastOperatorCode = diFromBytes(req.data.subarray(diSize + 4, diSize + 8));
    if (this.vendorCredit && di === this.vendorCredit.di) return this.vendorLoad(req, req.data.slice(head));
    const outcome = this.writeRegister(di, req.data.slice(head));
    if (outcome !== 'ok') return this.err(req, outcome === 'no-data' ? ERR.noData : ERR.other);
    this.counters.programming++;
    return this.ok(req);
  }

  /** A vendor credit write: same purchase-count rule as 0x03, but the meter can only answer "other error" (ERR bit0). */
  private vendorLoad(req: Frame, payload: Uint8Array): Frame {
    const fields = decodeLayout(this.vendorCredit!.layout, payload);
    if (!fields.ok || !this.wallet) return this.err(req, ERR.other);
    const count = Number(fields.value.purchaseCount);
    const amount = Number(fields.value.amount);
    const customer = fields.value.customerNumber;
    if (customer !== undefined && String(customer).padStart(12, '0') !== this.customerNumber) return this.err(req, ERR.other);
    if (!Number.isInteger(amount) || amount <= 0 || this.wallet.check(amount, count)) return this.err(req, ERR.other);
    this.wallet.load(amount, count, meterTimeAt(this.clockMs()));
    return this.ok(req);
  }

  private writeRegister(di: string, payload: Uint8Array): 'ok' | 'no-data' | 'refused' {
    if (!this.supports(di)) return 'no-data';
    const item = findDataItem(di, this.edition);
    const live = this.live.get(di);
    if (live) {
      if (!live.master || !live.write) return 'refused';
      const size = item ? formatSize(item.format) : undefined;
      if (size !== undefined && payload.length !== size) return 'refused';
      return live.write(payload) ? 'ok' : 'refused';
    }
    const stored = this.registers.get(di);
    if (!item && !stored) return 'no-data';
    // Measurements, events and freezes are the meter's own; only parameters (and seeded extras) take writes.
    if (!this.isParameter(di) && !(stored && !item)) return 'refused';
    const size = item ? formatSize(item.format) : stored!.length;
    if (size !== undefined && payload.length !== size) return 'refused';
    if (item && !decodeValue(item.format, payload).ok) return 'refused';
    this.registers.set(di, payload);
    return 'ok';
  }

  private isParameter(di: string): boolean {
    return this.edition === '2007' ? di.startsWith('04') : di.startsWith('C');
  }

  private passwordOk(bytes: Uint8Array): boolean {
    return this.passwords.get(bytes[0]!) === diFromBytes(bytes.subarray(1, 4));
  }

  // ---- addresses, time, freeze, baud, password -----------------------------------------------------------------

  private writeAddress(req: Frame): Frame | undefined {
    if (req.data.length !== 6) return undefined;
    const next = addressFromBytes(req.data);
    // Meters refuse the broadcast and wildcard addresses as their own, and say nothing (docs/reference/dlt645.md § Addresses).
    if (!/^\d{12}$/.test(next) || next === BROADCAST_ADDRESS) return undefined;
    this.#address = next;
    return this.ok(req);
  }

  /** Broadcast time, with the hzy1981 firmware's silent refusals (docs/reference/dlt645.md § Broadcast time 0x08). */
  private broadcastTime(req: Frame): void {
    if (req.data.length !== 6) return;
    const t = decodeMeterTime('YYMMDDhhmmss', req.data);
    if (!t.ok) return;
    const next = epochOf(t.value as MeterTime);
    const current = this.clockMs();
    if (nearMidnight(current) || nearMidnight(next)) return;
    if (Math.abs(next - current) > this.maxBroadcastSkewMs) return;
    if (this.lastBroadcastDay === dayOf(current)) return;
    this.clockOffsetMs = next - this.now;
    this.lastBroadcastDay = dayOf(next);
  }

  private freeze(req: Frame): Frame {
    if (req.data.length !== 4) return this.err(req, ERR.other);
    const fields = [...req.data];
    if (fields.every((b) => b === 0x99)) {
      // An on-demand freeze goes into the daily list so a test can produce one without waiting for midnight.
      this.dailyFreeze(this.clockMs());
      return this.ok(req);
    }
    const valid = fields.every((b) => b === 0x99 || ((b & 0x0f) <= 9 && b >> 4 <= 9));
    return valid ? this.ok(req) : this.err(req, ERR.other);
  }

  private multiFunctionOutput(req: Frame): Frame {
    const mode = req.data[0];
    if (req.data.length !== 1 || mode === undefined || mode > 2) return this.err(req, ERR.other);
    this.multiFunctionMode = mode;
    return this.ok(req, Uint8Array.of(mode));
  }

  private changeBaud(req: Frame): Frame {
    const z = req.data[0];
    const baud = Object.entries(BAUD_CODES).find(([, code]) => code === z)?.[0];
    if (req.data.length !== 1 || z === undefined || baud === undefined) return this.err(req, ERR.baud);
    this.requestedBaud = Number(baud);
    return this.ok(req, Uint8Array.of(z));
  }

  /** 0x18: DI 04000C0n names the level being set (n = level + 1); the old password must be as strong or stronger. */
  private changePassword(req: Frame): Frame {
    if (req.data.length !== 12) return this.err(req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, 4));
    const old = req.data.subarray(4, 8);
    const next = req.data.subarray(8, 12);
    const level = next[0]!;
    if (di !== `04000C${hex2(level + 1)}` || !this.passwordOk(old) || old[0]! > level) return this.err(req, ERR.password);
    this.passwords.set(level, diFromBytes(next.subarray(1, 4)));
    return this.ok(req, next.slice());
  }

  // ---- clears --------------------------------------------------------------------------------------------------

  private authorised(req: Frame, length: number): Frame | undefined {
    if (req.data.length < 8) return this.err(req, ERR.other);
    if (!this.passwordOk(req.data.subarray(0, 4))) return this.err(req, ERR.password);
    if (req.data.length !== length) return this.err(req, ERR.other);
    this.lastOperatorCode = diFromBytes(req.data.subarray(4, 8));
    return undefined;
  }

  private demandClear(req: Frame): Frame {
    const refused = this.authorised(req, 8);
    if (refused) return refused;
    for (const di of [...this.registers.keys()]) if (di.startsWith('01')) this.registers.delete(di);
    this.counters.demandClear++;
    return this.ok(req);
  }

  private meterClear(req: Frame): Frame {
    const refused = this.authorised(req, 8);
    if (refused) return refused;
    // Local fee-control meters keep their wallet and energy: remote clear is refused (docs/reference/dlt645.md § Function codes 2007).
    if (this.wallet) return this.err(req, ERR.other);
    this.importWh = [0, 0, 0, 0, 0];
    this.exportWh = [0, 0, 0, 0, 0];
    this.freezes = [];
    for (const di of [...this.registers.keys()]) if (di.startsWith('01')) this.registers.delete(di);
    for (const k of Object.keys(this.counters) as Counter[]) this.counters[k] = 0;
    this.relay.tripCount = 0;
    this.relay.closeCount = 0;
    this.counters.meterClear = 1;
    return this.ok(req);
  }

  /** 0x1B: FFFFFFFF clears every event count; another DI clears the counts whose DI3..DI1 it shares. */
  private eventClear(req: Frame): Frame {
    const refused = this.authorised(req, 12);
    if (refused) return refused;
    const target = diFromBytes(req.data.subarray(8, 12));
    const all = target === 'FFFFFFFF';
    const matches = (point: string) => all || findDataItemByPoint(point, this.edition)?.di.slice(0, 6) === target.slice(0, 6);
    let cleared = 0;
    for (const [point, counter] of Object.entries(COUNTER_POINTS)) {
      if (counter === 'eventClear' || counter === 'meterClear' || !matches(point)) continue;
      this.counters[counter] = 0;
      cleared++;
    }
    if (matches('events.relay-trip.count')) {
      this.relay.tripCount = 0;
      cleared++;
    }
    if (matches('events.relay-close.count')) {
      this.relay.closeCount = 0;
      cleared++;
    }
    if (cleared === 0) return this.err(req, ERR.noData);
    this.counters.eventClear++;
    return this.ok(req);
  }

  // ---- 0x1C remote control -------------------------------------------------------------------------------------

  private remoteControl(req: Frame): Frame {
    const refused = this.authorised(req, 16);
    if (refused) return refused;
    const until = decodeMeterTime('YYMMDDhhmmss', req.data.subarray(10, 16));
    // A command is carried out only before its valid-until time, by the meter's clock (docs/reference/dlt645.md § Remote control 0x1C).
    if (!until.ok || epochOf(until.value as MeterTime) <= this.clockMs()) return this.err(req, ERR.other);
    const noCredit = this.wallet?.exhausted ?? false;
    switch (req.data[8]) {
      case 0x1a:
        if (this.relay.keepPower) return this.err(req, ERR.other);
        this.relay.trip('remote');
        break;
      case 0x1b:
        if (noCredit) return this.err(req, ERR.other);
        this.relay.allowClose();
        break;
      case 0x1c:
        if (noCredit) return this.err(req, ERR.other);
        this.relay.close();
        break;
      case 0x2a:
        this.relay.alarm = true;
        break;
      case 0x2b:
        this.relay.alarm = false;
        break;
      case 0x3a:
        this.relay.keepPower = true;
        break;
      case 0x3b:
        this.relay.keepPower = false;
        break;
      default:
        return this.err(req, ERR.other);
    }
    return this.ok(req);
  }

  // ---- 0x03 security: opening and recharge ---------------------------------------------------------------------

  private securityAuth(req: Frame): Frame {
    const serr = (name: keyof typeof SERR_BIT) => this.err(req, SERR_BIT[name]);
    if (req.data.length < 8 || !this.wallet) return serr('other-error');
    const di = diFromBytes(req.data.subarray(0, 4));
    if (di === IDENTITY_DI) {
      // Identity authentication: only an ESAM meter has it; it answers random2 + ESAM serial after the DI.
      if (!this.security.authenticate) return serr('other-error');
      const r = this.security.authenticate(this.#address, req.data.subarray(8), this.now);
      if (!r.ok) return serr('authentication-failed');
      return this.ok(req, new Uint8Array([...diToBytes(di), ...r.reply]));
    }
    if ((di !== OPENING_DI && di !== RECHARGE_DI) || req.data.length !== 4 + LOAD_PAYLOAD_BYTES) return serr('other-error');
    // An ESAM meter takes a load only inside an authenticated session (docs/reference/prepaid.md § The ESAM handshake).
    if (this.security.sessionOpen && !this.security.sessionOpen(this.now)) return serr('authentication-failed');
    // Amount and count are one 4-byte field each: a money meter counts fen, an energy meter 0.01 kWh, one layout for both.
    const decoded = decodeLoadPayload(req.data.subarray(4));
    if (!decoded.ok) return serr('other-error');
    const { amount, purchaseCount: count, customerNo: customerNumber } = decoded.value;
    const opening = di === OPENING_DI;
    // Opening is for a meter not yet in service, recharge for one that is (docs/reference/prepaid.md § Purchase counter).
    if (opening === this.opened) return serr('other-error');
    if (!opening && customerNumber !== this.customerNumber) return serr('customer-number-mismatch');
    const refusal = this.wallet.check(amount, count);
    if (refusal) return serr(refusal);
    const load = {
      kind: opening ? 'opening' : 'recharge',
      meter: this.#address,
      operator: decoded.value.operator,
      amount,
      purchaseCount: count,
      customerNumber,
      mac1: decoded.value.mac1,
      mac2: decoded.value.mac2,
    } as const;
    if (!this.security.verifyLoad(load)) return serr('mac-failed');
    if (opening) {
      this.customerNumber = customerNumber;
      this.opened = true;
    }
    this.lastOperatorCode = load.operator;
    this.wallet.load(amount, count, meterTimeAt(this.clockMs()));
    // After a remote load the relay stays open (SY03A "远程充值后仍然拉闸"), but the button now works.
    if (this.relay.open && this.relay.tripCause === 'credit' && !this.wallet.exhausted) this.relay.allowClose();
    return this.ok(req, diToBytes(di));
  }

  // ---- consumption ---------------------------------------------------------------------------------------------

  private clockMs(): number {
    return this.now + this.clockOffsetMs;
  }

  private effectivePowerKw(): number {
    return this.relay.open ? 0 : this.powerKw;
  }

  /** Credit units (fen or 0.01 kWh) one kWh costs. */
  private unitsPerKwh(): number {
    return this.kind === 'money' ? this.priceE4 / 100 : 100;
  }

  private accrue(from: number, to: number): void {
    const p = this.effectivePowerKw();
    if (p === 0 || to <= from) return;
    const kwh = (Math.abs(p) * (to - from)) / 3_600_000;
    if (p < 0) {
      this.exportWh[0]! += kwh * 1000;
      this.exportWh[1]! += kwh * 1000;
      return;
    }
    const w = this.wallet;
    if (w && !this.relay.keepPower) {
      const cost = kwh * this.unitsPerKwh();
      const available = w.available;
      if (cost >= available) {
        // Credit runs out inside this step: count the energy up to that instant, then trip as a prepaid meter does.
        this.addImport(cost > 0 ? (kwh * available) / cost : kwh);
        w.spendAll();
        this.relay.trip('credit');
        return;
      }
    }
    w?.spend(kwh * this.unitsPerKwh());
    this.addImport(kwh);
  }

  private addImport(kwh: number): void {
    this.importWh[0]! += kwh * 1000;
    this.importWh[1]! += kwh * 1000;
  }

  private dailyFreeze(clockMs: number): void {
    const energy = this.importWh.map((wh) => Math.floor(wh / 10));
    this.freezes.unshift({ at: meterTimeAt(clockMs), energy });
    if (this.freezes.length > MAX_FREEZES) this.freezes.length = MAX_FREEZES;
  }

  private phaseCurrent(k: number): number {
    if (k >= this.phases) return 0;
    const v = this.voltage[k]!;
    if (v === 0 || this.powerFactor === 0) return 0;
    return ((this.effectivePowerKw() / this.phases) * 1000) / (v * this.powerFactor);
  }

  // ---- live values ---------------------------------------------------------------------------------------------

  private seed(key: string, value: number | string): void {
    const di = resolveIdentifier(key, this.edition)!;
    const bytes = encodeRegisterValue(di, value, this.edition);
    if (!bytes.ok) throw new TypeError(`meter ${this.#address}: ${bytes.error.message}`);
    if (!this.supports(di))
      throw new TypeError(`meter ${this.#address}: ${key} is not an item of a ${this.phases}-phase ${this.kind} meter`);
    const live = this.live.get(di);
    if (!live) {
      this.registers.set(di, bytes.value);
      return;
    }
    if (!live.write || live.notSeedable)
      throw new TypeError(`meter ${this.#address}: ${key} ${live.notSeedable ?? 'is computed by the simulator'}`);
    live.write(bytes.value);
  }

  private bind(point: string, factory: LiveFactory): void {
    const item = findDataItemByPoint(point, this.edition);
    if (item) this.live.set(item.di, factory(item.format));
  }

  private bindLiveValues(): void {
    const computed =
      (get: () => number, why: string): LiveFactory =>
      (f) => ({ read: () => numberBytes(f, get()), notSeedable: why });
    const setting =
      (get: () => number, set: (v: number) => void, master = false): LiveFactory =>
      (f) => ({
        read: () => numberBytes(f, get()),
        write: (bytes) => {
          const v = numberOf(f, bytes);
          if (v === undefined) return false;
          set(v);
          return true;
        },
        master,
      });
    const tariffs = ['', '.t1', '.t2', '.t3', '.t4'];
    tariffs.forEach((suffix, k) => {
      const toWh = (kwh: number) => Math.round(kwh * 100) * 10;
      this.bind(
        `energy.active.import${suffix}`,
        setting(
          () => centi(this.importWh[k]!),
          (v) => (this.importWh[k] = toWh(v)),
        ),
      );
      this.bind(
        `energy.active.export${suffix}`,
        setting(
          () => centi(this.exportWh[k]!),
          (v) => (this.exportWh[k] = toWh(v)),
        ),
      );
      // Combined active energy = forward + reverse, the State Grid default combination word.
      this.bind(
        `energy.active.total${suffix}`,
        computed(() => centi(this.importWh[k]!) + centi(this.exportWh[k]!), 'is forward plus reverse energy; seed those'),
      );
    });
    const phases = ['a', 'b', 'c'] as const;
    phases.forEach((ph, k) => {
      this.bind(
        `voltage.${ph}`,
        setting(
          () => (k < this.phases ? this.voltage[k]! : 0),
          (v) => (this.voltage[k] = v),
        ),
      );
      this.bind(
        `current.${ph}`,
        computed(() => this.phaseCurrent(k), 'is computed from powerKw, voltage and power factor; set powerKw'),
      );
      const share = () => (k < this.phases ? this.effectivePowerKw() / this.phases : 0);
      this.bind(`power.active.${ph}`, computed(share, 'is powerKw shared over the phases; set powerKw'));
      this.bind(
        `power.reactive.${ph}`,
        computed(() => reactive(share(), this.powerFactor), 'follows from powerKw and power factor'),
      );
      this.bind(
        `power.apparent.${ph}`,
        computed(() => Math.abs(share()) / (this.powerFactor || 1), 'follows from powerKw and power factor'),
      );
      this.bind(
        `power.factor.${ph}`,
        computed(() => this.powerFactor, 'is the meter power factor; seed power.factor'),
      );
      this.bind(
        `energy.active.import.${ph}`,
        computed(() => (k < this.phases ? centi(this.importWh[0]! / this.phases) : 0), 'is the forward energy shared over the phases'),
      );
    });
    this.bind(
      'power.active',
      setting(
        () => this.effectivePowerKw(),
        (v) => (this.powerKw = v),
      ),
    );
    this.bind(
      'power.reactive',
      computed(() => reactive(this.effectivePowerKw(), this.powerFactor), 'follows from powerKw and power factor'),
    );
    this.bind(
      'power.apparent',
      computed(() => Math.abs(this.effectivePowerKw()) / (this.powerFactor || 1), 'follows from powerKw and power factor'),
    );
    this.bind(
      'power.factor',
      setting(
        () => this.powerFactor,
        (v) => (this.powerFactor = Math.min(1, Math.abs(v))),
      ),
    );
    this.bind(
      'frequency',
      setting(
        () => this.frequency,
        (v) => (this.frequency = v),
      ),
    );
    this.bind(
      'price.current',
      setting(
        () => this.priceE4 / 1e4,
        (v) => (this.priceE4 = Math.round(v * 1e4)),
      ),
    );
    this.bind(
      'price.tariff',
      setting(
        () => this.priceE4 / 1e4,
        (v) => (this.priceE4 = Math.round(v * 1e4)),
      ),
    );

    const w = this.wallet;
    if (w) {
      const unit = this.kind === 'money' ? '' : '.energy';
      this.bind(
        `credit.balance.${this.kind === 'money' ? 'money' : 'energy'}`,
        setting(
          () => w.balance / 100,
          (v) => (w.balance = Math.round(v * 100)),
        ),
      );
      this.bind(
        `credit.overdraft${unit}`,
        setting(
          () => w.overdraft / 100,
          (v) => (w.overdraft = Math.round(v * 100)),
        ),
      );
      const overdraftLimit = this.kind === 'money' ? 'credit.limit.overdraft' : 'credit.limit.energy.4';
      const hoardingLimit = this.kind === 'money' ? 'credit.limit.hoarding' : 'credit.limit.energy.3';
      this.bind(
        overdraftLimit,
        setting(
          () => w.overdraftLimit / 100,
          (v) => (w.overdraftLimit = Math.round(v * 100)),
          true,
        ),
      );
      this.bind(
        hoardingLimit,
        setting(
          () => w.hoardingLimit / 100,
          (v) => (w.hoardingLimit = Math.round(v * 100)),
          true,
        ),
      );
    }

    const clock =
      (layout: TimeLayout): LiveFactory =>
      () => ({
        read: () => encodeTime(layout, meterTimeAt(this.clockMs())),
        write: (bytes) => {
          const t = decodeMeterTime(layout, bytes);
          if (!t.ok) return false;
          this.clockOffsetMs = epochOf({ ...meterTimeAt(this.clockMs()), ...t.value }) - this.now;
          this.counters.timeSet++;
          return true;
        },
        master: true,
        notSeedable: 'follows the host clock; set clockOffsetSeconds',
      });
    this.bind('clock.date', clock('YYMMDDWW'));
    this.bind('clock.time', clock('hhmmss'));
    this.bind('clock', clock('YYMMDDWWhhmmss'));
    this.bind('meter.address', () => ({ read: () => encodeDigitsOrFf(this.#address, 6), notSeedable: 'is the meter address' }));
    this.bind('customer.number', () => ({
      read: () => encodeDigitsOrFf(this.customerNumber, 6),
      write: (bytes) => {
        const v = decodeValue({ kind: 'digits', bytes: 6 }, bytes);
        if (!v.ok || v.value.kind !== 'text') return false;
        this.customerNumber = v.value.value;
        return true;
      },
      master: true,
    }));

    if (this.edition === '2007') {
      const word =
        (di: string, compute: (base: number) => number): LiveFactory =>
        (f) => ({
          read: () => numberBytes(f, compute(this.statusBase.get(di) ?? 0)),
          write: (bytes) => {
            const v = numberOf(f, bytes);
            if (v === undefined) return false;
            this.statusBase.set(di, v);
            return true;
          },
        });
      this.bind(
        'status.word1',
        word('04000501', (base) => (base & ~SW1_MANAGED) | this.statusWord1()),
      );
      this.bind(
        'status.word3',
        word('04000503', (base) => (base & ~SW3_MANAGED) | this.statusWord3()),
      );
    }
    this.bind(
      'events.relay-trip.count',
      setting(
        () => this.relay.tripCount,
        (v) => (this.relay.tripCount = v),
      ),
    );
    this.bind(
      'events.relay-close.count',
      setting(
        () => this.relay.closeCount,
        (v) => (this.relay.closeCount = v),
      ),
    );
    for (const [point, counter] of Object.entries(COUNTER_POINTS)) {
      this.bind(
        point,
        setting(
          () => this.counters[counter],
          (v) => (this.counters[counter] = v),
        ),
      );
    }
  }

  private statusWord1(): number {
    let w = 0;
    if (this.effectivePowerKw() < 0) w |= SW1.reversePower;
    if ((this.wallet?.overdraft ?? 0) > 0) w |= SW1.overdraft;
    return w;
  }

  private statusWord3(): number {
    let w = 0;
    if (this.relay.open) w |= SW3.relayOpen;
    if (this.relay.command === 'trip') w |= SW3.commandTrip;
    if (this.relay.alarm) w |= SW3.alarm;
    if (this.kind === 'energy') w |= SW3.kwhPrepaid;
    if (this.kind === 'money') w |= SW3.moneyPrepaid;
    if (this.relay.keepPower) w |= SW3.keepPower;
    if (this.wallet && !this.opened) w |= SW3.notOpened;
    return w;
  }
}

// ---- small encoders ------------------------------------------------------------------------------------------------

/** A number in an item's format, rounded to its decimals; FF…FF ("not available") when it does not fit. */
function numberBytes(format: ValueFormat, value: number): Uint8Array {
  if (format.kind === 'word') return encodeWord(Math.max(0, Math.round(value)), format.bytes);
  if (format.kind !== 'bcd') return new Uint8Array(formatSize(format) ?? 0).fill(0xff);
  const signed = format.signed ?? false;
  const scaled = Math.round((signed ? value : Math.abs(value)) * 10 ** format.decimals);
  const r = encodeBcdInteger(scaled, format.bytes, signed);
  return r.ok ? r.value : new Uint8Array(format.bytes).fill(0xff);
}

function numberOf(format: ValueFormat, bytes: Uint8Array): number | undefined {
  const v = decodeValue(format, bytes);
  if (!v.ok) return undefined;
  return v.value.kind === 'number' || v.value.kind === 'word' ? v.value.value : undefined;
}

/** Unsigned BCD of a scaled integer (e.g. fen with 2 decimals), low byte first. */
function bcd(scaled: number, bytes: number): Uint8Array {
  const r = encodeBcdInteger(Math.max(0, Math.round(scaled)), bytes, false);
  return r.ok ? r.value : new Uint8Array(bytes).fill(0xff);
}

function encodeDigitsOrFf(digits: string, bytes: number): Uint8Array {
  const r = encodeDigits(digits, bytes);
  return r.ok ? r.value : new Uint8Array(bytes).fill(0xff);
}

/** Wh to kWh as the register shows it: truncated to 0.01 kWh, as a meter's display never rounds up. */
function centi(wh: number): number {
  return Math.floor(wh / 10) / 100;
}

function reactive(p: number, pf: number): number {
  if (pf <= 0 || pf >= 1) return 0;
  return Math.abs(p) * Math.sqrt(1 / (pf * pf) - 1);
}

function nearMidnight(ms: number): boolean {
  const m = minuteOfDay(ms);
  return m >= 24 * 60 - MIDNIGHT_GUARD_MIN || m < MIDNIGHT_GUARD_MIN;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0').toUpperCase();
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
