import { decodeValue, encodeDigits } from './formats.js';
import { diFromBytes, diToBytes } from './identifiers.js';
import { fail, ok, type Result } from './result.js';

/** 0x03 account opening (开户), the first load of a meter (docs/reference/prepaid.md § Security commands 0x03). */
export const OPENING_DI = '070101FF';
/** 0x03 recharge (充值): every load after the opening (docs/reference/prepaid.md § Security commands 0x03). */
export const RECHARGE_DI = '070102FF';
/** Bytes of an opening or recharge after the DI: operator 4 + amount 4 + count 4 + MAC1 4 + customer 6 + MAC2 4. */
export const LOAD_PAYLOAD_BYTES = 26;

/** The fields of an opening (070101FF) or recharge (070102FF); both share one layout. */
export interface LoadPayload {
  /** Operator code C0..C3 as 8 hex digits, most significant first. */
  readonly operator: string;
  /** Fen for money meters, 0.01 kWh for energy meters: the meter reads the same field either way. */
  readonly amount: number;
  /** The meter's purchase count + 1 for this load. */
  readonly purchaseCount: number;
  /** MAC1 over amount and count, 4 opaque bytes from the station's encryption machine (zeros for plaintext meters). */
  readonly mac1: Uint8Array;
  /** Customer number, up to 12 decimal digits. */
  readonly customerNo: string;
  /** MAC2 over the customer number and MAC1, 4 opaque bytes. */
  readonly mac2: Uint8Array;
}

const uint32 = (v: number) => Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff;

/**
 * The data after the DI of an opening or recharge: operator, amount and count as binary low byte first, MAC1,
 * customer number as BCD low byte first, MAC2 (docs/reference/prepaid.md § Security commands 0x03).
 */
export function encodeLoadPayload(p: LoadPayload): Result<Uint8Array> {
  if (!/^[0-9A-Fa-f]{8}$/.test(p.operator)) return fail('DLT645_BAD_OPERATOR', `operator code "${p.operator}" is not 8 hex digits`);
  if (!uint32(p.amount)) return fail('DLT645_VALUE_RANGE', `load amount ${p.amount} is not a 32-bit unsigned integer`);
  if (!uint32(p.purchaseCount)) return fail('DLT645_VALUE_RANGE', `purchase count ${p.purchaseCount} is not a 32-bit unsigned integer`);
  if (p.mac1.length !== 4 || p.mac2.length !== 4) return fail('DLT645_VALUE_RANGE', 'MAC1 and MAC2 are 4 bytes each');
  const customer = encodeDigits(p.customerNo, 6);
  if (!customer.ok) return fail(customer.error.code, `customer number: ${customer.error.message}`);
  const out = new Uint8Array(LOAD_PAYLOAD_BYTES);
  const view = new DataView(out.buffer);
  out.set(diToBytes(p.operator.toUpperCase()), 0);
  view.setUint32(4, p.amount, true);
  view.setUint32(8, p.purchaseCount, true);
  out.set(p.mac1, 12);
  out.set(customer.value, 16);
  out.set(p.mac2, 22);
  return ok(out);
}

/** Read the data after the DI of an opening or recharge (docs/reference/prepaid.md § Security commands 0x03). */
export function decodeLoadPayload(data: Uint8Array): Result<LoadPayload> {
  if (data.length !== LOAD_PAYLOAD_BYTES)
    return fail('DLT645_SHORT_DATA', `a load carries ${LOAD_PAYLOAD_BYTES} bytes after the DI, this one ${data.length}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const customer = decodeValue({ kind: 'digits', bytes: 6 }, data.subarray(16, 22));
  if (!customer.ok) return fail(customer.error.code, `customer number: ${customer.error.message}`);
  if (customer.value.kind !== 'text') return fail('DLT645_NOT_BCD', 'the customer number is marked not available (all FF)');
  return ok({
    operator: diFromBytes(data.subarray(0, 4)),
    amount: view.getUint32(4, true),
    purchaseCount: view.getUint32(8, true),
    mac1: data.slice(12, 16),
    customerNo: customer.value.value,
    mac2: data.slice(22, 26),
  });
}
