import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dlt645Decoder, encodeFrame, freeze, isReplyTo, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { DeviceProfile } from '../../src/profiles/types.js';
import { SimulatedMeter, startDlt645Simulator, type Dlt645Simulator, type MeterSpec } from '../../src/sim/dlt645/index.js';

const profiles = loadProfiles();
const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;

/** The canonical unit of each point name (device-profiles/README.md), checked independently of the profiles. */
function canonicalUnit(point: string, profile: DeviceProfile): string {
  if (point === 'credit.purchase.last.amount') return profile.credit?.unit === 'energy' ? 'kWh' : 'CNY';
  if (/^(energy\.active|frozen\.daily\.energy\.active)/.test(point)) return 'kWh';
  if (point.startsWith('energy.reactive')) return 'kvarh';
  if (point.startsWith('voltage.')) return 'V';
  if (point.startsWith('current.')) return 'A';
  if (point.startsWith('power.active')) return 'kW';
  if (point.startsWith('power.reactive')) return 'kvar';
  if (point === 'frequency') return 'Hz';
  if (point === 'price.current') return 'CNY/kWh';
  if (['credit.balance.money', 'credit.overdraft', 'credit.limit.hoarding'].includes(point)) return 'CNY';
  if (['credit.balance.energy', 'credit.overdraft.energy'].includes(point)) return 'kWh';
  return '';
}

interface Case {
  id: string;
  meter: MeterSpec;
}
const cases: Case[] = [
  { id: 'dlt645-2007-single-phase-prepaid', meter: { address: '1', kind: 'energy', balance: 61.25, purchaseCount: 4 } },
  {
    id: 'dlt645-2007-single-phase-prepaid-money',
    meter: { address: '2', kind: 'money', balance: 88.88, purchaseCount: 9, hoardingLimit: 999 },
  },
  { id: 'dlt645-2007-three-phase', meter: { address: '3', kind: 'plain', phases: 3 } },
  { id: 'dlt645-1997-single-phase', meter: { address: '4', edition: '1997' } },
];

/** A distinct, realistic, format-exact value for a point, so a wrong identifier or item shows as a wrong number. */
function realistic(name: string, k: number): number | undefined {
  if (name.startsWith('credit.')) return undefined; // set through the meter spec (balance, count) and checked below
  if (name.startsWith('energy.')) return Number((1000 + k * 11.11).toFixed(2));
  if (name.startsWith('voltage.')) return Number((220 + k / 10).toFixed(1));
  if (name.startsWith('power.active')) return Number((0.5 + k / 100).toFixed(4));
  if (name.startsWith('power.reactive')) return Number((0.1 + k / 1000).toFixed(4));
  if (name.startsWith('power.factor')) return Number((0.9 + k / 1000).toFixed(3));
  if (name === 'frequency') return 50.02;
  if (name.startsWith('events.')) return k;
  return undefined;
}

function seeds(profile: DeviceProfile, base: MeterSpec): Record<string, number> {
  const out: Record<string, number> = {};
  let k = 0;
  for (const [name, spec] of profile.points) {
    if (spec.kind !== 'dlt645' || spec.format.kind !== 'bcd' || spec.item !== undefined) continue;
    const value = realistic(name, ++k);
    if (value === undefined) continue;
    try {
      new SimulatedMeter({ ...base, registers: { [spec.di]: value } });
      out[name] = value;
    } catch {
      // Computed by the simulator from its state (current from power, voltage and PF): checked for unit only.
    }
  }
  return out;
}

describe.each(cases)('shipped profile $id, every point read from the simulator', ({ id, meter }) => {
  const profile = profiles.get(id)!;
  let sim: Dlt645Simulator;
  let bus: FrameBus<Frame>;
  let seeded: Record<string, number>;

  beforeAll(async () => {
    seeded = seeds(profile, meter);
    const registers = Object.fromEntries(Object.entries(seeded).map(([name, v]) => [(profile.points.get(name) as { di: string }).di, v]));
    sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [{ ...meter, registers }] } });
    bus = await openBus<Frame>({
      id: 'bus',
      port: `tcp://127.0.0.1:${sim.address!.tcpPort}`,
      line: LINE,
      decoder: new Dlt645Decoder(),
      gapMs: 0,
    });
  });
  afterAll(async () => {
    await bus?.close();
    await sim?.close();
  });

  it('loads, and every point reads with the right value and canonical unit', async () => {
    expect(profile.protocol.startsWith('dlt645')).toBe(true);
    const address = [...sim.meters.keys()][0]!;
    const edition = profile.protocol === 'dlt645-1997' ? '1997' : '2007';
    if (edition === '2007') {
      // Daily-freeze items exist once the meter has frozen.
      const f = freeze(address, 'now');
      await bus.request('operator', { bytes: encodeFrame(f, { preamble: 4 }), match: (r) => isReplyTo(f, r), timeoutMs: 500, retries: 0 });
    }
    const reader = new Dlt645PointReader(new Dlt645Meter({ link: bus, address, edition, timeoutMs: 500 }), profile);
    const names = [...profile.points.keys()];
    const values = await reader.read(names, { priority: 'operator' });
    const snap = sim.meters.get(address)!.snapshot();
    for (const name of names) {
      const v = values.get(name)!;
      expect(v, `${id} ${name}`).not.toHaveProperty('error');
      if (!('v' in v)) continue;
      expect(v.unit, `${id} ${name} unit`).toBe(canonicalUnit(name, profile));
      if (name in seeded) expect(v.v, `${id} ${name}`).toBe(seeded[name]);
    }
    // Values the simulator computes from its state.
    const get = (n: string) => (values.get(n) as { v: number | string }).v;
    if (profile.points.has('credit.balance.energy')) expect(get('credit.balance.energy')).toBe(61.25);
    if (profile.points.has('credit.balance.money')) expect(get('credit.balance.money')).toBe(88.88);
    if (profile.points.has('credit.purchase.count')) expect(get('credit.purchase.count')).toBe(meter.purchaseCount);
    if (profile.points.has('relay.state')) expect(get('relay.state')).toBe(snap.relay.open ? 1 : 0);
    if (profile.points.has('frozen.daily.energy.active.import[1]'))
      expect(get('frozen.daily.energy.active.import[1]')).toBe(get('energy.active.import'));
    if (profile.points.has('clock')) expect(Math.abs(Date.parse(String(get('clock'))) - snap.clockMs)).toBeLessThan(5000);
  });
});
