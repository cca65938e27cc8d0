import { decodeValue, encodeBcdInteger, encodeDigits, encodeWord, formatSize, type ValueFormat } from '../../../protocols/dlt645/index.js';

/** A number in an item's format, rounded to its decimals; FF…FF ("not available") when it does not fit. */
export function numberBytes(format: ValueFormat, value: number): Uint8Array {
  if (format.kind === 'word') return encodeWord(Math.max(0, Math.round(value)), format.bytes);
  if (format.kind !== 'bcd') return new Uint8Array(formatSize(format) ?? 0).fill(0xff);
  const signed = format.signed ?? false;
  const scaled = Math.round((signed ? value : Math.abs(value)) * 10 ** format.decimals);
  const r = encodeBcdInteger(scaled, format.bytes, signed);
  return r.ok ? r.value : new Uint8Array(format.bytes).fill(0xff);
}

/** The number an item's bytes hold, or undefined when they are not a number of that format. */
export function numberOf(format: ValueFormat, bytes: Uint8Array): number | undefined {
  const v = decodeValue(format, bytes);
  if (!v.ok) return undefined;
  return v.value.kind === 'number' || v.value.kind === 'word' ? v.value.value : undefined;
}

/** Unsigned BCD of a scaled integer (e.g. fen with 2 decimals), low byte first. */
export function bcd(scaled: number, bytes: number): Uint8Array {
  const r = encodeBcdInteger(Math.max(0, Math.round(scaled)), bytes, false);
  return r.ok ? r.value : new Uint8Array(bytes).fill(0xff);
}

export function encodeDigitsOrFf(digits: string, bytes: number): Uint8Array {
  const r = encodeDigits(digits, bytes);
  return r.ok ? r.value : new Uint8Array(bytes).fill(0xff);
}

export function hex2(n: number): string {
  return n.toString(16).padStart(2, '0').toUpperCase();
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
