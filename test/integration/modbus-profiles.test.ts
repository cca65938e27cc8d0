/**
 * Every shipped Modbus profile, read end to end: the real modbus-serial client (through ModbusLink and ModbusMeter)
 * against the profile-driven simulator speaking Modbus TCP on loopback. Known values go in as engineering values;
 * every point of the profile must come back as exactly that value in its canonical unit.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeValue, planReads } from '../../protocols/modbus/index.js';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfileFile, loadProfiles } from '../../src/profiles/registry.js';
import type { DeviceProfile } from '../../src/profiles/types.js';
import type { MeterReader } from '../../src/services/poller.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';

/** One distinct, known value per canonical point, each exact in every shipped profile's register type and scale. */
const KNOWN: Record<string, number> = {
  'voltage.a': 231.4,
  'voltage.b': 229.7,
  'voltage.c': 232.6,
  'voltage.ab': 400.3,
  'voltage.bc': 399.8,
  'voltage.ca': 401.2,
  'current.a': 5.12,
  'current.b': 4.87,
  'current.c': 6.05,
  'power.active': 1.132,
  'power.active.a': 0.381,
  'power.active.b': 0.362,
  'power.active.c': 0.389,
  'power.apparent': 1.155,
  'power.reactive': 0.231,
  'power.factor': 0.982,
  'power.factor.a': 0.981,
  'power.factor.b': 0.983,
  'power.factor.c': 0.979,
  frequency: 49.98,
  'energy.active.import': 12345.67,
  'energy.active.export': 23.45,
  'energy.active.total': 12369.12,
  'energy.active.import.a': 4115.22,
  'energy.active.import.b': 4114.98,
  'energy.active.import.c': 4115.47,
  'energy.active.export.a': 7.81,
  'energy.active.export.b': 7.83,
  'energy.active.export.c': 7.85,
  'energy.reactive.import': 812.4,
  'energy.reactive.export': 3.1,
  'thd.voltage': 2.3,
  'thd.voltage.a': 2.1,
  'thd.voltage.b': 2.4,
  'thd.voltage.c': 2.2,
  'ct.ratio': 40,
  'pt.ratio': 1.5,
  'credit.balance.energy': 87.65,
  'credit.purchase.count': 7,
  'credit.free.energy.ac': 12.34,
  'credit.free.energy.lighting': 5.6,
  // Bits 0 and 2: relay open, cover open.
  'status.word1': 5,
};

/** The canonical unit of each point (device-profiles/README.md), which every profile must report. */
function canonicalUnit(point: string): string {
  if (/^voltage\./.test(point)) return 'V';
  if (/^current\./.test(point)) return 'A';
  if (/^power\.active/.test(point)) return 'kW';
  if (point === 'power.apparent') return 'kVA';
  if (point === 'power.reactive') return 'kvar';
  if (point === 'frequency') return 'Hz';
  if (/^energy\.active/.test(point) || point === 'credit.balance.energy' || /^credit\.free\.energy/.test(point)) return 'kWh';
  if (/^energy\.reactive/.test(point)) return 'kvarh';
  if (/^thd\./.test(point)) return '%';
  return '';
}

const profiles = loadProfiles();
const MODBUS_PROFILES = [
  'eastron-sdm120',
  'eastron-sdm630',
  'chint-ddsu666',
  'chint-dtsu666',
  'modbus-dorm-prepaid',
  'modbus-dorm-subsidy',
];

interface Rig {
  sim: ModbusSimulator;
  link: ModbusLink;
  /** Typed as what the poller drives, so the driver keeps satisfying it. */
  meter: ModbusMeter & MeterReader;
}

const open: Rig[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) {
    await r.link.close();
    await r.sim.close();
  }
});

async function rig(profile: DeviceProfile, values: Record<string, number>): Promise<Rig> {
  const sim = await startModbusSimulator({ profile, tcpPort: 0, values });
  const link = new ModbusLink({ id: 'bus-mb', port: `tcp://127.0.0.1:${sim.port}`, protocol: 'modbus-tcp', line: profile.line, gapMs: 0 });
  const r = { sim, link, meter: new ModbusMeter({ link, unit: 1, profile, meterId: profile.id }) };
  open.push(r);
  await link.open();
  return r;
}

function modbusPointNames(profile: DeviceProfile): string[] {
  return [...profile.points.values()].filter((p) => p.kind === 'modbus').map((p) => p.name);
}

describe('every shipped Modbus profile, every point, through ModbusLink and ModbusMeter over Modbus TCP', () => {
  it('the shipped Modbus profiles are the five this test covers', () => {
    expect(
      [...profiles.values()]
        .filter((p) => p.protocol.startsWith('modbus'))
        .map((p) => p.id)
        .sort(),
    ).toEqual([...MODBUS_PROFILES].sort());
  });

  it.each(MODBUS_PROFILES)('%s: each point reads back as the value the simulator holds, in its canonical unit', async (id) => {
    const profile = profiles.get(id)!;
    const names = modbusPointNames(profile);
    expect(
      names.filter((n) => !(n in KNOWN)),
      'points without a known value in this test',
    ).toEqual([]);
    const values = Object.fromEntries(names.map((n) => [n, KNOWN[n]!]));
    const { sim, meter } = await rig(profile, values);

    const read = await meter.read([...profile.points.keys()], { priority: 'poll' });

    const expected: Record<string, unknown> = {};
    for (const name of profile.points.keys()) {
      const spec = profile.points.get(name)!;
      const v = spec.kind === 'derived' ? Math.floor(KNOWN[spec.from]! / 2 ** spec.bit) % 2 : KNOWN[name]!;
      expected[name] = { v, unit: canonicalUnit(name) };
      expect(sim.getValue(name)).toBe(v);
    }
    expect(Object.fromEntries(read)).toEqual(expected);
  });

  it('chint-dtsu666: the registers hold raw 2314 (float32) and the reading is exactly 231.4 V, not 231.40000000000003', async () => {
    const profile = profiles.get('chint-dtsu666')!;
    const { link, meter } = await rig(profile, { 'voltage.a': 231.4, 'current.a': 5.12, 'power.active': 1.132 });

    const raw = await link.readRegisters('operator', 1, 'holding', 0x2006, 2);
    expect(decodeValue(raw, 'float32', 'ABCD')).toEqual({ ok: true, value: 2314 });
    const read = await meter.read(['voltage.a', 'current.a', 'power.active'], { priority: 'operator' });
    expect(read.get('voltage.a')).toEqual({ v: 231.4, unit: 'V' });
    expect(read.get('current.a')).toEqual({ v: 5.12, unit: 'A' });
    expect(read.get('power.active')).toEqual({ v: 1.132, unit: 'kW' });
  });

  it('a derived point pulls in its source: asking only for relay.state reads status.word1 and reports its bit 0', async () => {
    const profile = profiles.get('modbus-dorm-prepaid')!;
    const { sim, meter } = await rig(profile, { 'status.word1': 0b101 });

    expect(await meter.read(['relay.state'], { priority: 'poll' })).toEqual(new Map([['relay.state', { v: 1, unit: '' }]]));
    sim.setValue('relay.state', 0);
    expect(sim.getValue('status.word1')).toBe(0b100);
    expect(await meter.read(['relay.state', 'status.word1'], { priority: 'poll' })).toEqual(
      new Map([
        ['relay.state', { v: 0, unit: '' }],
        ['status.word1', { v: 4, unit: '' }],
      ]),
    );
  });

  it('a point the profile does not have is an UNKNOWN_POINT value, and the others are still read', async () => {
    const profile = profiles.get('eastron-sdm120')!;
    const { meter } = await rig(profile, { 'voltage.a': 231.4 });

    const read = await meter.read(['voltage.a', 'voltage.b'], { priority: 'poll' });
    expect(read.get('voltage.a')).toEqual({ v: 231.4, unit: 'V' });
    expect(read.get('voltage.b')).toMatchObject({ error: 'UNKNOWN_POINT' });
  });
});

describe('block planning on the wire', () => {
  it('eastron-sdm630: a full read of 30 points takes exactly the 10 requests the planner promises', async () => {
    const profile = profiles.get('eastron-sdm630')!;
    const { sim, meter } = await rig(profile, {});
    const names = modbusPointNames(profile);
    const plan = planReads(
      names.map((n) => {
        const p = profile.points.get(n)!;
        if (p.kind !== 'modbus') throw new Error('not Modbus');
        return { name: n, table: p.table, address: p.address, type: p.type };
      }),
      { maxGap: profile.maxGap },
    );
    if (!plan.ok) throw new Error(plan.error.message);

    const before = sim.stats().requests;
    const read = await meter.read(names, { priority: 'poll' });

    expect(names).toHaveLength(30);
    expect(plan.value).toHaveLength(10);
    expect(sim.stats().requests - before).toBe(plan.value.length);
    expect([...read.values()].filter((v) => 'error' in v)).toEqual([]);
  });
});

describe('a meter model that exists only as a YAML file (test/fixtures/profiles/acme-dds100.yaml)', () => {
  const profile = loadProfileFile(fileURLToPath(new URL('../fixtures/profiles/acme-dds100.yaml', import.meta.url)));
  const values = {
    'energy.active.import': 98765.43,
    'energy.active.export': 12.34,
    'energy.reactive.import': 4567.8,
    'voltage.a': 231.4,
    'current.a': 5.12,
    'power.active': -0.85,
    frequency: 49.98,
    'status.word1': 0b1000,
    'ct.ratio': 40,
    'status.cover-open': 1,
  };

  it('is read correctly with no code change: CDAB and DCBA words, signed int16, scale with offset, a status bit, a discrete input', async () => {
    const { meter } = await rig(profile, values);

    const read = await meter.read([...profile.points.keys()], { priority: 'poll' });

    expect(Object.fromEntries(read)).toEqual({
      'energy.active.import': { v: 98765.43, unit: 'kWh' },
      'energy.active.export': { v: 12.34, unit: 'kWh' },
      'energy.reactive.import': { v: 4567.8, unit: 'kvarh' },
      'voltage.a': { v: 231.4, unit: 'V' },
      'current.a': { v: 5.12, unit: 'A' },
      'power.active': { v: -0.85, unit: 'kW' },
      frequency: { v: 49.98, unit: 'Hz' },
      'status.word1': { v: 8, unit: '' },
      'relay.state': { v: 1, unit: '' },
      'ct.ratio': { v: 40, unit: '' },
      'status.cover-open': { v: 1, unit: '' },
    });
  });

  it('its registers carry the orders the file names: 9876543 low word first, 45678 fully little-endian, −850 and (49.98 − 45) / 0.01', async () => {
    const { link } = await rig(profile, values);

    expect(await link.readRegisters('operator', 1, 'holding', 0x0010, 2)).toEqual([0xb43f, 0x0096]);
    expect(await link.readRegisters('operator', 1, 'holding', 0x0014, 2)).toEqual([0x6eb2, 0x0000]);
    expect(await link.readRegisters('operator', 1, 'holding', 0x0022, 1)).toEqual([0xfcae]);
    expect(await link.readRegisters('operator', 1, 'holding', 0x0025, 1)).toEqual([498]);
  });

  it('its full read of 10 register and bit points bridges the two-register gap the file allows (maxGap 2): 5 requests', async () => {
    const { sim, meter } = await rig(profile, values);

    const before = sim.stats().requests;
    await meter.read([...profile.points.keys()], { priority: 'poll' });

    expect(sim.stats().requests - before).toBe(5);
  });
});
