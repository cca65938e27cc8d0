import { randomBytes } from 'node:crypto';
import { addressToBytes, encodeDigits, type Address } from '../../protocols/dlt645/index.js';
import { standInCiphertext, standInDiversifier, standInMac1, standInMac2 } from '../sim/dlt645/esam-stand-in.js';

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
}

/**
 * The station's encryption machine (加密机 / HSM): the gateway cannot compute ciphertext1, MAC1 or MAC2 itself
 * (docs/reference/prepaid.md § The ESAM handshake). Bytes travel as hex strings in the order they go on the wire.
 */
export interface EncryptionMachine {
  identity(meter: { readonly address: Address; readonly meterNumber: string }, signal?: AbortSignal): Promise<IdentityData>;
  rechargeMacs(input: RechargeMacInput, signal?: AbortSignal): Promise<{ readonly mac1: string; readonly mac2: string }>;
}

/**
 * The diversification factor (分散因子) of a meter when the station does not give one: 00 00 followed by the 6-byte
 * meter number as on the wire (docs/reference/prepaid.md § The ESAM handshake: derived from the meter number), hex.
 */
export function meterDiversifier(meterNumber: Address): string {
  return hex(standInDiversifier(addressToBytes(meterNumber)));
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

/**
 * An encryption machine in process with a TEST key, computing the simulator's STAND-IN MACs (esam-stand-in.ts).
 * For tests and demos against the simulated ESAM meter only: a real station uses its HSM.
 */
export class LocalTestEncryptionMachine implements EncryptionMachine {
  constructor(private readonly keyHex: string) {
    if (!/^[0-9A-Fa-f]{32}$/.test(keyHex)) throw new TypeError('the test key is 32 hex digits');
  }

  async identity(meter: { readonly address: Address; readonly meterNumber: string }): Promise<IdentityData> {
    const random1 = new Uint8Array(randomBytes(8));
    const diversifier = bytes(meterDiversifier(meter.meterNumber));
    return { ciphertext: hex(standInCiphertext(this.keyHex, random1, diversifier)), random: hex(random1), diversifier: hex(diversifier) };
  }

  async rechargeMacs(input: RechargeMacInput): Promise<{ mac1: string; mac2: string }> {
    const customer = encodeDigits(input.customerNo, 6);
    if (!customer.ok) throw new TypeError(`customer number ${input.customerNo}: ${customer.error.message}`);
    const random2 = bytes(input.random2);
    const mac1 = standInMac1(this.keyHex, random2, input.amount, input.count);
    return { mac1: hex(mac1), mac2: hex(standInMac2(this.keyHex, random2, customer.value, mac1)) };
  }
}
