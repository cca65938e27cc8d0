import {
  applyScale,
  dataTypeInfo,
  decodeValue,
  encodeValue,
  MAX_READ_BITS,
  MAX_READ_REGISTERS,
  removeScale,
  shortestFloat32,
  toNumber,
  type DataType,
  type WordOrder,
} from '../../../protocols/modbus/index.js';
import type { CreditSpec, DerivedPoint, DeviceProfile, ModbusPoint } from '../../profiles/types.js';
import { defaultValue } from './defaults.js';

/** Exception codes the simulated meter answers with (MODBUS Application Protocol v1.1b3 §7). */
export const ILLEGAL_FUNCTION = 0x01;
export const ILLEGAL_DATA_ADDRESS = 0x02;
export const ILLEGAL_DATA_VALUE = 0x03;

/** What the meter answers: the data, or an exception code with the reason (for the simulator's log). */
export type SimAnswer<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly exception: number; readonly reason: string };

export type CreditOutcome = 'applied' | 'repeat' | 'refused';

/** One FC16 request as the meter took it: where, what, and what it did with it. */
export interface RegisterWrite {
  readonly start: number;
  readonly words: readonly number[];
  readonly outcome: CreditOutcome | 'written' | 'exception';
}

export interface SimulatedModbusMeterOptions {
  /** Engineering values by point name; every other point starts at a plausible default. */
  readonly values?: Readonly<Record<string, number>>;
}

type WordTable = 'holding' | 'input';
type BitTable = 'coil' | 'discrete';

interface CreditField {
  readonly field: string;
  readonly address: number;
  readonly type: DataType;
  readonly order: WordOrder;
  readonly scale: number;
}

const ok = <T>(value: T): SimAnswer<T> => ({ ok: true, value });
const refuse = (exception: number, reason: string): SimAnswer<never> => ({ ok: false, exception, reason });

/**
 * The register image of one Modbus meter, built from its profile: it holds exactly the registers the profile declares
 * (plus the gaps of at most `maxGap` registers between them, which the profile says a block read may bridge; they
 * read 0), and refuses every other address with ILLEGAL_DATA_ADDRESS. Values go in and out in engineering units,
 * encoded with each point's type, word order, scale and offset, so a correct reader gets back exactly what was set.
 *
 * A `modbus-write` credit profile loads credit through its credit registers, written in one FC16 request: applied when
 * the purchase count is the meter's + 1, ignored when it equals the meter's (a repeat), refused with
 * ILLEGAL_DATA_VALUE otherwise. A `modbus-coil` relay coil sets the relay state (e.g. status.word1 bit 0).
 *
 * @example
 * const meter = new SimulatedModbusMeter(profiles.get('chint-dtsu666')!, { values: { 'voltage.a': 231.4 } });
 * meter.readRegisters('holding', 0x2006, 2); // { ok: true, value: [0x4510, 0xa000] }  (2314 as float32; scale 0.1)
 */
export class SimulatedModbusMeter {
  readonly profile: DeviceProfile;
  readonly #words: Record<WordTable, Map<number, number>> = { holding: new Map(), input: new Map() };
  readonly #bits: Record<BitTable, Map<number, boolean>> = { coil: new Map(), discrete: new Map() };
  /** Holding registers a plain FC16 write may change: declared points other than the wallet. */
  readonly #writable = new Set<number>();
  readonly #credit:
    | {
        readonly spec: Extract<CreditSpec, { method: 'modbus-write' }>;
        readonly fields: readonly CreditField[];
        readonly start: number;
        readonly end: number;
      }
    | undefined;
  readonly #relay: { readonly address: number; readonly openValue: boolean } | undefined;
  readonly #threePhase: boolean;
  #credits: Record<CreditOutcome, number> = { applied: 0, repeat: 0, refused: 0 };
  readonly #writes: RegisterWrite[] = [];

  constructor(profile: DeviceProfile, options: SimulatedModbusMeterOptions = {}) {
    if (!profile.protocol.startsWith('modbus'))
      throw new TypeError(`profile ${profile.id} is ${profile.protocol}; the Modbus simulator needs a Modbus profile`);
    this.profile = profile;
    this.#threePhase = profile.points.has('voltage.b') || profile.points.has('current.b');
    this.#serveDeclaredRegisters();

    const wallet = profile.credit ? new Set(Object.values(profile.credit.readBack)) : new Set<string>();
    for (const p of this.#modbusPoints()) {
      if (p.table === 'holding' && !wallet.has(p.name))
        for (let a = p.address; a < p.address + dataTypeInfo(p.type).count; a++) this.#writable.add(a);
    }
    if (profile.credit?.method === 'modbus-write') {
      const fields = profile.credit.registers.map((r) => ({
        field: r.field,
        address: r.address,
        type: r.type,
        order: r.order,
        scale: r.scale,
      }));
      const start = Math.min(...fields.map((f) => f.address));
      const end = Math.max(...fields.map((f) => f.address + dataTypeInfo(f.type).count));
      this.#credit = { spec: profile.credit, fields, start, end };
    }
    if (profile.relay?.method === 'modbus-coil') {
      this.#relay = { address: profile.relay.address, openValue: profile.relay.openValue };
      if (!this.#bits.coil.has(profile.relay.address)) this.#bits.coil.set(profile.relay.address, !profile.relay.openValue);
    }

    for (const p of profile.points.values()) {
      if (p.kind !== 'modbus') continue;
      const given = options.values?.[p.name];
      if (given !== undefined) this.setValue(p.name, given);
      else this.#store(p, this.#defaultRaw(p));
    }
    for (const [name, v] of Object.entries(options.values ?? {})) {
      if (profile.points.get(name)?.kind === 'derived') this.setValue(name, v);
      else if (!profile.points.has(name)) throw new RangeError(`profile ${profile.id} has no point "${name}"`);
    }
  }

  /** Credit loads seen so far, by outcome. */
  get credits(): Readonly<Record<CreditOutcome, number>> {
    return { ...this.#credits };
  }

  /** Every FC16 request, oldest first: a test's proof of how many times a register was written. */
  writes(): readonly RegisterWrite[] {
    return [...this.#writes];
  }

  /**
   * The room uses `kwh`: the import register rises, the free-energy registers of a modbus-subsidy profile are spent
   * first, in the profile's order, then the paid balance (down to 0), as dormitory meters do with free energy.
   */
  consume(kwh: number): void {
    if (!(kwh > 0)) throw new RangeError(`consumption is a positive number of kWh, not ${kwh}`);
    let left = Math.round(kwh * 100);
    const take = (point: string): void => {
      const have = Math.round(this.getValue(point) * 100);
      const used = Math.min(have, left);
      this.setValue(point, (have - used) / 100);
      left -= used;
    };
    if (this.profile.points.has('energy.active.import'))
      this.setValue('energy.active.import', (Math.round(this.getValue('energy.active.import') * 100) + Math.round(kwh * 100)) / 100);
    for (const r of this.profile.subsidy?.registers ?? []) take(r.point);
    if (this.profile.credit) take(this.profile.credit.readBack.balance);
  }

  /** Sets a point (or a bit point such as relay.state) in engineering units; a value the registers cannot hold is a RangeError. */
  setValue(point: string, value: number): void {
    const spec = this.profile.points.get(point);
    if (!spec) throw new RangeError(`profile ${this.profile.id} has no point "${point}"`);
    if (spec.kind === 'derived') {
      this.#setBit(spec, value);
      return;
    }
    if (spec.kind !== 'modbus') throw new RangeError(`point "${point}" is not a Modbus point`);
    const raw = toRaw(spec, value);
    if (!raw.ok) throw new RangeError(`cannot set ${point} to ${value}: ${raw.reason}`);
    this.#store(spec, raw.value);
  }

  /** A point's value as a correct reader would decode it from the registers. */
  getValue(point: string): number {
    const spec = this.profile.points.get(point);
    if (!spec) throw new RangeError(`profile ${this.profile.id} has no point "${point}"`);
    if (spec.kind === 'derived') {
      const source = this.profile.points.get(spec.from);
      if (source?.kind !== 'modbus') throw new RangeError(`point "${point}" is a bit of "${spec.from}", which is not a Modbus point`);
      return Number((BigInt(this.#raw(source)) >> BigInt(spec.bit)) & 1n);
    }
    if (spec.kind !== 'modbus') throw new RangeError(`point "${point}" is not a Modbus point`);
    const raw = this.#raw(spec);
    return spec.scale === 1 && spec.offset === 0 ? Number(raw) : applyScale(Number(raw), { scale: spec.scale, offset: spec.offset });
  }

  /** Every point's value, for a status line or a test's failure message. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of this.profile.points.keys()) {
      try {
        out[name] = this.getValue(name);
      } catch {
        // A point of another protocol has no value here.
      }
    }
    return out;
  }

  /** FC03 / FC04. */
  readRegisters(table: WordTable, start: number, count: number): SimAnswer<number[]> {
    if (count < 1 || count > MAX_READ_REGISTERS) return refuse(ILLEGAL_DATA_VALUE, `quantity ${count} is outside 1–${MAX_READ_REGISTERS}`);
    const image = this.#words[table];
    const out: number[] = [];
    for (let a = start; a < start + count; a++) {
      const w = image.get(a);
      if (w === undefined) return refuse(ILLEGAL_DATA_ADDRESS, `${table} register ${hex(a)} is not mapped`);
      out.push(w);
    }
    return ok(out);
  }

  /** FC01 / FC02. The relay coil reads back the relay state. */
  readBits(table: BitTable, start: number, count: number): SimAnswer<boolean[]> {
    if (count < 1 || count > MAX_READ_BITS) return refuse(ILLEGAL_DATA_VALUE, `quantity ${count} is outside 1–${MAX_READ_BITS}`);
    const out: boolean[] = [];
    for (let a = start; a < start + count; a++) {
      const b = table === 'coil' && this.#relay?.address === a ? this.#relayCoil() : this.#bits[table].get(a);
      if (b === undefined) return refuse(ILLEGAL_DATA_ADDRESS, `${table} ${hex(a)} is not mapped`);
      out.push(b);
    }
    return ok(out);
  }

  /** FC06: this meter, like several cheap ones, takes register writes only as FC16. */
  writeRegister(address: number): SimAnswer<never> {
    return refuse(ILLEGAL_FUNCTION, `FC06 to ${hex(address)}: this meter accepts register writes as FC16 only`);
  }

  /**
   * FC16: a credit load when it covers the credit registers, else a plain write to declared, writable registers (the
   * free-energy registers of a modbus-subsidy profile among them: the meter takes the value written, as it is).
   */
  writeRegisters(start: number, words: readonly number[]): SimAnswer<CreditOutcome | 'written'> {
    const answer = this.#writeRegisters(start, words);
    this.#writes.push({ start, words: [...words], outcome: answer.ok ? answer.value : 'exception' });
    return answer;
  }

  #writeRegisters(start: number, words: readonly number[]): SimAnswer<CreditOutcome | 'written'> {
    const end = start + words.length;
    const credit = this.#credit;
    if (credit && start < credit.end && end > credit.start) {
      if (start !== credit.start || end !== credit.end) {
        return refuse(
          ILLEGAL_DATA_VALUE,
          `a credit load writes ${hex(credit.start)}+${credit.end - credit.start} in one request, not ${hex(start)}+${words.length}`,
        );
      }
      return this.#loadCredit(words);
    }
    for (let a = start; a < end; a++) {
      if (!this.#writable.has(a)) return refuse(ILLEGAL_DATA_ADDRESS, `holding register ${hex(a)} is not writable`);
    }
    for (const [i, w] of words.entries()) this.#words.holding.set(start + i, w);
    return ok('written');
  }

  /** FC05: the relay coil, or a coil point. */
  writeCoil(address: number, value: boolean): SimAnswer<void> {
    if (this.#relay?.address === address) {
      const open = value === this.#relay.openValue;
      if (this.profile.points.get('relay.state')?.kind === 'derived') this.setValue('relay.state', open ? 1 : 0);
      else this.#bits.coil.set(address, value);
      return ok(undefined);
    }
    if (!this.#bits.coil.has(address)) return refuse(ILLEGAL_DATA_ADDRESS, `coil ${hex(address)} is not mapped`);
    this.#bits.coil.set(address, value);
    return ok(undefined);
  }

  #loadCredit(words: readonly number[]): SimAnswer<CreditOutcome> {
    const credit = this.#credit!;
    const field = (name: string): number | undefined => {
      const f = credit.fields.find((x) => x.field === name);
      if (!f) return undefined;
      const offset = f.address - credit.start;
      const decoded = decodeValue(words.slice(offset, offset + dataTypeInfo(f.type).count), f.type, f.order);
      const n = decoded.ok ? toNumber(decoded.value) : undefined;
      return n?.ok ? applyScale(n.value, { scale: f.scale }) : undefined;
    };
    const count = field('purchaseCount');
    const amount = field('amount');
    const refused = (reason: string): SimAnswer<never> => {
      this.#credits.refused++;
      return refuse(ILLEGAL_DATA_VALUE, reason);
    };
    if (count === undefined || amount === undefined) return refused('the credit registers do not decode to a purchase count and an amount');
    const current = this.getValue(credit.spec.readBack.count);
    if (count === current) {
      this.#credits.repeat++;
      return ok('repeat');
    }
    if (count !== current + 1) return refused(`purchase count ${count} is neither the meter's ${current} (a repeat) nor ${current + 1}`);
    if (!(amount > 0)) return refused(`amount ${amount} is not positive`);
    const balance = decimalSum(this.getValue(credit.spec.readBack.balance), amount);
    const newBalance = toRaw(this.#point(credit.spec.readBack.balance), balance);
    if (!newBalance.ok) return refused(`the balance would be ${balance}: ${newBalance.reason}`);
    this.setValue(credit.spec.readBack.balance, balance);
    this.setValue(credit.spec.readBack.count, count);
    if (this.profile.points.get('credit.purchase.last.amount')?.kind === 'modbus') this.setValue('credit.purchase.last.amount', amount);
    this.#credits.applied++;
    return ok('applied');
  }

  #relayCoil(): boolean {
    const relay = this.#relay!;
    const state = this.profile.points.get('relay.state');
    if (state?.kind !== 'derived') return this.#bits.coil.get(relay.address) ?? !relay.openValue;
    return this.getValue('relay.state') === 1 ? relay.openValue : !relay.openValue;
  }

  #setBit(spec: DerivedPoint, value: number): void {
    if (value !== 0 && value !== 1) throw new RangeError(`${spec.name} is a bit: 0 or 1, not ${value}`);
    const source = this.#point(spec.from);
    const mask = 1n << BigInt(spec.bit);
    const bits = dataTypeInfo(source.type).count * 16;
    const before = BigInt.asUintN(bits, BigInt(this.#raw(source)));
    const after = value ? before | mask : before & ~mask;
    const signed = dataTypeInfo(source.type).signed ? BigInt.asIntN(bits, after) : after;
    this.#store(source, bits > 32 ? signed : Number(signed));
  }

  #point(name: string): ModbusPoint {
    const p = this.profile.points.get(name);
    if (p?.kind !== 'modbus') throw new RangeError(`profile ${this.profile.id} has no Modbus point "${name}"`);
    return p;
  }

  #raw(spec: ModbusPoint): number | bigint {
    if (isBitTable(spec.table)) return this.#bits[spec.table].get(spec.address) ? 1 : 0;
    const words = this.#words[spec.table];
    const count = dataTypeInfo(spec.type).count;
    const own: number[] = [];
    for (let a = spec.address; a < spec.address + count; a++) own.push(words.get(a) ?? 0);
    const decoded = decodeValue(own, spec.type, spec.order);
    if (!decoded.ok) return NaN;
    return decoded.value;
  }

  #store(spec: ModbusPoint, raw: number | bigint): void {
    if (isBitTable(spec.table)) {
      this.#bits[spec.table].set(spec.address, raw !== 0 && raw !== 0n);
      return;
    }
    const words = encodeValue(raw, spec.type, spec.order);
    if (!words.ok) throw new RangeError(`cannot store ${String(raw)} in ${spec.name} (${spec.type}): ${words.error.message}`);
    for (const [i, w] of words.value.entries()) this.#words[spec.table as WordTable].set(spec.address + i, w);
  }

  /** A default quantised to the point's register: whole steps for integers, clamped to the type's range. */
  #defaultRaw(spec: ModbusPoint): number | bigint {
    const v = defaultValue(spec.name, this.#threePhase);
    if (isBitTable(spec.table)) return v ? 1 : 0;
    const exact = (v - spec.offset) / spec.scale;
    if (dataTypeInfo(spec.type).kind === 'float') return Number(exact.toPrecision(15));
    const info = dataTypeInfo(spec.type);
    const bits = info.count * 16;
    const min = info.signed ? -(2 ** (bits - 1)) : 0;
    const max = info.signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
    const r = Math.min(max, Math.max(min, Math.round(exact)));
    return bits > 32 ? BigInt(r) : r;
  }

  /** Declared points are served, and so are gaps of at most `maxGap` registers between neighbours in one table. */
  #serveDeclaredRegisters(): void {
    const byTable = new Map<string, Array<{ start: number; end: number }>>();
    for (const p of this.#modbusPoints()) {
      const span = { start: p.address, end: p.address + (isBitTable(p.table) ? 1 : dataTypeInfo(p.type).count) };
      byTable.set(p.table, [...(byTable.get(p.table) ?? []), span]);
    }
    for (const [table, spans] of byTable) {
      spans.sort((x, y) => x.start - y.start);
      let prevEnd: number | undefined;
      for (const s of spans) {
        const from = prevEnd !== undefined && s.start > prevEnd && s.start - prevEnd <= this.profile.maxGap ? prevEnd : s.start;
        for (let a = from; a < s.end; a++) {
          if (isBitTable(table)) {
            if (!this.#bits[table].has(a)) this.#bits[table].set(a, false);
          } else if (!this.#words[table as WordTable].has(a)) this.#words[table as WordTable].set(a, 0);
        }
        prevEnd = Math.max(prevEnd ?? 0, s.end);
      }
    }
  }

  *#modbusPoints(): Iterable<ModbusPoint> {
    for (const p of this.profile.points.values()) if (p.kind === 'modbus') yield p;
  }
}

/** Engineering value → the raw register value: exact whole steps for integer types, the float itself for float32. */
function toRaw(spec: ModbusPoint, value: number): SimAnswer<number | bigint> {
  if (!Number.isFinite(value)) return refuse(ILLEGAL_DATA_VALUE, `${value} is not a finite number`);
  if (isBitTable(spec.table))
    return value === 0 || value === 1 ? ok(value) : refuse(ILLEGAL_DATA_VALUE, 'a coil or discrete input is 0 or 1');
  const info = dataTypeInfo(spec.type);
  if (info.kind === 'float') {
    // toPrecision(15) drops binary noise (1.1316 / 0.001 is 1131.6000000000001); float32 keeps about 7 digits anyway.
    const raw = Number(((value - spec.offset) / spec.scale).toPrecision(15));
    if (!Number.isFinite(Math.fround(raw))) return refuse(ILLEGAL_DATA_VALUE, `${value} is beyond the float32 range`);
    const stored = applyScale(shortestFloat32(Math.fround(raw)), { scale: spec.scale, offset: spec.offset });
    if (stored !== value) return refuse(ILLEGAL_DATA_VALUE, `${value} is not exact in a float32 (it would read back as ${stored})`);
    return ok(raw);
  }
  const raw = removeScale(value, { scale: spec.scale, offset: spec.offset });
  if (!raw.ok) return refuse(ILLEGAL_DATA_VALUE, raw.error.message);
  const bits = info.count * 16;
  const fits = encodeValue(raw.value, spec.type, spec.order);
  if (!fits.ok) return refuse(ILLEGAL_DATA_VALUE, fits.error.message);
  return ok(bits > 32 ? BigInt(raw.value) : raw.value);
}

/** a + b without binary noise for decimal amounts (50 + 12.34 is 62.34). */
function decimalSum(a: number, b: number): number {
  return Number((a + b).toPrecision(15));
}

function isBitTable(table: string): table is BitTable {
  return table === 'coil' || table === 'discrete';
}

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;
}
