import { ok, type Parsed, refused } from './result.js';

/** Modbus unit (slave) ids: 0 is broadcast and 248 to 255 are reserved (Modbus over serial line, 2.2). */
export const MODBUS_UNIT_MIN = 1;
export const MODBUS_UNIT_MAX = 247;

/** How the meter on a bus is reached: a DL/T 645 address, or a Modbus unit id. */
export type MeterAddressKind = 'dlt645' | 'modbus';

/**
 * Where a meter answers on its bus, written as the meter register writes it (docs/lifecycle.md): a DL/T 645 address of
 * 12 digits, or `unit N` for a Modbus meter. Given the bus's kind, the short forms a person types are taken too (up to
 * 12 digits, left-padded; a bare unit id); without it (a station's request) only the full forms, since "7" could be
 * either.
 *
 * ```ts
 * parseMeterAddress('12349999', 'dlt645'); // { ok: true, value: '000012349999' }
 * parseMeterAddress('7', 'modbus');        // { ok: true, value: 'unit 7' }
 * parseMeterAddress('unit 300');           // { ok: false, reason: 'names unit 300: a Modbus unit id is 1 to 247' }
 * ```
 */
export function parseMeterAddress(value: unknown, kind?: MeterAddressKind): Parsed<string> {
  if (typeof value !== 'string' && typeof value !== 'number') return refused(expected(kind));
  const text = String(value).trim();
  const unit = /^unit\s*(\d{1,3})$/i.exec(text) ?? (kind === 'modbus' ? /^(\d{1,3})$/.exec(text) : null);
  if (unit) {
    if (kind === 'dlt645') return refused(`names a Modbus unit id; ${expected(kind)}`);
    const id = Number(unit[1]);
    if (id < MODBUS_UNIT_MIN || id > MODBUS_UNIT_MAX)
      return refused(`names unit ${id}: a Modbus unit id is ${MODBUS_UNIT_MIN} to ${MODBUS_UNIT_MAX}`);
    return ok(`unit ${id}`);
  }
  if (kind === 'modbus') return refused(expected(kind));
  if (/^\d{12}$/.test(text) || (kind === 'dlt645' && /^\d{1,12}$/.test(text))) return ok(text.padStart(12, '0'));
  return refused(expected(kind));
}

/** The kind an address text names: `unit N` is a Modbus unit id, anything else a DL/T 645 address. */
export function meterAddressKind(address: string): MeterAddressKind {
  return /^unit \d{1,3}$/.test(address) ? 'modbus' : 'dlt645';
}

function expected(kind: MeterAddressKind | undefined): string {
  if (kind === 'dlt645') return "must be the meter's DL/T 645 address: up to 12 digits, as on its nameplate";
  if (kind === 'modbus') return "must be the meter's Modbus unit id: 1 to 247, or unit N";
  return "must be the meter's 12-digit DL/T 645 address, or unit N (1 to 247) for a Modbus meter";
}
