import {
  encodeAscii,
  encodeDigits,
  encodeNumber,
  encodeTime,
  encodeWord,
  findDataItem,
  findDataItemByPoint,
  formatSize,
  fromHex,
  isValidDi,
  type DataItem,
  type Edition,
  type MeterTime,
  type Result,
  type ValueFormat,
} from '../../../protocols/dlt645/index.js';

/** A register value as a spec writes it: a number in the item's unit, or text (digits, ASCII, a time, or hex bytes). */
export type RegisterValue = number | string;

/** A spec key to its identifier: a DI in the edition's notation (8 or 4 hex digits) or a canonical point name. */
export function resolveIdentifier(key: string, edition: Edition): string | undefined {
  if (isValidDi(key, edition)) return key.toUpperCase();
  return findDataItemByPoint(key, edition)?.di;
}

/**
 * Encode a spec value with the item's format. Identifiers the codec does not know take a hex string: the value bytes
 * in wire order (low byte first, before +33H), which is also how a record or block is given.
 */
export function encodeRegisterValue(di: string, value: RegisterValue, edition: Edition): Result<Uint8Array> {
  const item = findDataItem(di, edition);
  const format: ValueFormat = item?.format ?? { kind: 'raw' };
  const r = encodeByFormat(format, value, item);
  if (!r.ok) return r;
  const size = formatSize(format);
  if (size !== undefined && r.value.length !== size) {
    return fail(`${di}: ${r.value.length} bytes given, the item is ${size} bytes`);
  }
  return r;
}

function encodeByFormat(format: ValueFormat, value: RegisterValue, item: DataItem | undefined): Result<Uint8Array> {
  const what = item ? `${item.di} (${item.name})` : 'identifier';
  if (typeof value === 'number') {
    if (format.kind === 'bcd') {
      const r = encodeNumber(format, value);
      return r.ok ? r : fail(`${what}: ${r.error.message}`);
    }
    if (format.kind === 'word') {
      if (!Number.isInteger(value) || value < 0 || value >= 256 ** format.bytes)
        return fail(`${what}: ${value} is not a ${format.bytes}-byte word`);
      return { ok: true, value: encodeWord(value, format.bytes) };
    }
    if (format.kind === 'digits') return digits(String(value), format.bytes, what);
    return fail(`${what} is not a number item: give its bytes as a hex string, low byte first`);
  }
  switch (format.kind) {
    case 'digits':
      return digits(value, format.bytes, what);
    case 'ascii':
      return { ok: true, value: encodeAscii(value, format.bytes) };
    case 'time': {
      const t = parseTimeText(value);
      if (!t) return fail(`${what}: "${value}" is not a time such as 2026-11-27T08:30:00, 2026-11-27 or 08:30:00`);
      return { ok: true, value: encodeTime(format.layout, t) };
    }
    case 'bcd':
    case 'word': {
      const n = Number(value);
      if (value.trim() !== '' && Number.isFinite(n)) return encodeByFormat(format, n, item);
      return fail(`${what}: "${value}" is not a number`);
    }
    default: {
      const bytes = fromHex(value);
      return bytes ? { ok: true, value: bytes } : fail(`${what}: "${value}" is not hex bytes (low byte first)`);
    }
  }
}

function digits(text: string, bytes: number, what: string): Result<Uint8Array> {
  const r = encodeDigits(text, bytes);
  return r.ok ? r : fail(`${what}: ${r.error.message}`);
}

/** Parse `YYYY-MM-DD[Thh:mm[:ss]]` or `hh:mm[:ss]`; the weekday follows from the date. */
export function parseTimeText(text: string): MeterTime | undefined {
  const m = /^(?:(\d{4})-(\d{2})-(\d{2}))?(?:[T ]?(\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim());
  if (!m || (m[1] === undefined && m[4] === undefined)) return undefined;
  const year = Number(m[1] ?? 2000);
  const month = Number(m[2] ?? 1);
  const day = Number(m[3] ?? 1);
  const t = { year, month, day, hour: Number(m[4] ?? 0), minute: Number(m[5] ?? 0), second: Number(m[6] ?? 0) };
  if (month < 1 || month > 12 || day < 1 || day > 31 || t.hour > 23 || t.minute > 59 || t.second > 59) return undefined;
  return { ...t, weekday: new Date(year, month - 1, day).getDay() };
}

/**
 * What a meter answers for a supported item nobody has set: zero for numbers and words, NUL text, and all-FF
 * ("not available") for times, since a zero date is not a date. Undefined for items sized by the length byte.
 */
export function defaultBytes(format: ValueFormat): Uint8Array | undefined {
  const size = formatSize(format);
  if (size === undefined) return undefined;
  if (format.kind === 'time') return new Uint8Array(size).fill(0xff);
  if (format.kind !== 'record') return new Uint8Array(size);
  // A record such as max demand (value + time) gets each field's own default, so its time reads as "not available".
  const out = new Uint8Array(size);
  let p = 0;
  for (const f of format.fields) {
    const part = defaultBytes(f.format) ?? new Uint8Array(0);
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/**
 * Block identifiers stand for a group of items: in 2007 an FF byte (0201FF00 = voltages A-C, 040005FF = status words
 * 1-7), in 1997 a final F nibble (901F = forward energy total and tariffs).
 */
export function isBlockIdentifier(di: string, edition: Edition): boolean {
  if (edition === '1997') return di.length === 4 && di[3] === 'F';
  for (let i = 0; i < 8; i += 2) if (di.slice(i, i + 2) === 'FF') return true;
  return false;
}

/** The identifiers among `candidates` that a block covers, in ascending order (the order meters concatenate them). */
export function blockMembers(block: string, candidates: Iterable<string>, edition: Edition): string[] {
  const out: string[] = [];
  for (const di of candidates) {
    if (di.length !== block.length || isBlockIdentifier(di, edition)) continue;
    if (covers(block, di, edition)) out.push(di);
  }
  return out.sort();
}

function covers(block: string, di: string, edition: Edition): boolean {
  if (edition === '1997') return di.slice(0, 3) === block.slice(0, 3);
  for (let i = 0; i < 8; i += 2) {
    const b = block.slice(i, i + 2);
    if (b !== 'FF' && b !== di.slice(i, i + 2)) return false;
  }
  return true;
}

function fail(message: string): { ok: false; error: { code: string; message: string } } {
  return { ok: false, error: { code: 'SIM_REGISTER_VALUE', message } };
}
