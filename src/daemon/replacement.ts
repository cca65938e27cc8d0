import type { Clock, Timers } from '../clock.js';
import type { GatewayConfig, MeterConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import type { DeviceProfile } from '../profiles/types.js';
import type { AlertService } from '../services/alerts/service.js';
import type { AllowanceService } from '../services/allowances/index.js';
import type { CreditService } from '../services/credit.js';
import { MeterReplacement, type NewMeterAccounts, type PointMeters, type ReplaceablePoint } from '../services/lifecycle/replacement.js';
import { openMeterAccount, type AccountMeter } from '../services/provisioning/index.js';
import type { AssetReading, Store } from '../store/index.js';
import type { CommandHandlers, CommandOutcome } from '../uplink/commands/types.js';
import { accountMeterOf } from './accounts.js';
import type { PointDrivers } from './point-drivers.js';

/** The registers a replacement reads off the old and the new meter, when the profile has them. */
const ENERGY_POINTS = ['energy.active.import', 'energy.active.export'] as const;

/**
 * The meter-replace job of a gateway (docs/lifecycle.md): the points' swappable drivers as its wire side, the credit
 * service for the transfer, the alerts and allowances told of the swap in its transaction.
 */
export function composeReplacement(
  config: GatewayConfig,
  d: {
    store: Store;
    clock: Clock;
    timers: Timers;
    logger: Logger;
    credit: CreditService;
    alerts: AlertService;
    allowances: AllowanceService;
    points: ReadonlyMap<string, PointDrivers>;
    profile: (id: string) => DeviceProfile | undefined;
    onCommitted: () => void;
    /** The point's config entry now names the new meter (address, profile). */
    rebound?: (meter: MeterConfig) => void;
    holdAfter?: string;
  },
): MeterReplacement {
  const meters: PointMeters = {
    profileOf: (id) => d.points.get(id)!.meter.profile,
    profile: d.profile,
    read: (id, address, profile, signal) => readMeter(d.points.get(id)!, address, profile, signal),
    rebind: (id, address, profile) => d.points.get(id)!.rebind(address, profile),
  };
  const points = new Map<string, ReplaceablePoint>(
    config.meters.map((m) => [
      m.id,
      {
        id: m.id,
        busId: m.busId,
        protocol: m.profile.protocol.startsWith('dlt645') ? 'dlt645' : 'modbus',
        ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
        verificationYears: m.verificationYears,
      },
    ]),
  );
  return new MeterReplacement({
    store: d.store,
    clock: d.clock,
    timers: d.timers,
    logger: d.logger,
    credit: d.credit,
    points,
    meters,
    allowanceBusy: (id) => d.allowances.loading(id),
    onSwap: (tx, id, _old, installed) => {
      d.alerts.meterReplaced(tx, id, installed.installedAt);
      // Allowance rows name a DL/T 645 meter by its address, so they are moved to the new one. A Modbus point's rows
      // name no meter (the config's meter has no address, only a unit id): they follow the point as they are, and its
      // swapped free-energy and credit ports load them onto the new meter.
      if (points.get(id)?.protocol === 'dlt645') d.allowances.meterReplaced(tx, id, installed.address);
    },
    afterSwap: (id, installed) => {
      if (points.get(id)?.protocol === 'dlt645') d.allowances.meterRebound(id, installed.address);
      d.rebound?.(d.points.get(id)!.meter);
    },
    onCommitted: d.onCommitted,
    accounts: newMeterAccounts(config, d.points),
    ...(d.holdAfter !== undefined ? { holdAfter: d.holdAfter } : {}),
  });
}

/**
 * The new meter's account opened with account-open's code path (accountMeterOf, openMeterAccount) over drivers for
 * the new address on the point's bus, before the meter is bound to the point.
 */
function newMeterAccounts(config: GatewayConfig, points: ReadonlyMap<string, PointDrivers>): NewMeterAccounts {
  const meterAt = (id: string, address: string, profile: DeviceProfile): AccountMeter => {
    const point = points.get(id)!;
    const meter = accountMeterOf({ ...point.meter, address, profile }, point.probe(address, profile), config);
    if (!meter) throw new Error(`profile ${profile.id} has no account method this gateway drives`);
    return meter;
  };
  return {
    methodOf: (profile) => profile.account?.method,
    async inspect(id, address, profile, signal) {
      const meter = meterAt(id, address, profile);
      const opts = { priority: 'operator' as const, signal };
      // A meter that will not show its customer number is not refused for it: null, and the purchase count decides.
      const customerNo = meter.heldCustomerNumber
        ? await meter.heldCustomerNumber.read(opts).catch((err: unknown) => {
            if (signal.aborted) throw err;
            return null;
          })
        : null;
      const wallet = meter.credit ? await meter.credit.readWallet(opts) : null;
      return { customerNo, purchaseCount: wallet?.count ?? null };
    },
    async open(id, address, profile, customerNo, signal) {
      const wallet = await openMeterAccount(meterAt(id, address, profile), customerNo, id, { priority: 'operator', signal });
      return { customerNo: customerNo.padStart(12, '0'), purchaseCount: wallet?.count ?? null };
    },
  };
}

/** The meter-replace command: one call of the job; its refusals and failures as the station's error codes. */
export function replacementCommandHandlers(job: MeterReplacement): Pick<CommandHandlers, 'meterReplace'> {
  return {
    async meterReplace(cmd, ctx): Promise<CommandOutcome> {
      const out = await job.run(cmd, ctx.signal);
      if (out.status === 'done') return out;
      return { status: out.status, error: { code: out.code, message: out.message }, ...(out.result ? { result: out.result } : {}) };
    },
  };
}

/**
 * A meter's registers and wallet: the point's own meter, or the meter at `address` on its bus (a DL/T 645 address, or
 * `unit N` on a Modbus bus). The wallet is read through the profile's credit port (DL/T 645 or modbus-write); a meter
 * whose profile has none (an energy meter, free-energy registers only) has no balance to move. Throws when it is silent.
 */
async function readMeter(
  point: PointDrivers,
  address: string | undefined,
  profile: DeviceProfile,
  signal: AbortSignal,
): Promise<AssetReading> {
  const drivers = address === undefined ? point : point.probe(address, profile);
  const names = ENERGY_POINTS.filter((n) => profile.points.has(n));
  const values = await drivers.reader.read(names, { priority: 'operator', signal });
  const kwh = (name: string): number | null => {
    const v = values.get(name);
    return v !== undefined && 'v' in v && typeof v.v === 'number' ? v.v : null;
  };
  if (names.length > 0 && names.every((n) => kwh(n) === null)) {
    const first = values.get(names[0]!);
    throw new Error(`its energy registers could not be read (${first && 'error' in first ? first.error : 'no value'})`);
  }
  const wallet = drivers.credit ? await drivers.credit.readWallet({ priority: 'operator', signal }) : undefined;
  return {
    importKwh: kwh('energy.active.import'),
    exportKwh: kwh('energy.active.export'),
    balance: wallet?.balance ?? null,
    overdraft: wallet?.overdraft ?? null,
    purchaseCount: wallet?.count ?? null,
  };
}
