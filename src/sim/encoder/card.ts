import {
  encodeArea,
  errorCounterAfterWrongPsc,
  isByteWritable,
  readRecord,
  SLE4442_ATR,
  SLE4442_EC_FULL,
  SLE4442_FACTORY_PSC,
  SLE4442_MAIN_SIZE,
  SLE4442_PROTECTABLE_BYTES,
  SLE4442_PROTECTION_SIZE,
  type FieldValue,
} from '../../../protocols/card/index.js';
import type { CardLayout, CardRole } from '../../profiles/card-layout.js';

export interface VirtualSle4442Options {
  /** Main memory (256 bytes). Default: a factory-fresh card (ATR header at 00H, FFH elsewhere). */
  readonly main?: Uint8Array;
  /** Default FF FF FF, the factory PSC. */
  readonly psc?: Uint8Array;
  /** Default 7 (3 attempts). */
  readonly errorCounter?: number;
  /** Protection memory, 4 bytes (1 bits = writable). Default all writable. */
  readonly protection?: Uint8Array;
}

/**
 * An SLE4442 as the chip behaves (docs/reference/cards.md § SLE4442): reads need nothing; writes need the PSC presented since the
 * last power-up, and are silently ignored otherwise or on a protected byte, as on a real card (only a read-back tells);
 * each wrong PSC costs one error-counter bit, and at 0 the card is locked for good.
 */
export class VirtualSle4442 {
  readonly kind = 'SLE4442' as const;
  readonly atr: Uint8Array = SLE4442_ATR.slice();
  readonly main: Uint8Array;
  readonly protection: Uint8Array;
  #psc: Uint8Array;
  #errorCounter: number;
  #unlocked = false;
  /** PSC presentations the card has seen (right or wrong): a test's proof that nothing was retried. */
  presentations = 0;

  constructor(opts: VirtualSle4442Options = {}) {
    this.main = opts.main ? Uint8Array.from(opts.main) : factoryMain();
    if (this.main.length !== SLE4442_MAIN_SIZE) throw new TypeError(`main memory is ${SLE4442_MAIN_SIZE} bytes, not ${this.main.length}`);
    this.protection = opts.protection ? Uint8Array.from(opts.protection) : new Uint8Array(SLE4442_PROTECTION_SIZE).fill(0xff);
    this.#psc = Uint8Array.from(opts.psc ?? SLE4442_FACTORY_PSC);
    this.#errorCounter = opts.errorCounter ?? SLE4442_EC_FULL;
  }

  get psc(): Uint8Array {
    return this.#psc.slice();
  }

  get errorCounter(): number {
    return this.#errorCounter;
  }

  get unlocked(): boolean {
    return this.#unlocked;
  }

  /** Power-down or removal: the PSC must be presented again. */
  reset(): void {
    this.#unlocked = false;
  }

  /** The chip's unlock sequence: clear one EC bit, compare, restore EC to 7 on a match. */
  presentPsc(psc: Uint8Array): 'ok' | 'rejected' | 'locked' {
    this.presentations++;
    if (this.#errorCounter === 0) return 'locked';
    this.#errorCounter = errorCounterAfterWrongPsc(this.#errorCounter);
    if (psc.length === 3 && psc.every((b, i) => b === this.#psc[i])) {
      this.#errorCounter = SLE4442_EC_FULL;
      this.#unlocked = true;
      return 'ok';
    }
    this.#unlocked = false;
    return this.#errorCounter === 0 ? 'locked' : 'rejected';
  }

  /** Test control: the error counter at 0, as after three wrong PSCs. */
  lock(): void {
    this.#errorCounter = 0;
    this.#unlocked = false;
  }

  /** Test control: set the error counter (e.g. 3 → two attempts left, as after one wrong PSC elsewhere). */
  setErrorCounter(ec: number): void {
    this.#errorCounter = ec & SLE4442_EC_FULL;
  }

  writeMain(addr: number, data: Uint8Array): void {
    if (!this.#unlocked) return;
    data.forEach((b, i) => {
      if (isByteWritable(this.protection, addr + i)) this.main[addr + i] = b;
    });
  }

  /** Error counter, then the PSC, which reads as zeros unless it was presented. */
  readSecurity(): Uint8Array {
    return Uint8Array.of(this.#errorCounter, ...(this.#unlocked ? this.#psc : [0, 0, 0]));
  }

  /** Security memory bytes 1–3 hold the PSC; writable only while unlocked. */
  writeSecurity(addr: number, data: Uint8Array): void {
    if (!this.#unlocked) return;
    data.forEach((b, i) => {
      const a = addr + i;
      if (a >= 1 && a <= 3) this.#psc[a - 1] = b;
    });
  }

  /** Protection write: a byte is protected only when the data sent equals what main memory holds (the chip compares). */
  writeProtection(addr: number, data: Uint8Array): void {
    if (!this.#unlocked) return;
    data.forEach((b, i) => {
      const a = addr + i;
      if (a < SLE4442_PROTECTABLE_BYTES && this.main[a] === b) this.protection[a >> 3]! &= ~(1 << (a & 7));
    });
  }
}

export interface VirtualCpuCardOptions {
  readonly atr?: Uint8Array;
  /** Answers one APDU with data + SW1 SW2. Default: the T=0 demo card below. */
  readonly respond?: (apdu: Uint8Array) => Uint8Array;
}

/**
 * A CPU card (T=0) for the APDU path. The default card answers like a T=0 card would:
 * SELECT → 61 len (the FCI waits for GET RESPONSE); GET RESPONSE → the FCI, or 6C len for a wrong Le;
 * READ BINARY with a wrong Le → 6C 10, with Le 10H → 16 bytes; GET CHALLENGE → 8 bytes; anything else 6D 00.
 */
export class VirtualCpuCard {
  readonly kind = 'CPU_T0' as const;
  readonly atr: Uint8Array;
  /** Every APDU the card received, in order. */
  readonly apdus: Uint8Array[] = [];
  readonly #respond: (apdu: Uint8Array) => Uint8Array;
  #pending: Uint8Array | undefined;

  static readonly FCI = Uint8Array.of(0x6f, 0x08, 0x84, 0x06, 0x4d, 0x45, 0x54, 0x45, 0x52, 0x44);
  static readonly FILE = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

  constructor(opts: VirtualCpuCardOptions = {}) {
    this.atr = opts.atr ?? Uint8Array.of(0x3b, 0x02, 0x14, 0x50);
    this.#respond = opts.respond ?? ((apdu) => this.#demo(apdu));
  }

  respond(apdu: Uint8Array): Uint8Array {
    this.apdus.push(apdu.slice());
    return this.#respond(apdu);
  }

  reset(): void {
    this.#pending = undefined;
  }

  #demo(apdu: Uint8Array): Uint8Array {
    const [cla, ins] = [apdu[0], apdu[1]];
    const le = apdu.length === 5 ? apdu[4]! : undefined;
    const sw = (a: number, b: number, data: Uint8Array = new Uint8Array()) => Uint8Array.of(...data, a, b);
    if (cla !== 0x00) return sw(0x6e, 0x00);
    switch (ins) {
      case 0xa4:
        this.#pending = VirtualCpuCard.FCI;
        return sw(0x61, VirtualCpuCard.FCI.length);
      case 0xc0: {
        const pending = this.#pending;
        if (!pending) return sw(0x69, 0x85);
        if (le !== pending.length) return sw(0x6c, pending.length);
        this.#pending = undefined;
        return sw(0x90, 0x00, pending);
      }
      case 0xb0:
        if (le !== VirtualCpuCard.FILE.length) return sw(0x6c, VirtualCpuCard.FILE.length);
        return sw(0x90, 0x00, VirtualCpuCard.FILE);
      case 0x84:
        return sw(0x90, 0x00, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8).subarray(0, le ?? 8));
      default:
        return sw(0x6d, 0x00);
    }
  }
}

export type VirtualCard = VirtualSle4442 | VirtualCpuCard;

/** What a card made by `cards.ours` carries; every field has a sensible default. */
export interface OurCardSpec {
  readonly meterNumber: string;
  readonly customerNumber?: string;
  readonly cardSerial?: number;
  readonly role?: CardRole;
  readonly purchaseCount?: number;
  readonly purchaseAmount?: number;
  /** The meter's write-back; absent = the card was never inserted in a meter. */
  readonly writeBack?: { readonly balance: number; readonly purchaseCount: number; readonly events?: number; readonly time?: string };
  /** Default true. */
  readonly valid?: boolean;
  /** Default: the layout's PSC. */
  readonly psc?: Uint8Array;
}

/** Cards for tests and demos: factory-blank, this system's (written by a layout), another system's, a CPU card. */
export const cards = {
  blank(opts: { psc?: Uint8Array } = {}): VirtualSle4442 {
    return new VirtualSle4442(opts.psc ? { psc: opts.psc } : {});
  },

  ours(layout: CardLayout, spec: OurCardSpec): VirtualSle4442 {
    const main = factoryMain();
    const write = (area: string, values: Record<string, FieldValue>) => {
      const r = encodeArea(layout, area, main, values);
      if (!r.ok) throw new TypeError(r.error.message);
      const a = layout.areas.find((x) => x.name === area)!;
      main.set(r.value.data, a.from);
      main[a.checksum.at] = r.value.checksum;
      if (a.backupAt !== undefined) {
        main.set(r.value.data, a.backupAt);
        main[a.backupAt + r.value.data.length] = r.value.checksum;
      }
    };
    const identity: Record<string, FieldValue> = { magic: layout.magic, meterNumber: spec.meterNumber };
    if (layout.fields.has('version')) identity.version = layout.version ?? 1;
    if (layout.fields.has('customerNumber')) identity.customerNumber = spec.customerNumber ?? '0';
    if (layout.fields.has('cardSerial')) identity.cardSerial = spec.cardSerial ?? 1;
    // Reserved bytes of a written area are 00H, not the factory FFH.
    for (const a of layout.areas) main.fill(0, a.from, a.to + 1);
    write('identity', identity);
    write('purchase', {
      role: layout.roles[spec.role ?? 'purchase'],
      purchaseCount: spec.purchaseCount ?? 0,
      purchaseAmount: spec.purchaseAmount ?? 0,
    });
    if (layout.hasWriteBack) {
      const wb = spec.writeBack;
      if (wb) {
        const values: Record<string, FieldValue> = { wbBalance: wb.balance, wbPurchaseCount: wb.purchaseCount };
        if (layout.fields.has('wbEvents')) values.wbEvents = wb.events ?? 0;
        if (layout.fields.has('wbTime')) values.wbTime = wb.time ?? '2025-03-01T08:30:00';
        write('writeBack', values);
      } else {
        const a = layout.areas.find((x) => x.name === 'writeBack')!;
        main.fill(0xff, a.from, a.to + 1);
        main[a.checksum.at] = 0xff;
      }
    }
    main[layout.valid.at] = spec.valid === false ? layout.valid.clear : layout.valid.set;
    return new VirtualSle4442({ main, psc: spec.psc ?? layout.psc });
  },

  /** Another vendor's card: readable, but with no magic of ours. */
  foreign(): VirtualSle4442 {
    const main = factoryMain();
    main.set([0x41, 0x43, 0x4d, 0x45, 0x02, 0x10, 0x00, 0x00, 0x12, 0x34], 0x20);
    return new VirtualSle4442({ main, psc: Uint8Array.of(0x12, 0x34, 0x56) });
  },

  cpu(opts: VirtualCpuCardOptions = {}): VirtualCpuCard {
    return new VirtualCpuCard(opts);
  },
};

function factoryMain(): Uint8Array {
  const main = new Uint8Array(SLE4442_MAIN_SIZE).fill(0xff);
  main.set(SLE4442_ATR, 0);
  return main;
}

/** A card meter's side of an insertion: what happened, and the meter's state after it. */
export interface MeterInsertion {
  readonly outcome: 'loaded' | 'written-back' | 'rejected';
  /** Why it was rejected (the meter's IC_*_ERR in words). */
  readonly reason?: string;
  readonly meter: { readonly meterNumber: string; readonly purchaseCount: number; readonly balance: number };
}

/**
 * What a prepaid card meter does with a user card (docs/reference/cards.md § How a meter takes a user card): reject a card that is not valid, not ours
 * or not for this meter; load the purchase when card count = meter count + 1; then write its state back onto the card
 * (also when there was nothing new to load). Check cards get the write-back only. Pure apart from the card's memory.
 */
export function insertIntoMeter(
  card: VirtualSle4442,
  layout: CardLayout,
  meter: { meterNumber: string; purchaseCount: number; balance: number },
  opts: { time?: string; events?: number } = {},
): MeterInsertion {
  const image = readRecord(layout, card.main);
  const reject = (reason: string): MeterInsertion => ({ outcome: 'rejected', reason, meter });
  if (!image.ok) return reject(image.error.message);
  const v = image.value.values;
  if (v.magic !== layout.magic) return reject('not a card of this system');
  if (!image.value.validFlag) return reject('card not valid (pulled out during writing?)');
  if (!image.value.areas.purchase?.checksumOk && !image.value.areas.purchase?.backupChecksumOk) return reject('purchase area damaged');
  const role = Object.entries(layout.roles).find(([, code]) => code === v.role)?.[0];
  const forAnyMeter = /^0+$/.test(String(v.meterNumber));
  if (!(role === 'check' && forAnyMeter) && v.meterNumber !== meter.meterNumber)
    return reject(`meter number mismatch (card ${String(v.meterNumber)})`);
  let next = meter;
  let outcome: MeterInsertion['outcome'] = 'written-back';
  if (role === 'purchase' || role === 'opening' || role === 'replacement') {
    const count = Number(v.purchaseCount);
    if (count === meter.purchaseCount + 1) {
      next = { ...meter, purchaseCount: count, balance: meter.balance + Number(v.purchaseAmount) };
      outcome = 'loaded';
    } else if (count !== meter.purchaseCount) {
      return reject(`purchase count error (card ${count}, meter ${meter.purchaseCount})`);
    }
  } else if (role === 'clear') {
    next = { ...meter, balance: 0 };
  }
  if (layout.hasWriteBack) {
    // The meter writes as the chip allows it: with the system PSC presented.
    const unlocked = card.presentPsc(layout.psc) === 'ok';
    if (!unlocked) return reject('the meter could not unlock the card (PSC)');
    const values: Record<string, FieldValue> = { wbBalance: next.balance, wbPurchaseCount: next.purchaseCount };
    if (layout.fields.has('wbEvents')) values.wbEvents = opts.events ?? 0;
    if (layout.fields.has('wbTime')) values.wbTime = opts.time ?? '2025-03-01T08:30:00';
    const r = encodeArea(layout, 'writeBack', card.main, values);
    if (!r.ok) return reject(r.error.message);
    const a = layout.areas.find((x) => x.name === 'writeBack')!;
    card.writeMain(a.from, r.value.data);
    card.writeMain(a.checksum.at, Uint8Array.of(r.value.checksum));
    card.reset();
  }
  return { outcome, meter: next };
}
