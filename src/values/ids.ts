import { ok, type Parsed, refused } from './result.js';

/** A request id is the de-duplication key of a load: long enough for a UUID with a prefix, short enough to index. */
export const MAX_REQUEST_ID_LENGTH = 128;
/** A customer number is 6 BCD bytes on a DL/T 645 meter (docs/reference/prepaid.md § Vocabulary): at most 12 decimal digits. */
export const MAX_CUSTOMER_NO_DIGITS = 12;

/**
 * A request id, from a station, a counter or an operator: 1 to 128 printable ASCII characters without spaces, so it
 * survives logs, CSV exports and MQTT topics unquoted.
 *
 * ```ts
 * parseRequestId('counter-2026-11-27-0042'); // { ok: true, value: 'counter-2026-11-27-0042' }
 * parseRequestId('bad id with spaces');      // { ok: false, reason: 'may hold printable ASCII only, without spaces' }
 * ```
 */
export function parseRequestId(value: unknown): Parsed<string> {
  if (typeof value !== 'string') return refused('must be a string');
  if (value.length === 0) return refused('cannot be empty');
  if (value.length > MAX_REQUEST_ID_LENGTH) return refused(`is longer than ${MAX_REQUEST_ID_LENGTH} characters`);
  if (!/^[\x21-\x7e]+$/.test(value)) return refused('may hold printable ASCII only, without spaces');
  return ok(value);
}

/** A customer number (客户编号): 1 to 12 decimal digits, kept as written (leading zeros are part of it). */
export function parseCustomerNo(value: unknown): Parsed<string> {
  if (typeof value !== 'string') return refused('must be a string of digits');
  if (!/^\d+$/.test(value) || value.length > MAX_CUSTOMER_NO_DIGITS)
    return refused(`must be 1 to ${MAX_CUSTOMER_NO_DIGITS} decimal digits, not ${JSON.stringify(value.slice(0, 40))}`);
  return ok(value);
}

/** An operator's name (a cashier, a technician, an OS user) as recorded with what they did. */
export const MAX_OPERATOR_LENGTH = 64;

/** An operator's name: 1 to 64 characters, no control characters (it goes into logs and the books one line each). */
export function parseOperatorName(value: unknown): Parsed<string> {
  if (typeof value !== 'string') return refused('must be the name of who sends it');
  if (value.length === 0) return refused('cannot be empty');
  if (value.length > MAX_OPERATOR_LENGTH) return refused(`is longer than ${MAX_OPERATOR_LENGTH} characters`);
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return refused('cannot hold control characters');
  }
  return ok(value);
}
