import { fail, ok, type Result } from './result.js';

/** True when both nibbles of the byte are decimal digits (BCD, DL/T 645-2007 §4 data formats). */
export function isBcdByte(b: number): boolean {
  return (b & 0x0f) <= 9 && b >> 4 <= 9;
}

/** One byte of packed BCD to its value 0..99; undefined when a nibble is above 9. */
export function bcdByteToNumber(b: number): number | undefined {
  return isBcdByte(b) ? (b >> 4) * 10 + (b & 0x0f) : undefined;
}

/** 0..99 to one packed BCD byte. */
export function numberToBcdByte(n: number): number {
  return ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

/**
 * Little-endian packed BCD (low byte first, as every multi-byte DL/T 645 item) to an integer.
 * `signed` treats bit 7 of the most significant byte (the last on the wire) as the sign (DL/T 645-2007 Appendix A notes).
 */
export function decodeBcdInteger(bytes: Uint8Array, signed: boolean): Result<number> {
  let value = 0;
  let negative = false;
  for (let i = bytes.length - 1; i >= 0; i--) {
    let b = bytes[i]!;
    if (i === bytes.length - 1 && signed && b & 0x80) {
      negative = true;
      b &= 0x7f;
    }
    const d = bcdByteToNumber(b);
    if (d === undefined) {
      return fail('DLT645_NOT_BCD', `byte ${b.toString(16).padStart(2, '0').toUpperCase()} at offset ${i} is not BCD`);
    }
    value = value * 100 + d;
  }
  return ok(negative && value !== 0 ? -value : value);
}

/** Integer to little-endian packed BCD of `size` bytes; the sign goes in bit 7 of the last byte when `signed`. */
export function encodeBcdInteger(value: number, size: number, signed: boolean): Result<Uint8Array> {
  if (!Number.isSafeInteger(value)) return fail('DLT645_VALUE_RANGE', `${value} is not an integer`);
  const negative = value < 0;
  if (negative && !signed) return fail('DLT645_VALUE_RANGE', `${value} is negative but the item is unsigned`);
  let magnitude = Math.abs(value);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    out[i] = numberToBcdByte(magnitude % 100);
    magnitude = Math.floor(magnitude / 100);
  }
  if (magnitude !== 0) return fail('DLT645_VALUE_RANGE', `${value} does not fit in ${size} BCD bytes`);
  if (signed) {
    if (out[size - 1]! & 0x80) return fail('DLT645_VALUE_RANGE', `${value} does not fit in ${size} signed BCD bytes`);
    if (negative) out[size - 1]! |= 0x80;
  }
  return ok(out);
}

/** True when every byte is FF: the meter's way of saying "not supported / no value" (DL/T 645-2007 §3.1 blocks). */
export function isNotAvailable(bytes: Uint8Array): boolean {
  if (bytes.length === 0) return false;
  for (const b of bytes) if (b !== 0xff) return false;
  return true;
}
