import { thresholdsFor, type GatewayConfig, type MeterConfig } from '../config/index.js';
import { meterModel } from '../services/alerts/model.js';
import type { AlertMeter } from '../services/alerts/service.js';
import type { ClockTarget } from '../services/clock-keeper.js';
import type { PointDrivers } from './point-drivers.js';

/**
 * What the per-point services hold of the meter serving a point, built from its config entry (the register's address
 * and profile): the same functions at start and at a replacement's rebind, so a swap and a restart give one behaviour.
 */

/** The alert detectors' view: the model of the profile (status bits, counters, relay bits) and the point's thresholds. */
export function alertMeterOf(config: GatewayConfig, m: MeterConfig): AlertMeter {
  // Thresholds follow the point (id, tags, district), not the model: a swap keeps them.
  return { meterId: m.id, model: meterModel(m.profile, m.tags), settings: thresholdsFor(config.alerts, m) };
}

/**
 * The clock keeper's view: the profile's group holding `clock` gives the interval (or its `polling.intervals`
 * override); none for a model without a clock or a meter that is not DL/T 645 (no broadcast time there).
 */
export function clockTargetOf(config: GatewayConfig, m: MeterConfig, point: PointDrivers): ClockTarget | undefined {
  const group = m.profile.groups.find((g) => g.points.includes('clock'));
  if (!group || !point.dlt645) return undefined;
  return {
    meterId: m.id,
    busId: m.busId,
    intervalMs: config.polling.intervalsMs[group.name] ?? group.intervalMs,
    readClock: async () => {
      // The point's meter at the time of the read; a read that spans a swap is not the new meter's clock.
      const generation = point.generation;
      const meter = point.dlt645;
      if (!meter) throw point.replacedError();
      const { meterClock } = await meter.clockSkewMs({ priority: 'alarm' });
      if (generation !== point.generation) throw point.replacedError();
      return { meterClock, meterMs: new Date(meterClock).getTime() };
    },
  };
}
