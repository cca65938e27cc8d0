import type { Clock, Timers } from '../clock.js';
import type { GatewayConfig } from '../config/index.js';
import { dlt645DailyFreezes, type DailyFreezeSource } from '../devices/dlt645-freezes.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import type { Logger } from '../log.js';
import type { DeviceProfile } from '../profiles/types.js';
import { LinelossService, type DistrictShape, type LinelossMeter } from '../services/lineloss/index.js';
import type { AlertService } from '../services/alerts/service.js';
import type { LinelossAlert } from '../services/lineloss/alerts.js';
import type { Store, Tx } from '../store/index.js';

/**
 * The line-loss job decides when a district's alert starts and ends (after `alertAfterDays` abnormal days, at the next
 * qualified day); the alerts service makes it an episode like any other: raised once, cleared once, in alerts/active.
 */
export function linelossAlertsSink(alerts: Pick<AlertService, 'observe'>): (tx: Tx, alert: LinelossAlert) => void {
  return (tx, a) =>
    alerts.observe(
      a.meter,
      [
        {
          kind: a.kind,
          source: `lineloss.${a.district}`,
          bad: a.state === 'raised',
          clearAfter: 1,
          ...(a.state === 'raised' ? { evidence: { district: a.district, ...a.evidence } } : {}),
        },
      ],
      tx,
    );
}

/** The districts as the line-loss computation sees them: members are the meters naming the district, less its supply meter. */
export function districtShapes(config: Pick<GatewayConfig, 'districts' | 'meters'>): DistrictShape[] {
  return config.districts
    .filter((d) => d.supplyMeter !== undefined)
    .map((d) => {
      const members = config.meters.filter((m) => m.district === d.id && m.id !== d.supplyMeter);
      return {
        id: d.id,
        supplyMeter: d.supplyMeter!,
        ctRatio: d.ctRatio,
        ptRatio: d.ptRatio,
        members: members.map((m) => m.id),
        pvMembers: new Set(members.filter((m) => m.tags.includes('pv')).map((m) => m.id)),
        lineloss: d.lineloss,
      };
    });
}

/** The line-loss job of a gateway: its districts, each meter's daily freezes through its DL/T 645 driver. */
export function linelossService(
  config: GatewayConfig,
  parts: {
    store: Store;
    clock: Clock;
    timers: Timers;
    logger: Logger;
    drivers: ReadonlyMap<string, LinelossPoint>;
    onCommitted: () => void;
    /** The gateway's alerts: a district's line-loss alert is raised and cleared there, on its supply meter. */
    alerts?: Pick<AlertService, 'observe'>;
  },
): LinelossService {
  const districts = districtShapes(config);
  const meters = new Map<string, LinelossMeter>();
  for (const d of districts) {
    for (const id of [d.supplyMeter, ...d.members]) {
      const point = parts.drivers.get(id);
      if (point !== undefined) meters.set(id, new PointFreezes(point));
    }
  }
  return new LinelossService({
    store: parts.store,
    clock: parts.clock,
    timers: parts.timers,
    logger: parts.logger,
    timeZone: config.gateway.timeZone,
    districts,
    meters,
    settings: config.lineloss,
    retentionDays: config.storage.retentionDays,
    onCommitted: parts.onCommitted,
    ...(parts.alerts ? { alertSink: linelossAlertsSink(parts.alerts) } : {}),
  });
}

/** A point as line loss reads it: its bus, and the meter serving it now with that meter's profile. */
export interface LinelossPoint {
  readonly busId: string;
  readonly dlt645?: Dlt645Meter | undefined;
  readonly profile: DeviceProfile;
}

/**
 * A point's daily freezes through the meter serving it when they are read: after a replacement the new meter's, by its
 * profile's registers (one source kept per meter installed, not one per read).
 */
class PointFreezes implements LinelossMeter {
  #meter: Dlt645Meter | undefined;
  #freezes: DailyFreezeSource | undefined;

  constructor(private readonly point: LinelossPoint) {}

  get busId(): string {
    return this.point.busId;
  }

  get freezes(): DailyFreezeSource | undefined {
    const meter = this.point.dlt645;
    if (meter !== this.#meter) {
      this.#meter = meter;
      this.#freezes = meter ? dlt645DailyFreezes(meter, this.point.profile) : undefined;
    }
    return this.#freezes;
  }
}
