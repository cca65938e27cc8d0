import {
  abnormalOf,
  checkReply,
  encodeDigits,
  encodeLayout,
  encodeLoadPayload,
  OPENING_DI,
  RECHARGE_DI,
  securityAuth,
  writeData,
  type Frame,
  type Password,
} from '../../protocols/dlt645/index.js';
import { encodeValue, removeScale } from '../../protocols/modbus/index.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { pointReaderOf } from './dlt645-points.js';
import { MeterError } from './errors.js';
import type { ModbusMeter } from './modbus-meter.js';
import type { PointValue } from './point-value.js';

/** A meter's wallet in whole ledger units: fen for money meters, 0.01 kWh for energy meters. */
export interface Wallet {
  readonly count: number;
  readonly balance: number;
  readonly overdraft: number;
}

export interface CreditLoad {
  /** The meter's purchase count + 1: the load's idempotency key at the meter. */
  readonly purchaseCount: number;
  /** Fen or 0.01 kWh. */
  readonly amount: number;
  readonly customerNo?: string;
  /** Account opening (开户, 0x03 070101FF) instead of a recharge (070102FF): the meter's first load, which also sets its customer number. */
  readonly opening?: boolean;
  /** ESAM meters: the station's identity-authentication data for this load (topup `esam`); else the encryption machine is asked. */
  readonly esam?: { readonly ciphertext: string; readonly random: string; readonly diversifier?: string };
}

/** Why a meter refused a load, by name (SERR bits for 0x03; vendor meters only say "refused"). */
export type LoadRefusalCode =
  | 'REPEAT_RECHARGE'
  | 'PURCHASE_COUNT_ERROR'
  | 'CUSTOMER_MISMATCH'
  | 'OVER_HOARDING_LIMIT'
  | 'MAC_FAILED'
  | 'AUTHENTICATION_FAILED'
  | 'METER_REFUSED'
  /** ESAM loads: the station's encryption machine did not answer in time, before anything was loaded. */
  | 'HSM_TIMEOUT'
  /** ESAM loads: the encryption machine answered with an error or an unusable reply. */
  | 'HSM_FAILED';

export type LoadOutcome =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'refused'; readonly code: LoadRefusalCode; readonly message: string }
  /** No answer: the frame may or may not have reached the meter. Only a read of the meter can tell. */
  | { readonly kind: 'unknown'; readonly code: string; readonly message: string };

/** How the credit service loads and checks one meter, whatever its protocol or credit method. */
export interface CreditPort {
  readonly unit: 'money' | 'energy';
  readWallet(opts: { priority: Priority; signal?: AbortSignal }): Promise<Wallet>;
  load(load: CreditLoad, opts: { priority: Priority; signal?: AbortSignal }): Promise<LoadOutcome>;
}

export const SERR_CODES: Record<string, LoadRefusalCode> = {
  'repeat-recharge': 'REPEAT_RECHARGE',
  'purchase-count-error': 'PURCHASE_COUNT_ERROR',
  'customer-number-mismatch': 'CUSTOMER_MISMATCH',
  'over-hoarding-limit': 'OVER_HOARDING_LIMIT',
  'mac-failed': 'MAC_FAILED',
  'authentication-failed': 'AUTHENTICATION_FAILED',
};

/** Codes that mean "no reply": the bus timed out or lost the port after the frame may have left. */
export const NO_REPLY = new Set(['BUS_TIMEOUT', 'BUS_DOWN', 'METER_TIMEOUT']);

/** Read the profile's read-back points and turn them into whole ledger units (×100: fen or 0.01 kWh). */
export function walletOf(
  values: Map<string, PointValue>,
  readBack: { count: string; balance: string; overdraft?: string },
  meter: string,
): Wallet {
  const num = (point: string | undefined, required: boolean): number => {
    if (point === undefined) return 0;
    const v = values.get(point);
    if (!v || !('v' in v) || typeof v.v !== 'number') {
      if (!required) return 0;
      throw new MeterError(
        'CREDIT_READBACK_FAILED',
        `meter ${meter}: cannot read ${point} for the credit check (${v && 'error' in v ? v.error : 'no value'})`,
      );
    }
    return v.v;
  };
  return {
    count: Math.round(num(readBack.count, true)),
    balance: Math.round(num(readBack.balance, true) * 100),
    overdraft: Math.round(num(readBack.overdraft, false) * 100),
  };
}

/** The credit port of a DL/T 645 meter, by its profile's credit method (dlt645-plain or dlt645-write). */
export function dlt645CreditPort(meter: Dlt645Meter, profile: DeviceProfile, auth: { password: Password; operator: string }): CreditPort {
  const credit = profile.credit;
  if (!credit || (credit.method !== 'dlt645-plain' && credit.method !== 'dlt645-write')) {
    throw new MeterError(
      'CREDIT_UNSUPPORTED',
      `profile ${profile.id} has no DL/T 645 credit method this gateway can drive (${credit?.method ?? 'none'})`,
    );
  }
  const reader = pointReaderOf(meter, profile);
  const points = [credit.readBack.count, credit.readBack.balance, ...(credit.readBack.overdraft ? [credit.readBack.overdraft] : [])];
  return {
    unit: credit.unit,
    async readWallet(opts) {
      return walletOf(await reader.read(points, opts), credit.readBack, meter.address);
    },
    async load(l, opts) {
      let frame: Frame;
      if (credit.method === 'dlt645-plain') {
        // Plain meters take placeholder (zero) MACs; ESAM meters need the station's (dlt645-esam).
        const customerNo = l.customerNo ?? '0';
        const customer = encodeDigits(customerNo, 6);
        if (!customer.ok) return { kind: 'refused', code: 'CUSTOMER_MISMATCH', message: customer.error.message };
        const none = new Uint8Array(4);
        const payload = encodeLoadPayload({
          operator: auth.operator,
          amount: l.amount,
          purchaseCount: l.purchaseCount,
          mac1: none,
          customerNo,
          mac2: none,
        });
        if (!payload.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `cannot build the recharge: ${payload.error.message}` };
        frame = securityAuth(meter.address, l.opening ? OPENING_DI : RECHARGE_DI, payload.value);
      } else {
        const body = encodeLayout(credit.layout, { purchaseCount: l.purchaseCount, amount: l.amount, customerNumber: l.customerNo ?? '0' });
        if (!body.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `cannot build the payload: ${body.error.message}` };
        frame = writeData(meter.address, credit.di, auth.password, auth.operator, body.value);
      }
      let reply: Frame;
      try {
        reply = await meter.command(frame, { ...opts, label: `load count ${l.purchaseCount}` });
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR';
        if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
        throw err;
      }
      const r = checkReply(reply, frame.control);
      if (r.ok) return { kind: 'accepted' };
      if (r.error.code !== 'DLT645_ABNORMAL') return { kind: 'unknown', code: r.error.code, message: r.error.message };
      const names = abnormalOf(reply).errors;
      const code = names.map((n) => SERR_CODES[n]).find((c) => c !== undefined) ?? 'METER_REFUSED';
      return { kind: 'refused', code, message: r.error.message };
    },
  };
}

/** The credit port of a Modbus meter whose profile loads credit by a register write (modbus-write). */
export function modbusCreditPort(meter: ModbusMeter, profile: DeviceProfile): CreditPort {
  const credit = profile.credit;
  if (credit?.method !== 'modbus-write')
    throw new MeterError('CREDIT_UNSUPPORTED', `profile ${profile.id} has no modbus-write credit method`);
  const points = [credit.readBack.count, credit.readBack.balance, ...(credit.readBack.overdraft ? [credit.readBack.overdraft] : [])];
  const registers = [...credit.registers].sort((a, b) => a.address - b.address);
  return {
    unit: credit.unit,
    async readWallet(opts) {
      return walletOf(await meter.read(points, opts), credit.readBack, profile.id);
    },
    async load(l, opts) {
      // One FC16 request over the contiguous range, so count and amount reach the meter together.
      const words: number[] = [];
      let next = registers[0]!.address;
      for (const r of registers) {
        if (r.address !== next)
          return {
            kind: 'refused',
            code: 'METER_REFUSED',
            message: `credit registers of ${profile.id} are not contiguous at ${r.address}`,
          };
        const value = r.field === 'purchaseCount' ? l.purchaseCount : r.field === 'amount' ? l.amount / 100 : 0;
        const raw = removeScale(value, { scale: r.scale });
        if (!raw.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `${r.field}: ${raw.error.message}` };
        const enc = encodeValue(raw.value, r.type, r.order);
        if (!enc.ok) return { kind: 'refused', code: 'METER_REFUSED', message: `${r.field}: ${enc.error.message}` };
        words.push(...enc.value);
        next = r.address + enc.value.length;
      }
      try {
        await meter.writeRegisters(opts.priority, registers[0]!.address, words, { signal: opts.signal });
        return { kind: 'accepted' };
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ERROR';
        if (NO_REPLY.has(code)) return { kind: 'unknown', code, message: (err as Error).message };
        if (code === 'MODBUS_EXCEPTION') return { kind: 'refused', code: 'METER_REFUSED', message: (err as Error).message };
        throw err;
      }
    },
  };
}
