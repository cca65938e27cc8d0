import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { formatIssue } from '../../src/config/yaml-source.js';
import { allowanceMeters } from '../../src/daemon/allowances.js';
import { previewRound } from '../../src/services/allowances/index.js';
import { splitByShares } from '../../src/devices/subsidy-port.js';
import { parseProfile } from '../../src/profiles/load.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { subsidyVerdict } from '../../src/services/credit.js';

// The free-energy credit method (modbus-subsidy): how an allowance is split over a meter's circuits, how a write is
// judged landed or not from the values committed before it, and what a profile may say.

describe('an allowance split over the circuits by the profile shares', () => {
  it('30 kWh at 2:1 is 20 and 10 kWh; the rounding rest goes to the first circuit, never lost', () => {
    expect(splitByShares(3000, [2, 1])).toEqual([2000, 1000]);
    expect(splitByShares(1001, [2, 1])).toEqual([668, 333]);
    expect(splitByShares(5, [1, 1, 1])).toEqual([3, 1, 1]);
    expect(splitByShares(1500, [1])).toEqual([1500]);
  });
});

describe('whether an absolute write of a free-energy register landed', () => {
  // 15.00 kWh before, 45.00 kWh written (a 30 kWh share), import at 1000.00 kWh at the read.
  const r = { name: 'credit.free.energy.ac', before: 1500, target: 4500, consumedBefore: 100_000 };

  it('landed: the register holds what was written, or less by at most what the meter counted since', () => {
    expect(subsidyVerdict({ ...r, after: 4500 }, 100_000)).toEqual({ kind: 'landed' });
    expect(subsidyVerdict({ ...r, after: 4380 }, 100_120)).toEqual({ kind: 'landed' });
  });

  it('not landed: the register is at or below its value before, and less was used than the share', () => {
    expect(subsidyVerdict({ ...r, after: 1500 }, 100_000)).toEqual({ kind: 'not-landed' });
    expect(subsidyVerdict({ ...r, after: 1200 }, 100_300)).toEqual({ kind: 'not-landed' });
  });

  it('a register whose share rounded to nothing is never written and counts as done', () => {
    expect(subsidyVerdict({ ...r, target: 1500, after: 1400 }, 100_100)).toEqual({ kind: 'landed' });
  });

  it('undecided: as much was used as the share, so a landed write may have been spent; a person decides', () => {
    const v = subsidyVerdict({ ...r, after: 1400 }, 103_100);
    expect(v).toMatchObject({ kind: 'undecided', code: 'SUBSIDY_UNDECIDED' });
  });

  it('another writer: above the value written, or risen but not to it, or the import went back', () => {
    expect(subsidyVerdict({ ...r, after: 4600 }, 100_000)).toMatchObject({ kind: 'mismatch', code: 'SUBSIDY_MISMATCH' });
    expect(subsidyVerdict({ ...r, after: 3000 }, 100_010)).toMatchObject({ kind: 'mismatch', code: 'SUBSIDY_MISMATCH' });
    expect(subsidyVerdict({ ...r, after: 4500 }, 90_000)).toMatchObject({ kind: 'mismatch', code: 'SUBSIDY_MISMATCH' });
  });
});

const base = `id: test-meter
name: Test meter
protocol: modbus-tcp
points:
  energy.active.import: { table: holding, address: 0, type: uint32, scale: 0.01, unit: kWh }
  credit.balance.energy: { table: holding, address: 2, type: uint32, scale: 0.01, unit: kWh }
  credit.purchase.count: { table: holding, address: 4, type: uint16, unit: "" }
  credit.free.energy: { table: holding, address: 6, type: uint32, scale: 0.01, unit: kWh }
  credit.free.energy.ro: { table: input, address: 6, type: uint32, scale: 0.01, unit: kWh }
  voltage.a: { table: holding, address: 8, type: uint16, scale: 0.1, unit: V }
groups:
  credit: { interval: 5m, points: [credit.balance.energy] }
credit:
  - method: modbus-write
    unit: energy
    registers:
      - { field: purchaseCount, address: 0x0200, type: uint16 }
      - { field: amount, address: 0x0201, type: uint32, scale: 0.01 }
    readBack: { count: credit.purchase.count, balance: credit.balance.energy }
  - method: modbus-subsidy
    unit: energy
    registers:
      - { point: credit.free.energy }
    consumed: energy.active.import
`;

function parse(text: string) {
  return parseProfile(text, '/profiles/test-meter.yaml');
}
function issuesOf(text: string) {
  const r = parse(text);
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.issues.map((i) => ({ line: i.line, path: i.path, message: i.message }));
}

describe('a profile naming a purchase method and a free-energy method', () => {
  it('loads both: top-ups use the purchase method, allowances the free-energy registers (share 1 by default)', () => {
    const r = parse(base);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.profile.credit?.method).toBe('modbus-write');
    expect(r.profile.subsidy).toEqual({
      method: 'modbus-subsidy',
      unit: 'energy',
      registers: [{ point: 'credit.free.energy', share: 1 }],
      consumed: 'energy.active.import',
    });
  });

  it('the shipped dormitory profile has two circuits at 2:1 beside its purchase method', () => {
    const p = loadProfiles().get('modbus-dorm-subsidy')!;
    expect(p.credit?.method).toBe('modbus-write');
    expect(p.subsidy?.registers).toEqual([
      { point: 'credit.free.energy.ac', share: 2 },
      { point: 'credit.free.energy.lighting', share: 1 },
    ]);
  });

  it('each mistake is one error on its own line', () => {
    expect(issuesOf(base.replace('- { point: credit.free.energy }', '- { point: credit.free.energy.ro }'))).toEqual([
      {
        line: 23,
        path: 'credit.1.registers.0.point',
        message: '"credit.free.energy.ro" is a input point; the meter can only take writes to holding registers',
      },
    ]);
    expect(issuesOf(base.replace('- { point: credit.free.energy }', '- { point: voltage.a }'))).toEqual([
      { line: 23, path: 'credit.1.registers.0.point', message: '"voltage.a" is in V; a free-energy method reads and writes kWh' },
    ]);
    expect(issuesOf(base.replace('- { point: credit.free.energy }', '- { point: credit.balance.energy }'))).toEqual([
      {
        line: 23,
        path: 'credit.1.registers.0.point',
        message: '"credit.balance.energy" is the purchase wallet of the other credit method, not a free-energy register',
      },
    ]);
    expect(issuesOf(base.replace('consumed: energy.active.import', 'consumed: energy.nowhere'))).toEqual([
      { line: 24, path: 'credit.1.consumed', message: 'no point named "energy.nowhere" in this profile' },
    ]);
    expect(issuesOf(base.replace('  - method: modbus-subsidy\n    unit: energy', '  - method: modbus-subsidy\n    unit: money'))).toEqual([
      { line: 21, path: 'credit.1.unit', message: 'a free-energy register holds kWh: unit is energy' },
    ]);
    const twoPurchases = base.replace(
      '  - method: modbus-subsidy',
      '  - method: dlt645-plain\n    unit: energy\n    readBack: { count: credit.purchase.count, balance: credit.balance.energy }\n  - method: modbus-subsidy',
    );
    expect(issuesOf(twoPurchases)).toEqual([
      { line: 20, path: 'credit.1.method', message: 'a profile has at most one purchase method (modbus-write is the other)' },
    ]);
  });
});

describe('a round planned over meters with and without free-energy registers', () => {
  const config = (amount: string) =>
    parseConfig(
      `gateway: { id: gw-a, dataDir: ./data, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: mb, port: /dev/ttyUSB1, protocol: modbus-rtu }
meters:
  - { id: room-1, bus: mb, unit: 1, profile: modbus-dorm-subsidy, tags: [dorm] }
  - { id: room-2, bus: mb, unit: 2, profile: modbus-dorm-prepaid, tags: [dorm] }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    ${amount}
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2026-09-07" }
`,
      'meterd.yaml',
      { env: {}, profiles: loadProfiles() },
    );

  it('the dry run says which meter gets free energy on which circuit, and which a purchase', () => {
    const r = config('energyKwh: 30');
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const loads = previewRound(r.config.allowances, allowanceMeters(r.config), { allowance: 'dorm-free', term: 't1', round: 'r1' });
    expect(loads.map((l) => [l.meter, l.unitMatches, l.freeEnergy])).toEqual([
      [
        'room-1',
        true,
        [
          { register: 'credit.free.energy.ac', amount: 2000 },
          { register: 'credit.free.energy.lighting', amount: 1000 },
        ],
      ],
      ['room-2', true, undefined],
    ]);
  });

  it('config check warns that a yuan allowance does not fit the kWh free-energy registers', () => {
    const r = config('amountFen: 1500');
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    expect(r.config.warnings.map(formatIssue)).toEqual([
      expect.stringMatching(/allowances\.0\.amountFen: 2 targeted meter\(s\) take no money credit \(room-1, room-2\)/),
    ]);
  });
});
