import { bcdByteToNumber, decodeBcdInteger, encodeBcdInteger, isNotAvailable, numberToBcdByte } from './bcd.js';
import { fail, ok, toHex, type Result } from './result.js';

/** Date/time layouts as the standard writes them (most significant field first); on the wire they go reversed (DL/T 645-2007 §7.4). */
export type TimeLayout = 'YYMMDDhhmmss' | 'YYMMDDhhmm' | 'YYMMDDWW' | 'hhmmss' | 'YYMMDDWWhhmmss' | 'MMDDhhmm' | 'hhmm' | 'DDhh';

/** How the bytes of one data item are laid out (DL/T 645-2007 Appendix A, "数据格式" column). */
export type ValueFormat =
  /** BCD number, e.g. XXXXXX.XX = 4 bytes, 2 decimals; `signed` puts the sign in bit 7 of the most significant byte. */
  | { readonly kind: 'bcd'; readonly bytes: number; readonly decimals: number; readonly signed?: boolean }
  /** A bit field such as a status word: unsigned integer, low byte first. */
  | { readonly kind: 'word'; readonly bytes: number }
  | { readonly kind: 'time'; readonly layout: TimeLayout }
  /** Decimal digits kept as text (addresses, meter and customer numbers: leading zeros matter). */
  | { readonly kind: 'digits'; readonly bytes: number }
  /** ASCII text, sent reversed and NUL-padded at the high end. */
  | { readonly kind: 'ascii'; readonly bytes: number }
  /** Fixed fields one after the other (a record). */
  | { readonly kind: 'record'; readonly fields: readonly { readonly name: string; readonly format: ValueFormat; readonly unit?: string }[] }
  /** The same item repeated; the count comes from the length byte (blocks such as 0001FF00 or 0201FF00). */
  | { readonly kind: 'repeat'; readonly item: ValueFormat }
  | { readonly kind: 'raw' };

/** A decoded data item. Numbers keep their exact scaled integer so money and energy never go through floats. */
export type DataValue =
  | { readonly kind: 'number'; readonly value: number; readonly scaled: number; readonly decimals: number }
  | { readonly kind: 'unavailable' }
  | { readonly kind: 'text'; readonly value: string }
  | { readonly kind: 'time'; readonly value: string; readonly weekday?: number }
  | { readonly kind: 'word'; readonly value: number }
  | { readonly kind: 'list'; readonly items: readonly DataValue[] }
  | { readonly kind: 'record'; readonly fields: Readonly<Record<string, DataValue>> }
  | { readonly kind: 'raw'; readonly hex: string };

/** The broken-down time a meter keeps (its own local time; the standard has no zone). */
export interface MeterTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  /** 0 = Sunday, as in YYMMDDWW (DL/T 645-2007 Appendix A, 04000101). */
  readonly weekday?: number;
}

/** Byte size of a fixed-size format; undefined for formats sized by the frame's length byte. */
export function formatSize(format: ValueFormat): number | undefined {
  switch (format.kind) {
    case 'bcd':
    case 'word':
    case 'digits':
    case 'ascii':
      return format.bytes;
    case 'time':
      return format.layout.length / 2;
    case 'record': {
      let n = 0;
      for (const f of format.fields) {
        const s = formatSize(f.format);
        if (s === undefined) return undefined;
        n += s;
      }
      return n;
    }
    case 'repeat':
    case 'raw':
      return undefined;
  }
}

/**
 * Parse the notation used in the standard's tables and in device profiles: `XXXXXX.XX`, `NNNN`, `YYMMDDhhmmss`,
 * `word(2)`, `digits(6)`, `ascii(32)`, `raw`. Returns undefined when the text is not a known notation.
 */
export function parseFormatNotation(text: string, signed = false): ValueFormat | undefined {
  const t = text.trim();
  const num = /^([XN]+)(?:\.([XN]+))?$/.exec(t);
  if (num) {
    const digits = num[1]!.length + (num[2]?.length ?? 0);
    if (digits % 2 !== 0) return undefined;
    return { kind: 'bcd', bytes: digits / 2, decimals: num[2]?.length ?? 0, signed };
  }
  if (isTimeLayout(t)) return { kind: 'time', layout: t };
  const sized = /^(word|digits|ascii)\((\d{1,3})\)$/.exec(t);
  if (sized) {
    const bytes = Number(sized[2]);
    if (bytes < 1 || bytes > 255) return undefined;
    return { kind: sized[1] as 'word' | 'digits' | 'ascii', bytes };
  }
  if (t === 'raw') return { kind: 'raw' };
  return undefined;
}

const TIME_LAYOUTS: readonly TimeLayout[] = [
  'YYMMDDhhmmss',
  'YYMMDDhhmm',
  'YYMMDDWW',
  'hhmmss',
  'YYMMDDWWhhmmss',
  'MMDDhhmm',
  'hhmm',
  'DDhh',
];
function isTimeLayout(t: string): t is TimeLayout {
  return (TIME_LAYOUTS as readonly string[]).includes(t);
}

/** Decode the bytes of one item (already −33H, low byte first) by its format (DL/T 645-2007 Appendix A). */
export function decodeValue(format: ValueFormat, bytes: Uint8Array): Result<DataValue> {
  switch (format.kind) {
    case 'bcd': {
      if (bytes.length === 0) return fail('DLT645_SHORT_DATA', 'no data bytes for a number');
      if (isNotAvailable(bytes)) return ok({ kind: 'unavailable' });
      // Sized by the length byte, not the table: meters disagree on some widths (docs/reference/dlt645.md § Where sources disagree).
      const r = decodeBcdInteger(bytes, format.signed ?? false);
      if (!r.ok) return r;
      return ok({ kind: 'number', value: scale(r.value, format.decimals), scaled: r.value, decimals: format.decimals });
    }
    case 'word': {
      if (bytes.length === 0) return fail('DLT645_SHORT_DATA', 'no data bytes for a status word');
      if (isNotAvailable(bytes)) return ok({ kind: 'unavailable' });
      let v = 0;
      for (let i = bytes.length - 1; i >= 0; i--) v = v * 256 + bytes[i]!;
      return ok({ kind: 'word', value: v });
    }
    case 'digits': {
      if (isNotAvailable(bytes)) return ok({ kind: 'unavailable' });
      let s = '';
      for (let i = bytes.length - 1; i >= 0; i--) {
        const d = bcdByteToNumber(bytes[i]!);
        if (d === undefined) return fail('DLT645_NOT_BCD', `byte ${toHex([bytes[i]!])} at offset ${i} is not BCD`);
        s += d.toString().padStart(2, '0');
      }
      return ok({ kind: 'text', value: s });
    }
    case 'ascii': {
      let s = '';
      for (let i = bytes.length - 1; i >= 0; i--) {
        const b = bytes[i]!;
        if (b === 0x00 || b === 0xff) continue;
        s += String.fromCharCode(b);
      }
      return ok({ kind: 'text', value: s.trim() });
    }
    case 'time':
      return decodeTime(format.layout, bytes);
    case 'record': {
      const fields: Record<string, DataValue> = {};
      let p = 0;
      for (const f of format.fields) {
        const size = formatSize(f.format) ?? bytes.length - p;
        if (p + size > bytes.length) {
          return fail('DLT645_SHORT_DATA', `record field ${f.name} needs ${size} bytes at offset ${p}, only ${bytes.length - p} left`);
        }
        const r = decodeValue(f.format, bytes.subarray(p, p + size));
        if (!r.ok) return fail(r.error.code, `${f.name}: ${r.error.message}`);
        fields[f.name] = r.value;
        p += size;
      }
      return ok({ kind: 'record', fields });
    }
    case 'repeat': {
      const size = formatSize(format.item);
      if (size === undefined || size === 0) return ok({ kind: 'raw', hex: toHex(bytes) });
      if (bytes.length % size !== 0) {
        return fail('DLT645_SHORT_DATA', `block of ${bytes.length} bytes is not a whole number of ${size}-byte items`);
      }
      const items: DataValue[] = [];
      for (let p = 0; p < bytes.length; p += size) {
        const r = decodeValue(format.item, bytes.subarray(p, p + size));
        if (!r.ok) return fail(r.error.code, `item ${p / size}: ${r.error.message}`);
        items.push(r.value);
      }
      return ok({ kind: 'list', items });
    }
    case 'raw':
      return ok({ kind: 'raw', hex: toHex(bytes) });
  }
}

function scale(scaled: number, decimals: number): number {
  // Division by an exact power of ten gives the nearest double to the decimal (e.g. 12345678 / 100 = 123456.78).
  return decimals === 0 ? scaled : scaled / 10 ** decimals;
}

function decodeTime(layout: TimeLayout, bytes: Uint8Array): Result<DataValue> {
  const size = layout.length / 2;
  if (bytes.length !== size) return fail('DLT645_SHORT_DATA', `${layout} needs ${size} bytes, got ${bytes.length}`);
  if (isNotAvailable(bytes)) return ok({ kind: 'unavailable' });
  const fields: Record<string, number> = {};
  for (let k = 0; k < size; k++) {
    const name = layout.slice(k * 2, k * 2 + 2);
    const b = bytes[size - 1 - k]!;
    const v = bcdByteToNumber(b);
    if (v === undefined) return fail('DLT645_BAD_TIME', `${layout}: field ${name} byte ${toHex([b])} is not BCD`);
    fields[name] = v;
  }
  const { YY, MM, DD, WW, hh, mm, ss } = fields;
  if (MM !== undefined && (MM < 1 || MM > 12)) return fail('DLT645_BAD_TIME', `${layout}: month ${MM} out of range`);
  if (DD !== undefined && (DD < 1 || DD > 31)) return fail('DLT645_BAD_TIME', `${layout}: day ${DD} out of range`);
  if (hh !== undefined && hh > 23) return fail('DLT645_BAD_TIME', `${layout}: hour ${hh} out of range`);
  if (mm !== undefined && mm > 59) return fail('DLT645_BAD_TIME', `${layout}: minute ${mm} out of range`);
  if (ss !== undefined && ss > 59) return fail('DLT645_BAD_TIME', `${layout}: second ${ss} out of range`);
  if (WW !== undefined && WW > 6) return fail('DLT645_BAD_TIME', `${layout}: weekday ${WW} out of range`);
  const p2 = (n: number) => n.toString().padStart(2, '0');
  const datePart =
    YY !== undefined
      ? `20${p2(YY)}-${p2(MM ?? 1)}-${p2(DD ?? 1)}`
      : MM !== undefined
        ? `--${p2(MM)}-${p2(DD ?? 1)}`
        : DD !== undefined
          ? `---${p2(DD)}`
          : '';
  const timePart = hh !== undefined ? `${p2(hh)}:${p2(mm ?? 0)}${ss !== undefined ? `:${p2(ss)}` : ''}` : '';
  const value = datePart && timePart ? `${datePart}T${timePart}` : datePart || timePart;
  return ok(WW !== undefined ? { kind: 'time', value, weekday: WW } : { kind: 'time', value });
}

/** Encode a number into a BCD format, refusing values that need rounding (money and energy must be exact). */
export function encodeNumber(format: Extract<ValueFormat, { kind: 'bcd' }>, value: number): Result<Uint8Array> {
  const scaled = Math.round(value * 10 ** format.decimals);
  if (Math.abs(scaled - value * 10 ** format.decimals) > 1e-6) {
    return fail('DLT645_VALUE_RANGE', `${value} has more than ${format.decimals} decimals`);
  }
  return encodeBcdInteger(scaled, format.bytes, format.signed ?? false);
}

/** Encode a meter time by layout; fields go on the wire least significant first (ss mm hh DD MM YY). */
export function encodeTime(layout: TimeLayout, t: MeterTime): Uint8Array {
  const size = layout.length / 2;
  const out = new Uint8Array(size);
  for (let k = 0; k < size; k++) {
    const name = layout.slice(k * 2, k * 2 + 2);
    const v =
      name === 'YY'
        ? t.year % 100
        : name === 'MM'
          ? t.month
          : name === 'DD'
            ? t.day
            : name === 'hh'
              ? t.hour
              : name === 'mm'
                ? t.minute
                : name === 'ss'
                  ? t.second
                  : (t.weekday ?? 0);
    out[size - 1 - k] = numberToBcdByte(v);
  }
  return out;
}

/**
 * Decode a date/time field into its broken-down parts, the inverse of {@link encodeTime}. Fields the layout lacks
 * are left out (a time-only `hhmmss` has no year); a two-digit year is taken as 20YY. Rejects non-BCD bytes,
 * out-of-range fields and the all-FF "not available" value, since a command carrying a time needs a real one.
 */
export function decodeMeterTime(layout: TimeLayout, bytes: Uint8Array): Result<Partial<MeterTime>> {
  const r = decodeTime(layout, bytes);
  if (!r.ok) return r;
  if (r.value.kind !== 'time') return fail('DLT645_BAD_TIME', `${layout}: the meter sent "not available" (all FF)`);
  const size = layout.length / 2;
  const out: { -readonly [K in keyof MeterTime]?: MeterTime[K] } = {};
  for (let k = 0; k < size; k++) {
    const v = bcdByteToNumber(bytes[size - 1 - k]!)!;
    const name = layout.slice(k * 2, k * 2 + 2);
    if (name === 'YY') out.year = 2000 + v;
    else if (name === 'MM') out.month = v;
    else if (name === 'DD') out.day = v;
    else if (name === 'WW') out.weekday = v;
    else if (name === 'hh') out.hour = v;
    else if (name === 'mm') out.minute = v;
    else if (name === 'ss') out.second = v;
  }
  return ok(out);
}

/** Meter time from a JS Date in the local zone of this process (the gateway's zone is set by its config). */
export function meterTimeOf(d: Date): MeterTime {
  return {
    year: d.getFullYear(),
    month: d.getMonth() + 1,
    day: d.getDate(),
    hour: d.getHours(),
    minute: d.getMinutes(),
    second: d.getSeconds(),
    weekday: d.getDay(),
  };
}

/** Encode a decimal digit string (addresses, meter numbers) as BCD, low byte first. */
export function encodeDigits(digits: string, bytes: number): Result<Uint8Array> {
  if (!/^\d*$/.test(digits) || digits.length > bytes * 2)
    return fail('DLT645_VALUE_RANGE', `"${digits}" is not up to ${bytes * 2} decimal digits`);
  const padded = digits.padStart(bytes * 2, '0');
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = parseInt(padded.slice(padded.length - 2 - 2 * i, padded.length - 2 * i), 16);
  return ok(out);
}

/** Encode ASCII text the way meters send it: first character in the last byte, NUL padding in the first bytes (V34). */
export function encodeAscii(text: string, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const chars = text.slice(0, bytes);
  for (let i = 0; i < chars.length; i++) out[bytes - 1 - i] = chars.charCodeAt(i) & 0x7f;
  return out;
}

/** Encode an unsigned word (status words), low byte first. */
export function encodeWord(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = value;
  for (let i = 0; i < bytes; i++) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

/** The plain JSON value of a decoded item: number, string, null for "not available", arrays and objects for blocks. */
export function plainValue(v: DataValue): unknown {
  switch (v.kind) {
    case 'number':
    case 'text':
    case 'time':
    case 'word':
      return v.value;
    case 'unavailable':
      return null;
    case 'list':
      return v.items.map(plainValue);
    case 'record':
      return Object.fromEntries(Object.entries(v.fields).map(([k, f]) => [k, plainValue(f)]));
    case 'raw':
      return v.hex;
  }
}
