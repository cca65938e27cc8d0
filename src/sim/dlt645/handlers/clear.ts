import { diFromBytes, findDataItemByPoint, type Frame } from '../../../../protocols/dlt645/index.js';
import { authorised, COUNTER_POINTS, ERR, errReply, okReply, type Counter, type MeterState } from '../meter-state.js';

/** 0x19 demand clear: the maximum demand registers (01xxxxxx). */
export function demandClear(m: MeterState, req: Frame): Frame {
  const refused = authorised(m, req, 8);
  if (refused) return refused;
  for (const di of [...m.registers.keys()]) if (di.startsWith('01')) m.registers.delete(di);
  m.counters.demandClear++;
  return okReply(m, req);
}

/** 0x1A meter clear: energy, demand, freezes and event counts; refused by a prepaid meter, which keeps its wallet. */
export function meterClear(m: MeterState, req: Frame): Frame {
  const refused = authorised(m, req, 8);
  if (refused) return refused;
  // Local fee-control meters keep their wallet and energy: remote clear is refused (docs/reference/dlt645.md § Function codes 2007).
  if (m.wallet) return errReply(m, req, ERR.other);
  m.energy.clear();
  for (const di of [...m.registers.keys()]) if (di.startsWith('01')) m.registers.delete(di);
  for (const k of Object.keys(m.counters) as Counter[]) m.counters[k] = 0;
  m.relay.tripCount = 0;
  m.relay.closeCount = 0;
  m.counters.meterClear = 1;
  return okReply(m, req);
}

/** 0x1B: FFFFFFFF clears every event count; another DI clears the counts whose DI3..DI1 it shares. */
export function eventClear(m: MeterState, req: Frame): Frame {
  const refused = authorised(m, req, 12);
  if (refused) return refused;
  const target = diFromBytes(req.data.subarray(8, 12));
  const all = target === 'FFFFFFFF';
  const matches = (point: string) => all || findDataItemByPoint(point, m.edition)?.di.slice(0, 6) === target.slice(0, 6);
  let cleared = 0;
  for (const [point, counter] of Object.entries(COUNTER_POINTS)) {
    if (counter === 'eventClear' || counter === 'meterClear' || !matches(point)) continue;
    m.counters[counter] = 0;
    cleared++;
  }
  if (matches('events.relay-trip.count')) {
    m.relay.tripCount = 0;
    cleared++;
  }
  if (matches('events.relay-close.count')) {
    m.relay.closeCount = 0;
    cleared++;
  }
  if (cleared === 0) return errReply(m, req, ERR.noData);
  m.counters.eventClear++;
  return okReply(m, req);
}
