import { describe, expect, it } from 'vitest';
import { decodeValue, findDataItem, parseReadReply, plainValue, readData } from '../../protocols/dlt645/index.js';
import { SimulatedMeter, type MeterSpec } from '../../src/sim/dlt645/index.js';

// The simulator's side of the line-loss scenarios (docs/lineloss.md): what a meter registers and freezes when its
// register rolls over, when it lost a phase, when its load goes around it, when its calendar is a day off.

const A = '000000000777';
const T0 = new Date(2026, 0, 15, 0, 0, 0).getTime();
const DAY = 86_400_000;
const meter = (spec: Partial<MeterSpec> = {}) => new SimulatedMeter({ address: A, kind: 'plain', ...spec }, { startMs: T0 });

function read(m: SimulatedMeter, di: string, now: number): unknown {
  const [reply] = m.handle(readData(m.address, di), now);
  if (!reply) throw new Error('no reply');
  const r = parseReadReply(reply, '2007');
  if (!r.ok) throw new Error(r.error.message);
  const v = decodeValue(findDataItem(di)!.format, r.value.value);
  if (!v.ok) throw new Error(v.error.message);
  return plainValue(v.value);
}

describe('simulated metering faults and freezes', () => {
  it('the forward register rolls over from 999999.99 to 0, in the register and in the freeze', () => {
    const m = meter({ powerKw: 1, registers: { 'energy.active.import': 999_990, 'energy.active.import.t1': 999_990 } });
    expect(read(m, '00010000', T0 + 20 * 3_600_000)).toBe(10);
    expect(read(m, '05060101', T0 + DAY + 60_000)).toEqual([14, 14, 0, 0, 0]);
  });

  it('a three-phase meter that lost a phase registers two thirds; a bypassed one registers nothing', () => {
    const lost = meter({ phases: 3, powerKw: 3 });
    lost.setMeteringFaults({ lostPhases: 1 }, T0);
    expect(read(lost, '00010000', T0 + 3_600_000)).toBe(2);
    const bypassed = meter({ powerKw: 3 });
    bypassed.setMeteringFaults({ bypass: true }, T0 + 3_600_000);
    expect(read(bypassed, '00010000', T0 + 5 * 3_600_000)).toBe(3);
    expect(() => lost.setMeteringFaults({ lostPhases: 4 }, T0)).toThrow(/lostPhases is a whole number from 0 to 3/);
  });

  it('freezes stamped a day off keep the real midnight’s energy under the wrong date', () => {
    const m = meter({ powerKw: 1 });
    m.setMeteringFaults({ freezeStampDays: -1 }, T0);
    expect(read(m, '05060001', T0 + DAY + 60_000)).toBe('2026-01-15T00:00');
    expect(read(m, '05060101', T0 + DAY + 60_000)).toEqual([24, 24, 0, 0, 0]);
  });

  it('freezes the reverse energy into 05060201', () => {
    const m = meter({ powerKw: -0.5 });
    expect(read(m, '05060201', T0 + DAY + 60_000)).toEqual([12, 12, 0, 0, 0]);
    expect(read(m, '05060101', T0 + DAY + 60_000)).toEqual([0, 0, 0, 0, 0]);
  });
});
