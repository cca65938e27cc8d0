import { fail, ok, toHex, type Result } from './result.js';

/**
 * Card memory layouts as data (docs/reference/cards.md § What a user card carries, § Write order): fields at fixed offsets, areas with
 * a one-byte checksum, a backup copy of the purchase area, and a valid flag written last. Pure: bytes in, values out.
 */

/**
 * - `bcd`: packed decimal, two digits a byte, most significant first (meter numbers as printed: 000012345678).
 * - `uint-be` / `uint-le`: binary integer, big- or little-endian, 1–6 bytes; `signed` for two's complement.
 * - `ascii`: text, padded with 00H.
 * - `datetime`: 6 BCD bytes YYMMDDhhmmss, meter local time; all 00H or all FFH means "never set".
 * - `flag`: one byte, `set` when equal to the field's set value.
 */
export type FieldFormat = 'bcd' | 'uint-be' | 'uint-le' | 'ascii' | 'datetime' | 'flag';

export interface LayoutField {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
  readonly format: FieldFormat;
  readonly signed?: boolean;
  /** `flag` only: the byte meaning "set". */
  readonly set?: number;
}

/** `sum8`: the sum of the bytes modulo 256. `xor8`: the XOR of the bytes. */
export type ChecksumKind = 'sum8' | 'xor8';

export interface LayoutArea {
  readonly name: string;
  /** First and last data byte (inclusive); the checksum byte is not in this range. */
  readonly from: number;
  readonly to: number;
  readonly checksum: { readonly kind: ChecksumKind; readonly at: number };
  /** Where a copy of from..to and the checksum byte is kept, if anywhere. */
  readonly backupAt?: number;
}

/** A layout's bytes as the codec needs them; the profile loader adds roles, units and names on top. */
export interface RecordLayout {
  readonly size: number;
  readonly fields: ReadonlyMap<string, LayoutField>;
  readonly areas: readonly LayoutArea[];
  /** The byte that marks the whole record valid: written last, cleared first. */
  readonly valid: { readonly at: number; readonly set: number; readonly clear: number };
}

export type FieldValue = string | number | boolean | null;

export interface AreaCheck {
  readonly checksumOk: boolean;
  /** Every byte (checksum included) is 00H or every byte is FFH: never written. */
  readonly blank: boolean;
  /** Only for an area with a backup: the backup equals the area byte for byte. */
  readonly backupMatches?: boolean;
  /** Only for an area with a backup: the backup's own checksum holds. */
  readonly backupChecksumOk?: boolean;
}

/** Everything a record says, decoded without judgement; workflows decide what is acceptable. */
export interface RecordImage {
  readonly values: Readonly<Record<string, FieldValue>>;
  /** Fields whose bytes are not valid for their format (a nibble above 9 in BCD…), with why. */
  readonly fieldErrors: Readonly<Record<string, string>>;
  readonly areas: Readonly<Record<string, AreaCheck>>;
  readonly validFlag: boolean;
}

/** Card layout checksum over bytes: sum8 (sum modulo 256) or xor8 (XOR of all bytes). */
export function layoutChecksum(kind: ChecksumKind, bytes: Uint8Array): number {
  let x = 0;
  if (kind === 'sum8') for (const b of bytes) x = (x + b) & 0xff;
  else for (const b of bytes) x ^= b;
  return x;
}

/** The byte range a record occupies, from the lowest to the highest byte any field, area, backup or flag uses. */
export function recordSpan(layout: RecordLayout): { from: number; to: number } {
  let from = layout.valid.at;
  let to = layout.valid.at;
  for (const a of layout.areas) {
    from = Math.min(from, a.from, a.checksum.at);
    to = Math.max(to, a.to, a.checksum.at);
    if (a.backupAt !== undefined) to = Math.max(to, a.backupAt + areaLength(a) - 1);
  }
  for (const f of layout.fields.values()) {
    from = Math.min(from, f.offset);
    to = Math.max(to, f.offset + f.length - 1);
  }
  return { from, to };
}

/** Bytes an area's backup copy occupies: the data bytes, then a copy of the checksum byte. */
export function areaLength(area: LayoutArea): number {
  return area.to - area.from + 2;
}

/** Card layout field: bytes → value. Never throws; a bad byte pattern is an error value. */
export function decodeField(field: LayoutField, bytes: Uint8Array): Result<FieldValue> {
  if (bytes.length !== field.length) return fail('FIELD_VALUE', `${field.name}: expected ${field.length} bytes, got ${bytes.length}`);
  switch (field.format) {
    case 'bcd': {
      let digits = '';
      for (const b of bytes) {
        if (b >> 4 > 9 || (b & 0x0f) > 9) return fail('FIELD_VALUE', `${field.name}: ${toHex(bytes)} is not BCD`);
        digits += (b >> 4).toString() + (b & 0x0f).toString();
      }
      return ok(digits);
    }
    case 'uint-be':
    case 'uint-le': {
      let n = 0;
      for (let i = 0; i < bytes.length; i++) {
        const b = field.format === 'uint-be' ? bytes[i]! : bytes[bytes.length - 1 - i]!;
        n = n * 256 + b;
      }
      if (field.signed && n >= 2 ** (8 * bytes.length - 1)) n -= 2 ** (8 * bytes.length);
      return ok(n);
    }
    case 'ascii': {
      let end = bytes.length;
      while (end > 0 && bytes[end - 1] === 0) end--;
      let s = '';
      for (let i = 0; i < end; i++) {
        const b = bytes[i]!;
        if (b < 0x20 || b > 0x7e) return fail('FIELD_VALUE', `${field.name}: ${toHex(bytes)} is not printable ASCII`);
        s += String.fromCharCode(b);
      }
      return ok(s);
    }
    case 'datetime': {
      if (bytes.every((b) => b === 0) || bytes.every((b) => b === 0xff)) return ok(null);
      const d = decodeField({ ...field, format: 'bcd' }, bytes);
      if (!d.ok) return d;
      const t = d.value as string;
      const [mo, dd, hh, mi, ss] = [2, 4, 6, 8, 10].map((i) => Number(t.slice(i, i + 2))) as [number, number, number, number, number];
      if (mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh > 23 || mi > 59 || ss > 59)
        return fail('FIELD_VALUE', `${field.name}: ${t} is not a time YYMMDDhhmmss`);
      return ok(`20${t.slice(0, 2)}-${t.slice(2, 4)}-${t.slice(4, 6)}T${t.slice(6, 8)}:${t.slice(8, 10)}:${t.slice(10, 12)}`);
    }
    case 'flag':
      return ok(bytes[0] === (field.set ?? 0x01));
  }
}

/** Card layout field: value → bytes, or why the value does not fit. */
export function encodeField(field: LayoutField, value: FieldValue): Result<Uint8Array> {
  const out = new Uint8Array(field.length);
  const bad = (why: string) => fail('FIELD_VALUE', `${field.name}: ${why}`);
  switch (field.format) {
    case 'bcd': {
      const text = typeof value === 'number' ? String(value) : value;
      if (typeof text !== 'string' || !/^\d+$/.test(text)) return bad(`${String(value)} is not a decimal number`);
      if (text.length > field.length * 2) return bad(`${text} has more than ${field.length * 2} digits`);
      const digits = text.padStart(field.length * 2, '0');
      for (let i = 0; i < field.length; i++) out[i] = (Number(digits[2 * i]) << 4) | Number(digits[2 * i + 1]);
      return ok(out);
    }
    case 'uint-be':
    case 'uint-le': {
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return bad(`${String(value)} is not a whole number`);
      const bits = 8 * field.length;
      const min = field.signed ? -(2 ** (bits - 1)) : 0;
      const max = field.signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      if (value < min || value > max) return bad(`${value} is outside ${min}…${max}`);
      let n = value < 0 ? value + 2 ** bits : value;
      for (let i = 0; i < field.length; i++) {
        const b = n % 256;
        n = Math.floor(n / 256);
        out[field.format === 'uint-le' ? i : field.length - 1 - i] = b;
      }
      return ok(out);
    }
    case 'ascii': {
      if (typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value)) return bad(`${String(value)} is not printable ASCII text`);
      if (value.length > field.length) return bad(`"${value}" is longer than ${field.length} characters`);
      for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i);
      return ok(out);
    }
    case 'datetime': {
      if (value === null) return ok(out);
      const m = typeof value === 'string' ? /^20(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)$/.exec(value) : null;
      if (!m) return bad(`${String(value)} is not a time 20YY-MM-DDThh:mm:ss`);
      return encodeField({ ...field, format: 'bcd' }, m.slice(1).join(''));
    }
    case 'flag':
      if (typeof value !== 'boolean') return bad(`${String(value)} is not true or false`);
      out[0] = value ? (field.set ?? 0x01) : 0x00;
      return ok(out);
  }
}

/**
 * Card layout record: decode every field, check every area's checksum and backup, read the valid flag.
 * `memory` is the card's main memory from address 0 (at least up to the record's last byte). Never throws.
 */
export function readRecord(layout: RecordLayout, memory: Uint8Array): Result<RecordImage> {
  const span = recordSpan(layout);
  if (memory.length <= span.to)
    return fail('OUT_OF_MEMORY', `the record reaches byte ${span.to}, the memory given has ${memory.length} bytes`);
  const values: Record<string, FieldValue> = {};
  const fieldErrors: Record<string, string> = {};
  for (const f of layout.fields.values()) {
    const r = decodeField(f, memory.subarray(f.offset, f.offset + f.length));
    if (r.ok) values[f.name] = r.value;
    else fieldErrors[f.name] = r.error.message;
  }
  const areas: Record<string, AreaCheck> = {};
  for (const a of layout.areas) {
    const bytes = memory.subarray(a.from, a.to + 1);
    const sum = memory[a.checksum.at]!;
    const all = [...bytes, sum];
    const check: { -readonly [K in keyof AreaCheck]: AreaCheck[K] } = {
      checksumOk: layoutChecksum(a.checksum.kind, bytes) === sum,
      blank: all.every((b) => b === 0) || all.every((b) => b === 0xff),
    };
    if (a.backupAt !== undefined) {
      const len = a.to - a.from + 1;
      const copy = memory.subarray(a.backupAt, a.backupAt + len);
      const copySum = memory[a.backupAt + len]!;
      check.backupMatches = copy.every((b, i) => b === bytes[i]) && copySum === sum;
      check.backupChecksumOk = layoutChecksum(a.checksum.kind, copy) === copySum;
    }
    areas[a.name] = check;
  }
  return ok({ values, fieldErrors, areas, validFlag: memory[layout.valid.at] === layout.valid.set });
}

/**
 * Card layout area: the bytes from `area.from` to `area.to`, then the checksum byte, with `values` written over
 * `current` (so reserved bytes keep what the card holds). Fields of other areas in `values` are an error.
 */
export function encodeArea(
  layout: RecordLayout,
  areaName: string,
  current: Uint8Array,
  values: Readonly<Record<string, FieldValue>>,
): Result<{ data: Uint8Array; checksum: number }> {
  const area = layout.areas.find((a) => a.name === areaName);
  if (!area) return fail('FIELD_VALUE', `the layout has no area "${areaName}"`);
  if (current.length <= area.to)
    return fail('OUT_OF_MEMORY', `area ${areaName} reaches byte ${area.to}, the memory given has ${current.length} bytes`);
  const data = current.slice(area.from, area.to + 1);
  for (const [name, value] of Object.entries(values)) {
    const f = layout.fields.get(name);
    if (!f) return fail('FIELD_VALUE', `the layout has no field "${name}"`);
    if (f.offset < area.from || f.offset + f.length - 1 > area.to) return fail('FIELD_VALUE', `field ${name} is not in area ${areaName}`);
    const bytes = encodeField(f, value);
    if (!bytes.ok) return bytes;
    data.set(bytes.value, f.offset - area.from);
  }
  return ok({ data, checksum: layoutChecksum(area.checksum.kind, data) });
}
