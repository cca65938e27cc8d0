import type { DeviceProfile } from '../../profiles/types.js';
import { COUNTER_KINDS, CONDITION_KINDS, type AlertKind } from './kinds.js';
import type { MeterModel } from './detectors.js';

/** DL/T 645 energy registers are XXXXXX.XX kWh: they wrap at 1,000,000. */
const DLT645_ENERGY_MODULUS = 1_000_000;
/** Modbus meters count in floats or 32-bit integers: no wrap a gateway will see. */
const NO_WRAP = Number.MAX_SAFE_INTEGER;

/**
 * Where a meter model reports its faults, from its profile: the status bits whose condition names an alert kind
 * (built-in names, or the profile's own `alerts.conditions`), the event counters, the relay bits; and the tags.
 */
export function meterModel(profile: DeviceProfile, tags: readonly string[]): MeterModel {
  // Meters of one profile share one model (two with the pv tag): a campus of 2,000 meters has a handful of models.
  const pv = tags.includes('pv');
  const models = shared.get(profile) ?? new Map<boolean, MeterModel>();
  shared.set(profile, models);
  const model = models.get(pv) ?? buildModel(profile, pv);
  models.set(pv, model);
  return model;
}

const shared = new WeakMap<DeviceProfile, Map<boolean, MeterModel>>();

function buildModel(profile: DeviceProfile, pv: boolean): MeterModel {
  const conditions: Record<string, AlertKind> = { ...CONDITION_KINDS, ...profile.alerts?.conditions };
  const statusBits: MeterModel['statusBits'][number][] = [];
  for (const s of profile.status) {
    const exact = conditions[s.condition];
    if (exact) {
      statusBits.push({ point: s.point, bit: s.bit, kind: exact });
      continue;
    }
    // `voltage-loss.a`: the kind of `voltage-loss`, on phase a.
    const dot = s.condition.lastIndexOf('.');
    const base = dot > 0 ? conditions[s.condition.slice(0, dot)] : undefined;
    if (base) statusBits.push({ point: s.point, bit: s.bit, kind: base, phase: s.condition.slice(dot + 1) });
  }
  const counterKinds: Record<string, AlertKind> = { ...COUNTER_KINDS, ...profile.alerts?.counters };
  const counters = Object.entries(counterKinds)
    .filter(([point]) => profile.points.has(point))
    .map(([point, kind]) => ({ point, kind }));
  const state = profile.relay?.method === 'dlt645-remote-control' ? profile.relay.state : undefined;
  return {
    statusBits,
    counters,
    ...(state?.commandBit !== undefined ? { relay: { point: state.point, actualBit: state.actualBit, commandBit: state.commandBit } } : {}),
    pv,
    phases: profile.points.has('voltage.b') || profile.points.has('current.b') ? 3 : 1,
    energyModulus: profile.protocol.startsWith('dlt645') ? DLT645_ENERGY_MODULUS : NO_WRAP,
  };
}
