import { createHmac, timingSafeEqual } from 'node:crypto';
import { MAX_REQUEST_DEPTH } from './request-json.js';

/** How far a request's `ts` may be from the gateway's clock, either way. */
export const DEFAULT_SIGNATURE_WINDOW_MS = 5 * 60_000;

/**
 * The canonical form of a JSON value: object keys sorted recursively (by UTF-16 code unit, as `Array.prototype.sort`
 * does), no whitespace, strings and numbers as `JSON.stringify` writes them. Arrays keep their order. For the values
 * `JSON.parse` produces this is RFC 8785 (JSON Canonicalization Scheme). A value nested deeper than MAX_REQUEST_DEPTH
 * is a RangeError. Pure.
 *
 * ```ts
 * canonicalJson({ b: 1, a: { d: [2, 1], c: 'x' } }); // '{"a":{"c":"x","d":[2,1]},"b":1}'
 * ```
 */
export function canonicalJson(value: unknown): string {
  return canonical(value, 1);
}

// Requests are refused deeper than MAX_REQUEST_DEPTH when parsed; the bound here makes the recursion's depth a
// constant even for a caller that skipped that check.
function canonical(value: unknown, depth: number): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`${typeof value} has no JSON form`);
    return text;
  }
  if (depth > MAX_REQUEST_DEPTH) throw new RangeError(`the value nests deeper than ${MAX_REQUEST_DEPTH} levels; it is no request`);
  if (Array.isArray(value)) return `[${value.map((item) => canonical(item, depth + 1)).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(record[key], depth + 1)}`).join(',')}}`;
}

/** The string a station signs: the canonical JSON of the payload without its `signature` field. */
export function signingString(payload: Readonly<Record<string, unknown>>): string {
  const { signature: _signature, ...rest } = payload;
  return canonicalJson(rest);
}

/**
 * Hex HMAC-SHA256 of `signingString(payload)` with the UTF-8 bytes of `key`: what the station puts in `signature`.
 *
 * ```ts
 * const request = { requestId: 'r-1', meter: 'room-101', energyKwh: 12.5, ts: new Date().toISOString() };
 * publish('meterd/gw-1/cmd/topup', JSON.stringify({ ...request, signature: commandSignature(request, key) }));
 * ```
 */
export function commandSignature(payload: Readonly<Record<string, unknown>>, key: string): string {
  return createHmac('sha256', Buffer.from(key, 'utf8')).update(signingString(payload), 'utf8').digest('hex');
}

/** Compares in constant time; false for anything that is not 64 hex digits. */
export function signatureMatches(payload: Readonly<Record<string, unknown>>, key: string, signature: string): boolean {
  if (!/^[0-9A-Fa-f]{64}$/.test(signature)) return false;
  const expected = Buffer.from(commandSignature(payload, key), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}
