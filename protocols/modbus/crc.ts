/**
 * Modbus RTU framing: CRC-16, and whole ADUs (unit · function · data · CRC) in both directions, so sniffed bus
 * captures can be explained. Pure: a bad or partial frame is a typed error, never an exception.
 *
 *   encodeRtuFrame(1, 3, [0x00, 0x00, 0x00, 0x0a])          // 01 03 00 00 00 0A C5 CD
 *   decodeRtuFrame(bytes)                                  // { ok: true, value: { unit: 1, functionCode: 3, pdu: { kind: 'read-request', … } } }
 */
import { describeException, type ModbusException } from './exceptions.js';
import { fail, ok, type Result } from './result.js';

/** Largest RTU ADU: 1 unit + 253 PDU + 2 CRC (MODBUS over Serial Line v1.02 §2.5.1.1; Application Protocol v1.1b3 §4.1). */
export const MAX_RTU_FRAME = 256;
/** Unit + function + CRC: the shortest frame that can pass a CRC check. */
export const MIN_RTU_FRAME = 4;

/**
 * CRC-16/MODBUS over `bytes[start, end)`: polynomial 0xA001 (reflected 0x8005), initial 0xFFFF. The result goes on the
 * wire low byte first (MODBUS over Serial Line v1.02 §2.5.1.2 and §6.2.2 "CRC Generation").
 */
export function crc16(bytes: ArrayLike<number>, start = 0, end = bytes.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! & 0xff;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/**
 * Build an RTU ADU: unit, function code, data, then the CRC low byte first (MODBUS over Serial Line v1.02 §2.5.1.1).
 * Arguments come from code, so an out-of-range one throws a RangeError.
 */
export function encodeRtuFrame(unit: number, functionCode: number, data: ArrayLike<number>): Uint8Array {
  if (!Number.isInteger(unit) || unit < 0 || unit > 0xff) throw new RangeError(`unit id ${unit} is not a byte (0 broadcast, 1–247 units)`);
  if (!Number.isInteger(functionCode) || functionCode < 1 || functionCode > 0xff)
    throw new RangeError(`function code ${functionCode} is not 1–255`);
  if (data.length > MAX_RTU_FRAME - MIN_RTU_FRAME)
    throw new RangeError(`data is ${data.length} bytes; an RTU frame carries at most ${MAX_RTU_FRAME - MIN_RTU_FRAME}`);
  const out = new Uint8Array(data.length + MIN_RTU_FRAME);
  out[0] = unit;
  out[1] = functionCode;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (!Number.isInteger(b) || b < 0 || b > 0xff) throw new RangeError(`data byte ${i} is ${b}, not 0–255`);
    out[2 + i] = b;
  }
  const crc = crc16(out, 0, out.length - 2);
  out[out.length - 2] = crc & 0xff;
  out[out.length - 1] = crc >>> 8;
  return out;
}

/** What a frame's PDU says; `kind` names the message (requests and replies of FC05/06 are the same bytes). */
export type ModbusPdu =
  | { readonly kind: 'read-request'; readonly start: number; readonly quantity: number }
  | { readonly kind: 'read-bits-reply'; readonly bits: readonly boolean[] }
  | { readonly kind: 'read-registers-reply'; readonly words: readonly number[] }
  | { readonly kind: 'write-single-coil'; readonly address: number; readonly on: boolean }
  | { readonly kind: 'write-single-register'; readonly address: number; readonly value: number }
  | { readonly kind: 'write-coils-request'; readonly start: number; readonly quantity: number; readonly bits: readonly boolean[] }
  | { readonly kind: 'write-registers-request'; readonly start: number; readonly quantity: number; readonly words: readonly number[] }
  | { readonly kind: 'write-multiple-reply'; readonly start: number; readonly quantity: number }
  | { readonly kind: 'exception'; readonly function: number; readonly exception: ModbusException }
  | { readonly kind: 'other'; readonly data: Uint8Array };

export type RtuDirection = 'request' | 'response';

export interface RtuFrame {
  readonly unit: number;
  /** The function byte as on the wire (0x83 for an FC03 exception). */
  readonly functionCode: number;
  readonly pdu: ModbusPdu;
  /**
   * Set when no direction was given and the bytes are a plausible message both ways: an FC01/02 request starting
   * at 0x0300–0x03FF for at most 2000 bits reads the same as a 3-byte bit reply. `pdu` is then the request.
   */
  readonly alternative?: ModbusPdu;
}

export interface DecodeRtuOptions {
  /** Which side sent the frame, when the capture knows; otherwise it is inferred from the frame's shape. */
  readonly direction?: RtuDirection;
}

const u16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;

function unpackBits(bytes: Uint8Array, from: number, count: number): boolean[] {
  const bits = new Array<boolean>(count);
  // The first coil is the least significant bit of the first data byte (Application Protocol v1.1b3 §6.1).
  for (let i = 0; i < count; i++) bits[i] = ((bytes[from + (i >> 3)]! >> (i & 7)) & 1) === 1;
  return bits;
}

function words(bytes: Uint8Array, from: number, count: number): number[] {
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) out[i] = u16(bytes, from + 2 * i);
  return out;
}

function wrongLength(fc: number, direction: RtuDirection, expected: number, got: number) {
  return fail('MALFORMED_PDU', `an FC${fc} ${direction} carries ${expected} data bytes after the function code, this one ${got}`);
}

/** Parse `data` (the bytes between function code and CRC) as a request (Application Protocol v1.1b3 §6.1–§6.6, §6.11, §6.12). */
function parseRequest(fc: number, data: Uint8Array): Result<ModbusPdu> {
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
      if (data.length !== 4) return wrongLength(fc, 'request', 4, data.length);
      return ok({ kind: 'read-request', start: u16(data, 0), quantity: u16(data, 2) });
    case 5:
    case 6:
      return parseWriteSingle(fc, data);
    case 15:
    case 16: {
      if (data.length < 5) return wrongLength(fc, 'request', 5, data.length);
      const start = u16(data, 0);
      const quantity = u16(data, 2);
      const byteCount = data[4]!;
      if (data.length !== 5 + byteCount) return wrongLength(fc, 'request', 5 + byteCount, data.length);
      const needed = fc === 15 ? Math.ceil(quantity / 8) : quantity * 2;
      if (byteCount !== needed)
        return fail(
          'MALFORMED_PDU',
          `an FC${fc} request for ${quantity} ${fc === 15 ? 'coils' : 'registers'} needs byte count ${needed}, this one says ${byteCount}`,
        );
      return ok(
        fc === 15
          ? { kind: 'write-coils-request', start, quantity, bits: unpackBits(data, 5, quantity) }
          : { kind: 'write-registers-request', start, quantity, words: words(data, 5, quantity) },
      );
    }
    default:
      return ok({ kind: 'other', data });
  }
}

/** Parse `data` as a normal reply (Application Protocol v1.1b3 §6.1–§6.6, §6.11, §6.12). */
function parseResponse(fc: number, data: Uint8Array): Result<ModbusPdu> {
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4: {
      const byteCount = data[0];
      if (byteCount === undefined || byteCount === 0) return fail('MALFORMED_PDU', `an FC${fc} reply starts with a non-zero byte count`);
      if (data.length !== 1 + byteCount) return wrongLength(fc, 'response', 1 + byteCount, data.length);
      if (fc <= 2) return ok({ kind: 'read-bits-reply', bits: unpackBits(data, 1, byteCount * 8) });
      if (byteCount % 2 !== 0) return fail('MALFORMED_PDU', `an FC${fc} reply carries whole registers, but its byte count is ${byteCount}`);
      return ok({ kind: 'read-registers-reply', words: words(data, 1, byteCount / 2) });
    }
    case 5:
    case 6:
      return parseWriteSingle(fc, data);
    case 15:
    case 16:
      if (data.length !== 4) return wrongLength(fc, 'response', 4, data.length);
      return ok({ kind: 'write-multiple-reply', start: u16(data, 0), quantity: u16(data, 2) });
    default:
      return ok({ kind: 'other', data });
  }
}

function parseWriteSingle(fc: 5 | 6, data: Uint8Array): Result<ModbusPdu> {
  if (data.length !== 4) return wrongLength(fc, 'request', 4, data.length);
  const address = u16(data, 0);
  const value = u16(data, 2);
  if (fc === 6) return ok({ kind: 'write-single-register', address, value });
  // FC05 allows exactly FF00 (on) and 0000 (off) (Application Protocol v1.1b3 §6.5).
  if (value !== 0xff00 && value !== 0x0000)
    return fail(
      'MALFORMED_PDU',
      `an FC05 value is FF00 (on) or 0000 (off), this one is ${value.toString(16).toUpperCase().padStart(4, '0')}`,
    );
  return ok({ kind: 'write-single-coil', address, on: value === 0xff00 });
}

/** Total frame length the header announces in one direction, or a lower bound while the byte count is not yet in. */
function announcedLength(bytes: Uint8Array, direction: RtuDirection): number | undefined {
  const fc = bytes[1]!;
  if (fc & 0x80) return 5;
  if (direction === 'request') {
    if (fc >= 1 && fc <= 6) return 8;
    if (fc === 15 || fc === 16) return bytes.length >= 7 ? 9 + bytes[6]! : 9;
    return undefined;
  }
  if (fc >= 1 && fc <= 4) return bytes.length >= 3 ? 5 + bytes[2]! : 5;
  if (fc === 5 || fc === 6 || fc === 15 || fc === 16) return 8;
  return undefined;
}

/**
 * Decode one complete RTU ADU (MODBUS over Serial Line v1.02 §2.5.1.1) carrying FC01–06, 15, 16 or an exception
 * (function | 0x80, Application Protocol v1.1b3 §7); other function codes come back as `other` with their raw data.
 * Errors: `TRUNCATED` (the header announces more bytes), `TOO_LONG`, `BAD_CRC`, `MALFORMED_PDU`.
 */
export function decodeRtuFrame(bytes: Uint8Array, options: DecodeRtuOptions = {}): Result<RtuFrame> {
  if (bytes.length < MIN_RTU_FRAME)
    return fail('TRUNCATED', `an RTU frame is at least ${MIN_RTU_FRAME} bytes (unit, function, CRC), got ${bytes.length}`);
  if (bytes.length > MAX_RTU_FRAME) return fail('TOO_LONG', `an RTU frame is at most ${MAX_RTU_FRAME} bytes, got ${bytes.length}`);
  const directions: RtuDirection[] = options.direction ? [options.direction] : ['request', 'response'];
  const expected = bytes[bytes.length - 2]! | (bytes[bytes.length - 1]! << 8);
  const actual = crc16(bytes, 0, bytes.length - 2);
  if (expected !== actual) {
    const lengths = directions.map((d) => announcedLength(bytes, d));
    const longer = lengths.filter((n): n is number => n !== undefined && n > bytes.length);
    if (longer.length > 0 && !lengths.includes(bytes.length)) {
      return fail('TRUNCATED', `the frame header announces at least ${Math.min(...longer)} bytes, got ${bytes.length}`);
    }
    return fail('BAD_CRC', `CRC ${hex16(expected)} on the wire, ${hex16(actual)} computed (bytes sent low first)`);
  }
  const unit = bytes[0]!;
  const functionCode = bytes[1]!;
  const data = bytes.subarray(2, bytes.length - 2);
  if (functionCode & 0x80) {
    if (data.length !== 1)
      return fail('MALFORMED_PDU', `an exception reply carries exactly one exception code, this one ${data.length} bytes`);
    return ok({ unit, functionCode, pdu: { kind: 'exception', function: functionCode & 0x7f, exception: describeException(data[0]!) } });
  }
  const parsed = directions.map((d) => (d === 'request' ? parseRequest(functionCode, data) : parseResponse(functionCode, data)));
  let candidates = parsed.flatMap((p) => (p.ok ? [p.value] : []));
  if (candidates.length === 0) {
    const reasons = [...new Set(parsed.map((p) => (p.ok ? '' : p.error.message)))];
    return fail('MALFORMED_PDU', reasons.length === 1 ? reasons[0]! : reasons.map((m, i) => `as a ${directions[i]}: ${m}`).join('; '));
  }
  if (candidates.length > 1) {
    const plausible = candidates.filter((pdu) => plausibleQuantity(functionCode, pdu));
    if (plausible.length > 0) candidates = plausible;
  }
  const pdu = candidates[0]!;
  const other = candidates[1];
  // FC05/06 and unknown functions read the same both ways: only a real difference is an alternative.
  return ok(other && other.kind !== pdu.kind ? { unit, functionCode, pdu, alternative: other } : { unit, functionCode, pdu });
}

/** A read request outside the protocol's quantity limits (Application Protocol v1.1b3 §6.1–§6.4) is more likely a reply. */
function plausibleQuantity(fc: number, pdu: ModbusPdu): boolean {
  if (pdu.kind !== 'read-request') return true;
  return pdu.quantity >= 1 && pdu.quantity <= (fc <= 2 ? 2000 : 125);
}

function hex16(n: number): string {
  return `${(n & 0xff).toString(16).toUpperCase().padStart(2, '0')} ${(n >>> 8).toString(16).toUpperCase().padStart(2, '0')}`;
}
