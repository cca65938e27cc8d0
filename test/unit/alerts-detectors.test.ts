import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS } from '../../src/config/index.js';
import { detect, type DetectorMemory, type MeterModel } from '../../src/services/alerts/detectors.js';
import { meterModel } from '../../src/services/alerts/model.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { PointValue } from '../../src/store/index.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 11, 1, 8, 0, 0);
const profiles = loadProfiles();
const single = meterModel(profiles.get('dlt645-2007-single-phase-prepaid-money')!, []);
const three = meterModel(profiles.get('dlt645-2007-three-phase')!, []);
const v = (x: number | string, unit = ''): PointValue => ({ v: x, unit });
const kinds = (obs: ReturnType<typeof detect>) => obs.filter((o) => o.bad).map((o) => o.kind);

function run(model: MeterModel, steps: [number, Record<string, PointValue>][], memory: DetectorMemory = {}) {
  return steps.map(([min, values]) => detect(model, DEFAULT_THRESHOLDS, memory, T0 + min * MIN, values));
}

describe('the profile decides where a meter reports its faults', () => {
  it('maps status conditions to kinds, with the phase of a per-phase word', () => {
    expect(single.statusBits.map((s) => `${s.point}.${s.bit}:${s.kind}`)).toEqual(
      expect.arrayContaining([
        'status.word1.2:battery-low',
        'status.word1.3:battery-low',
        'status.word1.4:reverse-power',
        'status.word1.8:relay-mismatch',
      ]),
    );
    expect(three.statusBits).toContainEqual({ point: 'status.word5', bit: 7, kind: 'phase-break', phase: 'b' });
    expect(three.statusBits).toContainEqual({ point: 'status.word7', bit: 9, kind: 'cover-open' });
    expect(single.counters).toContainEqual({ point: 'events.cover-open.count', kind: 'cover-open' });
    expect(single.relay).toEqual({ point: 'status.word3', actualBit: 4, commandBit: 6 });
    expect(three.phases).toBe(3);
    expect(single.phases).toBe(1);
  });
});

describe('detectors', () => {
  it('judge nothing on a value that is missing or failed', () => {
    const [obs] = run(single, [[0, { 'status.word1': { error: 'METER_TIMEOUT' }, 'energy.active.import': { error: 'NOT_AVAILABLE' } }]]);
    expect(obs).toEqual([]);
  });

  it('read a status bit as its kind, with the word as evidence', () => {
    const [obs] = run(single, [[0, { 'status.word1': v(0b1100) }]]);
    expect(kinds(obs!)).toEqual(['battery-low', 'battery-low']);
    expect(obs!.find((o) => o.bad)!.evidence).toEqual({ 'status.word1': 12, bit: 2 });
  });

  it('see a register that went down, but not one that wrapped past 999999.99', () => {
    const memory: DetectorMemory = {};
    const [, down, again] = run(
      single,
      [
        [0, { 'energy.active.import': v(1200.5) }],
        [15, { 'energy.active.import': v(1199.9) }],
        [30, { 'energy.active.import': v(1200.6) }],
      ],
      memory,
    );
    expect(kinds(down!)).toEqual(['energy-backwards']);
    expect(down!.find((o) => o.bad)!.evidence).toMatchObject({ lastAcceptedKwh: 1200.5, readKwh: 1199.9 });
    expect(kinds(again!)).toEqual([]);
    const wrap: DetectorMemory = {};
    const [, over] = run(
      single,
      [
        [0, { 'energy.active.import': v(999999.5) }],
        [15, { 'energy.active.import': v(0.3) }],
      ],
      wrap,
    );
    expect(kinds(over!)).toEqual([]);
    expect(wrap.energy!.kwh).toBe(0.3);
  });

  it('call a register stuck after 15 minutes unchanged while the power implies at least 0.1 kWh, and not at zero load', () => {
    const loaded: [number, Record<string, PointValue>][] = [[0, { 'energy.active.import': v(100), 'power.active': v(1.2, 'kW') }]];
    for (let m = 1; m <= 16; m++) loaded.push([m, { 'power.active': v(1.2, 'kW') }]);
    loaded.push([16, { 'energy.active.import': v(100) }]);
    const obs = run(single, loaded);
    expect(kinds(obs.at(-1)!)).toEqual(['energy-stuck']);
    expect(obs.at(-1)!.find((o) => o.bad)!.evidence).toMatchObject({ importKwh: 100, impliedKwh: 0.32 });

    const idle: [number, Record<string, PointValue>][] = [[0, { 'energy.active.import': v(100), 'power.active': v(0, 'kW') }]];
    for (let m = 1; m <= 60; m++) idle.push([m, { 'power.active': v(0.002, 'kW') }]);
    idle.push([60, { 'energy.active.import': v(100) }]);
    expect(kinds(run(single, idle).at(-1)!)).toEqual([]);
  });

  it('call energy that rose 8 times faster than the power allows a runaway, 5 times an over-difference warning, 1.2 times nothing', () => {
    const window = (kwhAfter: number) => {
      const steps: [number, Record<string, PointValue>][] = [[0, { 'energy.active.import': v(10), 'power.active': v(1, 'kW') }]];
      for (let m = 1; m <= 15; m++) steps.push([m, { 'power.active': v(1, 'kW') }]);
      steps.push([15, { 'energy.active.import': v(kwhAfter) }]);
      return run(single, steps)
        .at(-1)!
        .find((o) => o.kind === 'energy-runaway')!;
    };
    expect(window(12)).toMatchObject({ bad: true, evidence: { ratio: 8 } });
    expect(window(11.25)).toMatchObject({ bad: true, severity: 'warning', evidence: { level: 'over-difference', ratio: 5 } });
    expect(window(10.3)).toMatchObject({ bad: false });
  });

  it('treat export rising as reverse power, except on a meter tagged pv', () => {
    const pv = meterModel(profiles.get('dlt645-2007-single-phase-prepaid-money')!, ['pv']);
    const steps: [number, Record<string, PointValue>][] = [
      [0, { 'energy.active.export': v(3) }],
      [15, { 'energy.active.export': v(3.4) }],
    ];
    expect(kinds(run(single, steps)[1]!)).toEqual(['reverse-power']);
    expect(kinds(run(pv, steps)[1]!)).toEqual([]);
  });

  it('tell a lost voltage (current flows) from a broken phase (no current, other phases healthy)', () => {
    const [obs] = run(three, [
      [0, { 'voltage.a': v(228), 'voltage.b': v(96), 'voltage.c': v(0), 'current.a': v(3), 'current.b': v(2.1), 'current.c': v(0) }],
    ]);
    const bad = obs!.filter((o) => o.bad).map((o) => `${o.kind}:${o.source}`);
    expect(bad).toEqual(['voltage-loss:inferred.b', 'phase-break:inferred.c']);
  });

  it('compare live and neutral current on single-phase meters: max(0.5 A, 10 %)', () => {
    const [bypass, fine] = run(single, [
      [0, { 'current.a': v(2.0), 'current.n': v(5.2) }],
      [1, { 'current.a': v(5.0), 'current.n': v(5.3) }],
    ]);
    expect(bypass!.find((o) => o.kind === 'current-mismatch')).toMatchObject({ bad: true, raiseAfter: 3 });
    expect(fine!.find((o) => o.kind === 'current-mismatch')).toMatchObject({ bad: false });
  });

  it('wait out the relay delay before calling commanded and actual relay states a mismatch', () => {
    const commandedOpen = v(1 << 6);
    const obs = run(single, [
      [0, { 'status.word3': commandedOpen }],
      [1, { 'status.word3': commandedOpen }],
      [3, { 'status.word3': commandedOpen }],
    ]);
    expect(obs[0]!.find((o) => o.kind === 'relay-mismatch')).toBeUndefined();
    expect(obs[1]!.find((o) => o.kind === 'relay-mismatch')).toBeUndefined();
    expect(obs[2]!.find((o) => o.kind === 'relay-mismatch')).toMatchObject({
      bad: true,
      evidence: { commanded: 'open', actual: 'closed' },
    });
  });

  it('count a cover-open counter that rose, not its first value', () => {
    const [first, same, rose] = run(single, [
      [0, { 'events.cover-open.count': v(4) }],
      [1, { 'events.cover-open.count': v(4) }],
      [2, { 'events.cover-open.count': v(5) }],
    ]);
    expect(kinds(first!)).toEqual([]);
    expect(kinds(same!)).toEqual([]);
    expect(rose!.find((o) => o.kind === 'cover-open')).toMatchObject({ bad: true, pulse: true, evidence: { before: 4 } });
  });

  it('say balance-low under the threshold', () => {
    const [low, ok] = run(single, [
      [0, { 'credit.balance.money': v(4.5) }],
      [5, { 'credit.balance.money': v(50) }],
    ]);
    expect(low!.find((o) => o.kind === 'balance-low')).toMatchObject({ bad: true, evidence: { balance: 4.5, unit: 'CNY' } });
    expect(ok!.find((o) => o.kind === 'balance-low')).toMatchObject({ bad: false });
  });
});
