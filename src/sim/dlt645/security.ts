import type { Address } from '../../../protocols/dlt645/index.js';

/** The fields of a 0x03 opening (070101FF) or recharge (070102FF) as the meter received them (prepaid-domain.md §1.2.2). */
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
}

/** Plaintext mode: every MAC is accepted, so tests and demos can load credit without an encryption machine. */
export class PlainSecurity implements SecurityModule {
  verifyLoad(_load: CreditLoad): boolean {
    return true;
  }
}
