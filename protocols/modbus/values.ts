/**
 * Register words ⇄ typed values, and raw ⇄ engineering units.
 *
 *   decodeValue([0x4366, 0x0000], 'float32', 'ABCD')   // { ok: true, value: 230 }
 *   encodeValue(-2, 'int32', 'CDAB')                   // { ok: true, value: [0xfffe, 0xffff] }
 *   applyScale(2302, { scale: 0.1 })                   // 230.2 (not 230.20000000000002)
 *   removeScale(123.45, { scale: 0.01 })               // { ok: true, value: 12345 }
 */
import { fail, ok, type Result } from './result.js';
import { dataTypeInfo, WORD_ORDER_SWAPS, WORD_ORDERS, type DataType, type WordOrder } from './types.js';

export type RegisterValue = number | bigint;

/** `raw * scale + offset`, as profiles state it (e.g. DTSU666 voltage: raw × 0.1 V). */
export interface Scaling {
  /** Defaults to 1. */
  readonly scale?: number;
  /** Defaults to 0. */
  readonly offset?: number;
}

function swaps(order: WordOrder): { readonly words: boolean; readonly bytes: boolean } {
  const s = WORD_ORDER_SWAPS[order];
  if (!s) throw new TypeError(`unknown word order "${String(order)}"; expected one of ${WORD_ORDERS.join(', ')}`);
  return s;
}

function swapBytes(word: number): number {
  return ((word & 0xff) << 8) | (word >>> 8);
}

/** Wire words in `order` → words in big-endian (ABCD) order. The mapping is its own inverse, so encoding uses it too. */
function reorder(words: readonly number[], order: WordOrder): number[] {
  const s = swaps(order);
  const n = words.length;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const w = words[s.words ? n - 1 - i : i]!;
    out[i] = s.bytes ? swapBytes(w) : w;
  }
  return out;
}

/**
 * The shortest decimal that reads back as the same float32 (IEEE 754 single in two §4.2 registers, MODBUS Application
 * Protocol v1.1b3), so 0x43663333 reports 230.2 rather than 230.1999969482422 and nothing is lost.
 */
export function shortestFloat32(f: number): number {
  if (!Number.isFinite(f) || f === 0) return f;
  for (let precision = 1; precision <= 9; precision++) {
    const candidate = Number(f.toPrecision(precision));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

/**
 * Decode one point's words (as read with FC01–FC04, MODBUS Application Protocol v1.1b3 §6.1–§6.4) into its value:
 * a number for 16/32-bit types and float32, a bigint for int64/uint64, 0 or 1 for `bool`.
 * float32 NaN or ±Infinity (a meter's "no value") is `NOT_A_NUMBER`.
 */
export function decodeValue(words: ArrayLike<number | boolean>, type: DataType, order: WordOrder): Result<RegisterValue> {
  const info = dataTypeInfo(type);
  swaps(order);
  if (words.length !== info.count) {
    return fail(
      'WRONG_WORD_COUNT',
      `${type} needs ${info.count} ${info.kind === 'bit' ? 'bit' : 'register'}${info.count > 1 ? 's' : ''}, got ${words.length}`,
    );
  }
  if (info.kind === 'bit') {
    const bit = words[0];
    if (bit === true || bit === 1) return ok(1);
    if (bit === false || bit === 0) return ok(0);
    return fail('BAD_WORD', `a coil or discrete input is 0 or 1, got ${String(bit)}`);
  }
  const wire: number[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 0xffff) {
      return fail('BAD_WORD', `register ${i} of a ${type} is ${String(w)}, not a 16-bit word (0–65535)`);
    }
    wire.push(w);
  }
  const be = reorder(wire, order);
  switch (type) {
    case 'uint16':
      return ok(be[0]!);
    case 'int16':
      return ok((be[0]! << 16) >> 16);
    case 'uint32':
      return ok(be[0]! * 0x10000 + be[1]!);
    case 'int32':
      return ok(((be[0]! << 16) | be[1]!) >> 0);
    case 'float32': {
      const view = new DataView(new ArrayBuffer(4));
      view.setUint16(0, be[0]!);
      view.setUint16(2, be[1]!);
      const f = view.getFloat32(0);
      if (!Number.isFinite(f))
        return fail('NOT_A_NUMBER', `float32 ${hexWords(wire)} is ${f}: the meter has no valid value for this point`);
      return ok(shortestFloat32(f));
    }
    case 'uint64':
    case 'int64': {
      let v = 0n;
      for (const w of be) v = (v << 16n) | BigInt(w);
      return ok(type === 'int64' ? BigInt.asIntN(64, v) : v);
    }
    default:
      throw new TypeError(`decodeValue has no decoder for type "${String(type)}"`);
  }
}

/**
 * Encode a value into the words of one point, in wire order, for FC05/06/15/16 writes (MODBUS Application Protocol
 * v1.1b3 §6.5, §6.6, §6.11, §6.12). Integers must be whole and in range; float32 rounds to the nearest float32
 * (verify a credit write by reading it back); `bool` gives [1] or [0].
 */
export function encodeValue(value: RegisterValue | boolean, type: DataType, order: WordOrder): Result<number[]> {
  const info = dataTypeInfo(type);
  swaps(order);
  if (info.kind === 'bit') {
    if (value === true || value === 1 || value === 1n) return ok([1]);
    if (value === false || value === 0 || value === 0n) return ok([0]);
    return fail('OUT_OF_RANGE', `a coil is 0 or 1 (or a boolean), got ${String(value)}`);
  }
  if (typeof value === 'boolean') return fail('OUT_OF_RANGE', `a ${type} register takes a number, got the boolean ${value}`);
  if (info.kind === 'float') {
    const f = Number(value);
    if (!Number.isFinite(f)) return fail('NOT_A_NUMBER', `cannot write ${String(value)} as a float32`);
    if (!Number.isFinite(Math.fround(f))) return fail('OUT_OF_RANGE', `${f} is beyond the float32 range (±3.4028235e38)`);
    const view = new DataView(new ArrayBuffer(4));
    view.setFloat32(0, f);
    return ok(reorder([view.getUint16(0), view.getUint16(2)], order));
  }
  if (typeof value === 'number') {
    if (Number.isNaN(value) || !Number.isFinite(value)) return fail('NOT_A_NUMBER', `cannot write ${value} as a ${type}`);
    if (!Number.isInteger(value))
      return fail(
        'NOT_AN_INTEGER',
        `${value} is not a whole number; a ${type} register holds integers (use removeScale for scaled values)`,
      );
  }
  const bits = BigInt(info.count * 16);
  const v = BigInt(value);
  const min = info.signed ? -(1n << (bits - 1n)) : 0n;
  const max = info.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  if (v < min || v > max) return fail('OUT_OF_RANGE', `${v} does not fit a ${type} (${min} … ${max})`);
  const u = BigInt.asUintN(Number(bits), v);
  const be: number[] = [];
  for (let i = info.count - 1; i >= 0; i--) be.push(Number((u >> BigInt(16 * i)) & 0xffffn));
  return ok(reorder(be, order));
}

/** A decoded value as a plain number; a 64-bit value beyond ±(2^53 − 1) is `UNSAFE_INTEGER` instead of a silently rounded number (applies to FC03/04 values, MODBUS Application Protocol v1.1b3 §6.3–§6.4). */
export function toNumber(value: RegisterValue): Result<number> {
  if (typeof value === 'number') return ok(value);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    return fail('UNSAFE_INTEGER', `${value} is beyond ±${Number.MAX_SAFE_INTEGER}; a number would round it (keep it as a bigint)`);
  }
  return ok(Number(value));
}

function checkScaling(scaling: Scaling): { scale: number; offset: number } {
  const scale = scaling.scale ?? 1;
  const offset = scaling.offset ?? 0;
  if (!Number.isFinite(scale) || scale === 0) throw new RangeError(`scale must be a finite non-zero number, got ${scale}`);
  if (!Number.isFinite(offset)) throw new RangeError(`offset must be a finite number, got ${offset}`);
  return { scale, offset };
}

/** x as m / 10^k with m a safe integer and k ≤ 15, when x is such a short decimal. */
function asDecimal(x: number): { m: bigint; k: number } | undefined {
  for (let k = 0; k <= 15; k++) {
    const p = 10 ** k;
    const m = Math.round(x * p);
    if (!Number.isSafeInteger(m)) return undefined;
    if (m / p === x) return { m: BigInt(m), k };
  }
  return undefined;
}

/**
 * Engineering value of a raw register value: `raw * scale + offset` (scaling is a vendor convention on top of
 * MODBUS Application Protocol v1.1b3 §4.2 words). Computed in exact decimal when the inputs are short decimals,
 * so 2302 × 0.1 is 230.2 and not the binary-float 230.20000000000002.
 */
export function applyScale(raw: RegisterValue, scaling: Scaling): number {
  const { scale, offset } = checkScaling(scaling);
  const r = typeof raw === 'bigint' ? { m: raw, k: 0 } : asDecimal(raw);
  const s = asDecimal(scale);
  const o = asDecimal(offset);
  if (!r || !s || !o) return Number(raw) * scale + offset;
  const k = Math.max(r.k + s.k, o.k);
  const numerator = r.m * s.m * 10n ** BigInt(k - r.k - s.k) + o.m * 10n ** BigInt(k - o.k);
  return Number(numerator) / 10 ** k;
}

/**
 * The raw integer to write for an engineering value: the inverse of {@link applyScale} for FC06/FC16 writes
 * (MODBUS Application Protocol v1.1b3 §6.6, §6.12). A value that is not a whole number of scale steps
 * (12.345 with scale 0.01) is `NOT_ON_SCALE`: money in fen is never rounded silently.
 */
export function removeScale(value: number, scaling: Scaling): Result<number> {
  const { scale, offset } = checkScaling(scaling);
  if (!Number.isFinite(value)) return fail('NOT_A_NUMBER', `cannot scale ${value} for writing`);
  const raw = Math.round((value - offset) / scale);
  if (!Number.isSafeInteger(raw))
    return fail('UNSAFE_INTEGER', `${value} with scale ${scale} needs raw ${raw}, beyond ±${Number.MAX_SAFE_INTEGER}`);
  if (applyScale(raw, { scale, offset }) !== value) {
    const below = applyScale(Math.floor((value - offset) / scale), { scale, offset });
    const above = applyScale(Math.ceil((value - offset) / scale), { scale, offset });
    return fail(
      'NOT_ON_SCALE',
      `${value} is not a whole number of ${scale} steps${offset ? ` from ${offset}` : ''}; the nearest writable values are ${below} and ${above}`,
    );
  }
  // Math.round(-0.4) is -0; a raw register value has no sign of zero.
  return ok(raw === 0 ? 0 : raw);
}

function hexWords(words: readonly number[]): string {
  return words.map((w) => `0x${w.toString(16).toUpperCase().padStart(4, '0')}`).join(' ');
}
