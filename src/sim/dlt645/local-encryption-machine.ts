import { randomBytes } from 'node:crypto';
import { encodeDigits, fromHex, meterDiversifier, toHex, type Address } from '../../../protocols/dlt645/index.js';
import type { EncryptionMachine, IdentityData, RechargeMacInput } from '../../devices/encryption-machine.js';
import { standInCiphertext, standInMac1, standInMac2 } from './esam-stand-in.js';

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
    const diversifier = meterDiversifier(meter.meterNumber);
    return {
      ciphertext: toHex(standInCiphertext(this.keyHex, random1, diversifier)),
      random: toHex(random1),
      diversifier: toHex(diversifier),
    };
  }

  async rechargeMacs(input: RechargeMacInput): Promise<{ mac1: string; mac2: string }> {
    const customer = encodeDigits(input.customerNo, 6);
    if (!customer.ok) throw new TypeError(`customer number ${input.customerNo}: ${customer.error.message}`);
    const random2 = fromHex(input.random2);
    if (!random2) throw new TypeError(`random2 "${input.random2}" is not hex`);
    const mac1 = standInMac1(this.keyHex, random2, input.amount, input.count);
    return { mac1: toHex(mac1), mac2: toHex(standInMac2(this.keyHex, random2, customer.value, mac1)) };
  }
}
