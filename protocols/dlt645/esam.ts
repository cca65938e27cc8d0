import { addressToBytes, type Address } from './address.js';
import { diFromBytes, diToBytes } from './identifiers.js';
import { fail, ok, type Result } from './result.js';

/** 0x03 identity authentication (身份认证), which opens the ESAM session a load needs (docs/reference/prepaid.md § Security commands 0x03). */
export const IDENTITY_DI = '070000FF';
/** Bytes of an identity authentication after the DI: operator 4 + ciphertext1 8 + random1 8 + diversifier 8. */
export const IDENTITY_REQUEST_BYTES = 28;
/** Bytes of its reply after the DI: random2 4 + ESAM serial 8. */
export const IDENTITY_REPLY_BYTES = 12;

/**
 * The diversification factor (分散因子) of a meter: two zero bytes, then the 6-byte meter number as on the wire, low
 * byte first (docs/reference/prepaid.md § The ESAM handshake says only "derived from the meter number"; a station
 * whose machine derives it otherwise sends its own with the top-up).
 */
export function meterDiversifier(meterNumber: Address): Uint8Array {
  const out = new Uint8Array(8);
  out.set(addressToBytes(meterNumber), 2);
  return out;
}

/** What identity authentication sends; ciphertext1 and random1 come from the station's encryption machine. */
export interface IdentityRequest {
  /** Operator code C0..C3 as 8 hex digits, most significant first. */
  readonly operator: string;
  readonly ciphertext: Uint8Array;
  readonly random1: Uint8Array;
  readonly diversifier: Uint8Array;
}

/** What the meter answers to a successful identity authentication. */
export interface IdentityReply {
  /** The meter's fresh random number, 4 bytes: the encryption machine computes the load's MACs over it. */
  readonly random2: Uint8Array;
  /** The ESAM chip's serial, 8 bytes. */
  readonly esamSerial: Uint8Array;
}

/** The data after the DI of 070000FF: operator, ciphertext1, random1, diversifier (docs/reference/prepaid.md § Security commands 0x03). */
export function encodeIdentityRequest(r: IdentityRequest): Result<Uint8Array> {
  if (!/^[0-9A-Fa-f]{8}$/.test(r.operator)) return fail('DLT645_BAD_OPERATOR', `operator code "${r.operator}" is not 8 hex digits`);
  for (const [name, b] of [
    ['ciphertext1', r.ciphertext],
    ['random1', r.random1],
    ['diversifier', r.diversifier],
  ] as const)
    if (b.length !== 8) return fail('DLT645_VALUE_RANGE', `${name} is 8 bytes, not ${b.length}`);
  const out = new Uint8Array(IDENTITY_REQUEST_BYTES);
  out.set(diToBytes(r.operator.toUpperCase()), 0);
  out.set(r.ciphertext, 4);
  out.set(r.random1, 12);
  out.set(r.diversifier, 20);
  return ok(out);
}

/** Read the data after the DI of 070000FF (docs/reference/prepaid.md § Security commands 0x03). */
export function decodeIdentityRequest(data: Uint8Array): Result<IdentityRequest> {
  if (data.length !== IDENTITY_REQUEST_BYTES)
    return fail(
      'DLT645_SHORT_DATA',
      `identity authentication carries ${IDENTITY_REQUEST_BYTES} bytes after the DI, this one ${data.length}`,
    );
  return ok({
    operator: diFromBytes(data.subarray(0, 4)),
    ciphertext: data.slice(4, 12),
    random1: data.slice(12, 20),
    diversifier: data.slice(20, 28),
  });
}

/** The reply data after the DI of 070000FF: random2, ESAM serial (docs/reference/prepaid.md § Security commands 0x03). */
export function encodeIdentityReply(r: IdentityReply): Result<Uint8Array> {
  if (r.random2.length !== 4 || r.esamSerial.length !== 8) return fail('DLT645_VALUE_RANGE', 'random2 is 4 bytes and the ESAM serial 8');
  const out = new Uint8Array(IDENTITY_REPLY_BYTES);
  out.set(r.random2, 0);
  out.set(r.esamSerial, 4);
  return ok(out);
}

/** Read the reply data after the DI of 070000FF; bytes beyond the 12 are ignored (docs/reference/prepaid.md § Security commands 0x03). */
export function decodeIdentityReply(data: Uint8Array): Result<IdentityReply> {
  if (data.length < IDENTITY_REPLY_BYTES)
    return fail(
      'DLT645_SHORT_DATA',
      `identity authentication reply has ${data.length} data bytes after the DI, expected ${IDENTITY_REPLY_BYTES}`,
    );
  return ok({ random2: data.slice(0, 4), esamSerial: data.slice(4, 12) });
}
