import { createHmac } from 'node:crypto';

/**
 * STAND-IN for the real ESAM / encryption-machine algorithms. Real meters use SM1/SM4 (or 3DES) keys diversified by
 * the meter number, held in the ESAM chip and the utility's HSM; neither the algorithms nor the keys are public.
 * This module replaces them with a keyed MAC of our choice so the simulator and a test encryption machine can run
 * the same handshake (docs/reference/prepaid.md § The ESAM handshake): every MAC is the first N bytes of HMAC-SHA256(key, data).
 * It protects nothing in the field and must never be mistaken for the real scheme.
 */
export const ESAM_TEST_KEY = '00112233445566778899AABBCCDDEEFF';

/** The stand-in keyed MAC: the first `bytes` bytes of HMAC-SHA256(key, data). */
export function standInMac(keyHex: string, data: Uint8Array, bytes: 4 | 8): Uint8Array {
  return new Uint8Array(createHmac('sha256', Buffer.from(keyHex, 'hex')).update(data).digest().subarray(0, bytes));
}

/** ciphertext1 of identity authentication (070000FF): MAC8(key, random1 ‖ diversifier). */
export function standInCiphertext(keyHex: string, random1: Uint8Array, diversifier: Uint8Array): Uint8Array {
  return standInMac(keyHex, concatBytes(random1, diversifier), 8);
}

/** MAC1 of a load (070101FF/070102FF): MAC4(key, random2 ‖ amount (4, LE) ‖ count (4, LE)). */
export function standInMac1(keyHex: string, random2: Uint8Array, amount: number, count: number): Uint8Array {
  const n = new Uint8Array(8);
  const v = new DataView(n.buffer);
  v.setUint32(0, amount, true);
  v.setUint32(4, count, true);
  return standInMac(keyHex, concatBytes(random2, n), 4);
}

/** MAC2 of a load: MAC4(key, random2 ‖ customer number (6 bytes as on the wire, BCD low byte first) ‖ MAC1). */
export function standInMac2(keyHex: string, random2: Uint8Array, customerWire: Uint8Array, mac1: Uint8Array): Uint8Array {
  return standInMac(keyHex, concatBytes(random2, customerWire, mac1), 4);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
