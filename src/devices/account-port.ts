import { checkReply, encodeDigits, writeData, type Password } from '../../protocols/dlt645/index.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { Dlt645PointReader } from './dlt645-points.js';
import { MeterError } from './errors.js';

/**
 * The customer number (客户编号) of a plain DL/T 645 meter, as its profile's `account` names it (method
 * dlt645-customer-number): written with 0x14 to the point's identifier under the configured password and operator
 * code, and read back. A meter checks it on every recharge (docs/reference/prepaid.md § Purchase counter).
 */
export interface CustomerNumberPort extends CustomerNumberReader {
  write(customerNo: string, opts: { priority: Priority; signal?: AbortSignal }): Promise<void>;
}

/** The customer number register read only (an ESAM meter's is set by its account opening, never written with 0x14). */
export interface CustomerNumberReader {
  /** The customer number the meter holds now, 12 digits. */
  read(opts: { priority: Priority; signal?: AbortSignal }): Promise<string>;
}

export function dlt645CustomerNumberPort(
  meter: Dlt645Meter,
  profile: DeviceProfile,
  auth: { password: Password; operator: string },
): CustomerNumberPort {
  const account = profile.account;
  if (account?.method !== 'dlt645-customer-number')
    throw new MeterError('ACCOUNT_UNSUPPORTED', `profile ${profile.id} has no dlt645-customer-number account method`);
  const point = profile.points.get(account.point);
  if (point?.kind !== 'dlt645')
    throw new MeterError('ACCOUNT_UNSUPPORTED', `profile ${profile.id}: ${account.point} is not a DL/T 645 point`);
  const reader = dlt645CustomerNumberReader(meter, profile, account.point);
  return {
    read: (opts) => reader.read(opts),
    async write(customerNo, opts) {
      const digits = encodeDigits(customerNo, 6);
      if (!digits.ok) throw new MeterError('ACCOUNT_REFUSED', `customer number ${customerNo}: ${digits.error.message}`);
      const frame = writeData(meter.address, point.di, auth.password, auth.operator, digits.value);
      const reply = await meter.command(frame, { ...opts, label: `write ${account.point}` });
      const r = checkReply(reply, frame.control);
      if (!r.ok) throw new MeterError('ACCOUNT_REFUSED', `meter ${meter.address} refused the customer number: ${r.error.message}`);
    },
  };
}

/** The profile point `pointName` (the customer number register) of a DL/T 645 meter, read as 12 digits. */
export function dlt645CustomerNumberReader(meter: Dlt645Meter, profile: DeviceProfile, pointName: string): CustomerNumberReader {
  if (profile.points.get(pointName)?.kind !== 'dlt645')
    throw new MeterError('ACCOUNT_UNSUPPORTED', `profile ${profile.id}: ${pointName} is not a DL/T 645 point`);
  const reader = new Dlt645PointReader(meter, profile);
  return {
    async read(opts) {
      const v = (await reader.read([pointName], opts)).get(pointName);
      if (!v || !('v' in v)) throw new MeterError('ACCOUNT_READBACK_FAILED', `meter ${meter.address}: cannot read ${pointName} back`);
      return String(v.v).padStart(12, '0');
    },
  };
}
