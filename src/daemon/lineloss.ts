import type { Clock, Timers } from '../clock.js';
import type { GatewayConfig } from '../config/index.js';
import { dlt645DailyFreezes } from '../devices/dlt645-freezes.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import type { Logger } from '../log.js';
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
    drivers: ReadonlyMap<string, { busId: string; dlt645?: Dlt645Meter }>;
    onCommitted: () => void;
    /** The gateway's alerts: a district's line-loss alert is raised and cleared there, on its supply meter. */
    alerts?: Pick<AlertService, 'observe'>;
  },
): LinelossService {
  const districts = districtShapes(config);
  const meters = new Map<string, LinelossMeter>();
  const profiles = new Map(config.meters.map((m) => [m.id, m.profile]));
  for (const d of districts) {
    for (const id of [d.supplyMeter, ...d.members]) {
      const driver = parts.drivers.get(id);
      const profile = profiles.get(id);
      if (driver === undefined || profile === undefined) continue;
      const freezes = driver.dlt645 ? dlt645DailyFreezes(driver.dlt645, profile) : undefined;
      meters.set(id, { busId: driver.busId, ...(freezes ? { freezes } : {}) });
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
