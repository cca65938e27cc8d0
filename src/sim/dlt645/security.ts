import { randomBytes } from 'node:crypto';
import { addressToBytes, encodeDigits, encodeIdentityReply, meterDiversifier, type Address } from '../../../protocols/dlt645/index.js';
import { bytesEqual, standInCiphertext, standInMac1, standInMac2 } from './esam-stand-in.js';

/** The fields of a 0x03 opening (070101FF) or recharge (070102FF) as the meter received them (docs/reference/prepaid.md § Security commands 0x03). */
export interface CreditLoad {
  readonly kind: 'opening' | 'recharge';
  readonly meter: Address;
  /** Operator code C0..C3 as 8 hex digits, most significant first. */
  readonly operator: string;
  /** Fen for money meters, 0.01 kWh for energy meters (binary on the wire). */
  readonly amount: number;
  readonly purchaseCount: number;
  readonly customerNumber: string;
  /** MAC1 covers amount and purchase count, MAC2 the customer number; opaque bytes from the station's encryption machine. */
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

/**
 * What the meter's ESAM does for a load: check the MACs. The simulated meter asks this module and answers SERR bit2
 * (ESAM verification failed) when it says no, so an ESAM mode with real keys can be plugged in without touching
 * the meter's purchase-count and balance rules.
 */
export interface SecurityModule {
  verifyLoad(load: CreditLoad): boolean;
  /**
   * Identity authentication (0x03 070000FF). Absent in plaintext mode (the meter answers "other error").
   * `data` is what follows DI and operator code: ciphertext1 (8) + random1 (8) + diversification factor (8).
   */
  authenticate?(meter: Address, data: Uint8Array, nowMs: number): { ok: true; reply: Uint8Array } | { ok: false };
  /** True when a load may be checked now: an ESAM meter needs an open authenticated session. Absent: always. */
  sessionOpen?(nowMs: number): boolean;
  /** What a test may see: how many identity authentications were tried, MAC failures, whether a session is open. */
  stats?(nowMs: number): EsamStats;
}

export interface EsamStats {
  readonly authentications: number;
  readonly authenticationFailures: number;
  readonly macFailures: number;
  readonly sessionOpen: boolean;
}

/** Plaintext mode: every MAC is accepted, so tests and demos can load credit without an encryption machine. */
export class PlainSecurity implements SecurityModule {
  verifyLoad(_load: CreditLoad): boolean {
    return true;
  }
}

/** Default authentication validity (070001FF never set): 5 minutes (docs/reference/prepaid.md § The ESAM handshake). */
export const ESAM_SESSION_MS = 5 * 60_000;
/** Every 3rd ESAM verification failure invalidates the authentication (docs/reference/prepaid.md § Security error word SERR, lock-out). */
const MAC_FAILURES_PER_SESSION = 3;

/**
 * A simulated ESAM with one test key. The algorithms are the STAND-IN of esam-stand-in.ts (HMAC-SHA256 truncated),
 * not the real SM1/SM4 ones: the point is the handshake, not the cryptography.
 *
 * - 070000FF: accepted when ciphertext1 = MAC8(key, random1 ‖ diversifier) and the diversifier is this meter's;
 *   answers random2 (4, fresh each time) + ESAM serial (8) and opens a 5-minute session. A wrong one closes any
 *   session and the meter answers SERR authentication-failed.
 * - 070101FF/070102FF: need the session (else authentication-failed); MAC1 = MAC4(key, random2 ‖ amount ‖ count),
 *   MAC2 = MAC4(key, random2 ‖ customer ‖ MAC1); wrong → mac-failed; the 3rd failure in a session ends it.
 */
export class EsamSecurity implements SecurityModule {
  private session: { random2: Uint8Array; until: number; macFailures: number } | undefined;
  private authentications = 0;
  private authenticationFailures = 0;
  private macFailures = 0;

  constructor(private readonly keyHex: string) {
    if (!/^[0-9A-Fa-f]{32}$/.test(keyHex)) throw new TypeError('the ESAM test key is 32 hex digits');
  }

  /** The 8-byte ESAM serial of a meter: a stand-in derived from its address (E5 5A + the address bytes). */
  static serialOf(meter: Address): Uint8Array {
    const out = new Uint8Array(8);
    out.set([0xe5, 0x5a], 0);
    out.set(addressToBytes(meter), 2);
    return out;
  }

  authenticate(meter: Address, data: Uint8Array, nowMs: number): { ok: true; reply: Uint8Array } | { ok: false } {
    this.authentications++;
    this.session = undefined;
    if (data.length !== 24) {
      this.authenticationFailures++;
      return { ok: false };
    }
    const ciphertext = data.subarray(0, 8);
    const random1 = data.subarray(8, 16);
    const diversifier = data.subarray(16, 24);
    if (
      !bytesEqual(diversifier, meterDiversifier(meter)) ||
      !bytesEqual(ciphertext, standInCiphertext(this.keyHex, random1, diversifier))
    ) {
      this.authenticationFailures++;
      return { ok: false };
    }
    const random2 = new Uint8Array(randomBytes(4));
    this.session = { random2, until: nowMs + ESAM_SESSION_MS, macFailures: 0 };
    const reply = encodeIdentityReply({ random2, esamSerial: EsamSecurity.serialOf(meter) });
    return reply.ok ? { ok: true, reply: reply.value } : { ok: false };
  }

  sessionOpen(nowMs: number): boolean {
    if (this.session && nowMs >= this.session.until) this.session = undefined;
    return this.session !== undefined;
  }

  verifyLoad(load: CreditLoad): boolean {
    const s = this.session;
    if (!s) return false;
    const customer = encodeDigits(load.customerNumber, 6);
    const mac1 = standInMac1(this.keyHex, s.random2, load.amount, load.purchaseCount);
    const ok =
      customer.ok && bytesEqual(load.mac1, mac1) && bytesEqual(load.mac2, standInMac2(this.keyHex, s.random2, customer.value, mac1));
    if (!ok) {
      this.macFailures++;
      if (++s.macFailures >= MAC_FAILURES_PER_SESSION) this.session = undefined;
    }
    return ok;
  }

  stats(nowMs: number): EsamStats {
    return {
      authentications: this.authentications,
      authenticationFailures: this.authenticationFailures,
      macFailures: this.macFailures,
      sessionOpen: this.sessionOpen(nowMs),
    };
  }
}
