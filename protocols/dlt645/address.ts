import { fail, ok, toHex, type Result } from './result.js';

/** A meter address as technicians write it: 12 characters, most significant digit first ("000012345678"). */
export type Address = string;

/** Broadcast address 999999999999: meters act but never reply (DL/T 645-2007 §7.1, broadcast time 0x08). */
export const BROADCAST_ADDRESS: Address = '999999999999';
/** Wildcard address AAAAAAAAAAAA: every meter that hears it replies, so only point-to-point (DL/T 645-2007 §7.1). */
export const WILDCARD_ADDRESS: Address = 'AAAAAAAAAAAA';

/**
 * Parse a user-written address into the canonical 12-character form.
 * Shorter decimal addresses are left-padded with 0 (DL/T 645-2007 §7.1: "高位用0补足"); a trailing-wildcard form
 * such as AAAAAA345678 (abbreviated addressing: real low bytes, AA high bytes) is accepted whole-byte only.
 */
export function parseAddress(text: string): Result<Address> {
  const t = text.trim().toUpperCase();
  if (/^\d{1,12}$/.test(t)) return ok(t.padStart(12, '0'));
  if (/^[0-9A]{12}$/.test(t)) {
    for (let i = 0; i < 12; i += 2) {
      const pair = t.slice(i, i + 2);
      if (pair.includes('A') && pair !== 'AA') {
        return fail('DLT645_BAD_ADDRESS', `address ${text}: wildcard must fill whole bytes (AA), found "${pair}"`);
      }
    }
    return ok(t);
  }
  return fail('DLT645_BAD_ADDRESS', `address "${text}" is not 1 to 12 decimal digits (e.g. 000012345678) or AA wildcard bytes`);
}

/** Address to its 6 wire bytes, low byte first (DL/T 645-2007 §7.1 address field A0..A5). */
export function addressToBytes(address: Address): Uint8Array {
  const out = new Uint8Array(6);
  for (let i = 0; i < 6; i++) out[i] = parseInt(address.slice(10 - 2 * i, 12 - 2 * i), 16);
  return out;
}

/** 6 wire bytes (low byte first) to the address text; bytes that are not BCD show as their hex so decoding stays total. */
export function addressFromBytes(bytes: Uint8Array): Address {
  return toHex(Uint8Array.from(bytes.subarray(0, 6)).reverse());
}

export function isBroadcast(address: Address): boolean {
  return address === BROADCAST_ADDRESS;
}

/** True when any byte of the address is the AA wildcard. */
export function isWildcard(address: Address): boolean {
  for (let i = 0; i < 12; i += 2) if (address.slice(i, i + 2) === 'AA') return true;
  return false;
}
