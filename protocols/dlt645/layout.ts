import { decodeValue, encodeDigits, encodeNumber, formatSize, parseFormatNotation, type ValueFormat } from './formats.js';
import { fail, ok, type Result } from './result.js';

/** One field of a vendor write payload, as a device profile declares it: `{ field: amount, format: XXXXXX.XX }`. */
export interface LayoutField {
  readonly field: string;
  /** DL/T 645 notation (NNNN, XXXXXX.XX, digits(6)) or `uint32le`, a binary little-endian integer as 0x03 loads use. */
  readonly format: string;
}

type FieldCodec = { kind: 'uint32le' } | { kind: 'dlt645'; format: ValueFormat };

function codecOf(format: string): FieldCodec | undefined {
  if (format === 'uint32le') return { kind: 'uint32le' };
  const f = parseFormatNotation(format);
  return f && formatSize(f) !== undefined ? { kind: 'dlt645', format: f } : undefined;
}

/** Byte size of a layout, or an error naming the field whose format is unknown. */
export function layoutSize(fields: readonly LayoutField[]): Result<number> {
  let n = 0;
  for (const f of fields) {
    const c = codecOf(f.format);
    if (!c) return fail('DLT645_BAD_LAYOUT', `field ${f.field}: unknown format "${f.format}"`);
    n += c.kind === 'uint32le' ? 4 : formatSize(c.format)!;
  }
  return ok(n);
}

/**
 * Encode a vendor write payload field by field, low byte first (DL/T 645-2007 §7.4). Numbers are given as scaled
 * integers (fen, 0.01 kWh, counts) so nothing passes through a float; digit fields take their digits as text.
 */
export function encodeLayout(fields: readonly LayoutField[], values: Readonly<Record<string, number | string>>): Result<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    const c = codecOf(f.format);
    if (!c) return fail('DLT645_BAD_LAYOUT', `field ${f.field}: unknown format "${f.format}"`);
    const v = values[f.field] ?? 0;
    if (c.kind === 'uint32le') {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > 0xffffffff)
        return fail('DLT645_VALUE_RANGE', `field ${f.field}: ${v} is not a 32-bit unsigned integer`);
      parts.push(Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff));
      continue;
    }
    const fmt = c.format;
    const r =
      fmt.kind === 'bcd'
        ? encodeNumber(fmt, Number(v) / 10 ** fmt.decimals)
        : fmt.kind === 'digits'
          ? encodeDigits(String(v), fmt.bytes)
          : fail('DLT645_BAD_LAYOUT', `field ${f.field}: format ${f.format} cannot carry a value`);
    if (!r.ok) return fail(r.error.code, `field ${f.field}: ${r.error.message}`);
    parts.push(r.value);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return ok(out);
}

/** Decode a vendor write payload back into its fields (numbers as scaled integers, digits as text). */
export function decodeLayout(fields: readonly LayoutField[], bytes: Uint8Array): Result<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  let o = 0;
  for (const f of fields) {
    const c = codecOf(f.format);
    if (!c) return fail('DLT645_BAD_LAYOUT', `field ${f.field}: unknown format "${f.format}"`);
    const size = c.kind === 'uint32le' ? 4 : formatSize(c.format)!;
    if (o + size > bytes.length)
      return fail('DLT645_SHORT_DATA', `field ${f.field} needs ${size} bytes at offset ${o}; the payload has ${bytes.length}`);
    const b = bytes.subarray(o, o + size);
    o += size;
    if (c.kind === 'uint32le') {
      out[f.field] = (b[0]! | (b[1]! << 8) | (b[2]! << 16)) + b[3]! * 0x1000000;
      continue;
    }
    const v = decodeValue(c.format, b);
    if (!v.ok) return fail(v.error.code, `field ${f.field}: ${v.error.message}`);
    if (v.value.kind === 'number') out[f.field] = v.value.scaled;
    else if (v.value.kind === 'text') out[f.field] = v.value.value;
    else return fail('DLT645_BAD_LAYOUT', `field ${f.field}: format ${f.format} is not a number or digits`);
  }
  if (o !== bytes.length) return fail('DLT645_SHORT_DATA', `the payload has ${bytes.length - o} bytes after the last field`);
  return ok(out);
}
