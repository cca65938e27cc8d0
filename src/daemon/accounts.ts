import type { GatewayConfig, MeterConfig } from '../config/index.js';
import { dlt645CustomerNumberPort, dlt645CustomerNumberReader } from '../devices/account-port.js';
import type { CreditPort } from '../devices/credit-port.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import type { AccountMeter, AccountMeters } from '../services/provisioning/index.js';
import type { PointDrivers } from './point-drivers.js';

/** Where ESAM meters keep the customer number their opening set (the built-in ESAM profile's point name). */
const HELD_CUSTOMER_NUMBER = 'customer.number';

/**
 * How account-open reaches a meter, by its profile's `account` method; undefined when it has none it can drive. The
 * meter is the one `m` names (address, profile) over these drivers: a point's installed meter, or a new meter that a
 * replacement opens before it is bound (src/daemon/replacement.ts).
 */
export function accountMeterOf(
  m: MeterConfig,
  drivers: { readonly dlt645?: Dlt645Meter | undefined; readonly credit?: CreditPort | undefined },
  config: Pick<GatewayConfig, 'credentials'>,
): AccountMeter | undefined {
  const method = m.profile.account?.method;
  const where = { id: m.id, ...(m.address !== undefined ? { address: m.address } : {}) };
  if (method === 'dlt645-customer-number' && drivers.dlt645) {
    const port = dlt645CustomerNumberPort(drivers.dlt645, m.profile, config.credentials.dlt645);
    return { ...where, method, customerNumber: port, heldCustomerNumber: port, ...(drivers.credit ? { credit: drivers.credit } : {}) };
  }
  if (method === 'dlt645-esam-opening' && drivers.credit) {
    const held =
      drivers.dlt645 && m.profile.points.get(HELD_CUSTOMER_NUMBER)?.kind === 'dlt645'
        ? dlt645CustomerNumberReader(drivers.dlt645, m.profile, HELD_CUSTOMER_NUMBER)
        : undefined;
    return { ...where, method, credit: drivers.credit, ...(held ? { heldCustomerNumber: held } : {}) };
  }
  return undefined;
}

/**
 * The points' account meters for account-open, built at each lookup from the point's drivers as they are now: after a
 * replacement the command reaches the new meter, at its address and with its profile's method.
 */
export function pointAccountMeters(points: ReadonlyMap<string, PointDrivers>, config: Pick<GatewayConfig, 'credentials'>): AccountMeters {
  return {
    get(id) {
      const point = points.get(id);
      return point && accountMeterOf(point.meter, point, config);
    },
  };
}
