import type { Address } from '../../protocols/dlt645/index.js';

/** What identity authentication (0x03 070000FF) sends: from the station's encryption machine, hex. */
export interface IdentityData {
  /** ciphertext1, 8 bytes (16 hex digits). */
  readonly ciphertext: string;
  /** random1, 8 bytes. */
  readonly random: string;
  /** Diversification factor derived from the meter number, 8 bytes. */
  readonly diversifier: string;
}

export interface RechargeMacInput {
  readonly address: Address;
  /** random2 the meter answered to identity authentication, 4 bytes hex. */
  readonly random2: string;
  /** The meter's ESAM serial, 8 bytes hex. */
  readonly esamSerial: string;
  /** Fen or 0.01 kWh, as sent in the load. */
  readonly amount: number;
  /** The purchase count the load carries (meter + 1). */
  readonly count: number;
  /** Customer number, up to 12 digits. */
  readonly customerNo: string;
  /** Account opening (070101FF) rather than a recharge: the machine computes the opening's MACs (op `opening-macs`). */
  readonly opening?: boolean;
}

/**
 * The station's encryption machine (加密机 / HSM), asked by the ESAM credit port: the gateway cannot compute
 * ciphertext1, MAC1 or MAC2 itself (docs/reference/prepaid.md § The ESAM handshake). Bytes travel as hex strings in
 * the order they go on the wire, because that is how the station's machine speaks (docs/mqtt-api.md "Encryption machine").
 */
export interface EncryptionMachine {
  identity(meter: { readonly address: Address; readonly meterNumber: string }, signal?: AbortSignal): Promise<IdentityData>;
  rechargeMacs(input: RechargeMacInput, signal?: AbortSignal): Promise<{ readonly mac1: string; readonly mac2: string }>;
}
