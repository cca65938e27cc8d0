import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig, type GatewayConfig } from '../../src/config/index.js';
import { linelossService } from '../../src/daemon/lineloss.js';
import { meterDrivers, openConfiguredBus, type OpenedBus } from '../../src/daemon/meters.js';
import type { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { DeviceProfile } from '../../src/profiles/types.js';
import { explainDay, type LinelossService } from '../../src/services/lineloss/index.js';
import { startDlt645Simulator, type Dlt645Simulator, type MeterSpec } from '../../src/sim/dlt645/index.js';
import { findFigure, openStore, type Store } from '../../src/store/index.js';

/**
 * Seven transformer districts on one simulated RS-485 line, read by the line-loss job through the real driver, bus
 * and store, on a wall clock the test moves. The meters were switched on at 2026-11-20 00:00 (local), so their first
 * daily freeze is 2026-11-21 00:00 and the first day that can be computed is 2026-11-21.
 *
 * Loads are binary fractions of a kW so that a day's energy is exact in the simulator's registers:
 *
 * | district | supply (CT)            | members (kW)                      | what happens                                   |
 * |----------|------------------------|-----------------------------------|------------------------------------------------|
 * | dq       | 17/256 kW 3-ph (CT 50) | 0.75, 1, 1.1875, 0.0625           | qualified: 9.43 % by hand                      |
 * | dsilent  | 0.125 kW (CT 20)       | 1, 1.3125                         | member 2 silent at 00:15, answers at 02:15     |
 * | dday     | 0.125 kW (CT 20)       | 1, 1.25 (freezes stamped −1 day)  | the stamped-off member is not used             |
 * | dphase   | 0.125 kW 3-ph (CT 20)  | 1, 1.25                           | supply lost a phase: negative                  |
 * | dbypass  | 0.125 kW (CT 20)       | 1, 1.25 (bypassed from 11-22)     | high days, alert after 3                       |
 * | droll    | 0.125 kW (CT 20)       | 1 (from 999960.00 kWh), 1.25      | the register rolls over inside 11-21           |
 */
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const local = (date: string, hhmm = '00:00') => {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const [h, min] = hhmm.split(':').map(Number) as [number, number];
  return new Date(y, m - 1, d, h, min).getTime();
};
const clock = new ManualClock(local('2026-11-20'));

interface SimMeter {
  id: string;
  district: string;
  supply?: boolean;
  kw: number;
  phases?: 1 | 3;
  seedKwh?: number;
}
const METERS: SimMeter[] = [
  { id: 'dq-general', district: 'dq', supply: true, kw: 17 / 256, phases: 3, seedKwh: 1234.56 },
  { id: 'dq-1', district: 'dq', kw: 0.75, seedKwh: 100 },
  { id: 'dq-2', district: 'dq', kw: 1, seedKwh: 2000 },
  { id: 'dq-3', district: 'dq', kw: 1.1875, seedKwh: 50 },
  { id: 'dq-4', district: 'dq', kw: 0.0625, seedKwh: 7.77 },
  { id: 'dsilent-general', district: 'dsilent', supply: true, kw: 0.125 },
  { id: 'dsilent-1', district: 'dsilent', kw: 1 },
  { id: 'dsilent-2', district: 'dsilent', kw: 1.3125 },
  { id: 'dday-general', district: 'dday', supply: true, kw: 0.125 },
  { id: 'dday-1', district: 'dday', kw: 1 },
  { id: 'dday-2', district: 'dday', kw: 1.25 },
  { id: 'dphase-general', district: 'dphase', supply: true, kw: 0.125, phases: 3 },
  { id: 'dphase-1', district: 'dphase', kw: 1 },
  { id: 'dphase-2', district: 'dphase', kw: 1.25 },
  { id: 'dbypass-general', district: 'dbypass', supply: true, kw: 0.125 },
  { id: 'dbypass-1', district: 'dbypass', kw: 1 },
  { id: 'dbypass-2', district: 'dbypass', kw: 1.25 },
  { id: 'droll-general', district: 'droll', supply: true, kw: 0.125 },
  { id: 'droll-1', district: 'droll', kw: 1, seedKwh: 999_960 },
  { id: 'droll-2', district: 'droll', kw: 1.25 },
];
const CT: Record<string, number> = { dq: 50, dsilent: 20, dday: 20, dphase: 20, dbypass: 20, droll: 20 };
const address = (i: number) => String(900 + i).padStart(12, '0');
const addressOf = (id: string) => address(METERS.findIndex((m) => m.id === id));

let sim: Dlt645Simulator;
let store: Store;
let bus: OpenedBus;
let lineloss: LinelossService;

function configText(port: number, dataDir: string): string {
  const districts = Object.entries(CT)
    .map(([id, ct]) => `  - { id: ${id}, supplyMeter: ${id}-general, ctRatio: ${ct} }`)
    .join('\n');
  const meters = METERS.map(
    (m, i) =>
      `  - { id: ${m.id}, bus: b1, address: "${address(i)}", district: ${m.district}, profile: ${m.phases === 3 ? 'dlt645-2007-three-phase' : 'dlt645-2007-single-phase-prepaid'} }`,
  ).join('\n');
  return `gateway: { id: gw-ll, dataDir: ${dataDir}, timeZone: ${TZ} }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: b1, port: "tcp://127.0.0.1:${port}", timeout: 150ms, retries: 0, gap: 0ms }
districts:
${districts}
meters:
${meters}
`;
}

const meter = (id: string) => sim.meters.get(addressOf(id) as never)!;
const daily = (district: string, date: string) => store.transaction((tx) => findFigure(tx, district, 'daily', date));
const messages = (topic: string) =>
  store.outbox
    .peek({ limit: 10_000 })
    .filter((m) => m.topic === topic)
    .map((m) => JSON.parse(m.payload) as Record<string, unknown>);

/** Advance the wall clock to a local date and time, then run the job as the daemon's tick would. */
async function runAt(date: string, hhmm: string) {
  clock.set(local(date, hhmm));
  return lineloss.runDue();
}

beforeAll(async () => {
  const specs: MeterSpec[] = METERS.map((m, i) => ({
    address: address(i),
    kind: 'plain',
    phases: m.phases ?? 1,
    powerKw: m.kw,
    ...(m.seedKwh !== undefined ? { registers: { 'energy.active.import': m.seedKwh, 'energy.active.import.t1': m.seedKwh } } : {}),
  }));
  sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: specs }, clock });
  const t0 = clock.now();
  meter('dday-2').setMeteringFaults({ freezeStampDays: -1 }, t0);
  meter('dphase-general').setMeteringFaults({ lostPhases: 1 }, t0);

  const dir = mkdtempSync(join(tmpdir(), 'meterd-lineloss-'));
  const parsed = parseConfig(configText(sim.address!.tcpPort, join(dir, 'data')), join(dir, 'meterd.yaml'), {
    env: {},
    profiles: loadProfiles(),
  });
  if (!parsed.ok) throw new Error(parsed.issues.map((i) => i.message).join('\n'));
  const config: GatewayConfig = parsed.config;
  store = openStore({ path: join(dir, 'data', 'meterd.db'), clock });
  bus = await openConfiguredBus(config.buses[0]!, { waitForPort: false });
  const drivers = new Map<string, { busId: string; dlt645?: Dlt645Meter; profile: DeviceProfile }>();
  for (const m of config.meters)
    drivers.set(m.id, { busId: m.busId, dlt645: meterDrivers(m, bus, config, undefined, {}, { clock }).dlt645, profile: m.profile });
  lineloss = linelossService(config, {
    store,
    clock,
    timers: (await import('../../src/clock.js')).realTimers,
    logger: (await import('../../src/log.js')).silentLogger,
    drivers,
    onCommitted: () => {},
  });
});

afterAll(async () => {
  await lineloss?.stop();
  await bus?.bus.close();
  store?.close();
  await sim?.close();
});

describe('line loss of simulated districts from their daily freezes', () => {
  it('on 11-22 at 00:15: a first start computes 11-21, the first day the meters hold both midnights of', async () => {
    // dsilent-2 does not answer tonight.
    sim.bus.setFaults({ silent: true }, addressOf('dsilent-2') as never);
    // dbypass-2's load goes around its meter from 11-22 00:00 on.
    clock.set(local('2026-11-22'));
    meter('dbypass-2').setMeteringFaults({ bypass: true }, clock.now());
    const r = await runAt('2026-11-22', '00:15');
    expect(r.published.sort()).toEqual(
      Object.keys(CT)
        .map((d) => `${d}/2026-11-21#1`)
        .sort(),
    );
    // Nothing for 11-20: the meters were switched on at its midnight and hold no freeze of it.
    expect(daily('dq', '2026-11-20')).toBeNull();
  });

  it('a qualified district matches the hand computation to 0.01 %, with the CT ratio applied', () => {
    // By hand: supply 17/256 kW × 24 h = 1.59375 kWh, frozen in 0.01 kWh: 1234.56 → 1236.15 → 1237.74, so 1.59 kWh
    // on the secondary side × CT 50 = 79.50 kWh. Sales 18.00 + 24.00 + 28.50 + 1.50 = 72.00 kWh.
    // Loss 7.50 kWh; rate 7.50 ÷ 79.50 = 9.4339… % → 9.43 %.
    const f = daily('dq', '2026-11-21')!;
    expect(f.class).toBe('qualified');
    expect(f.figure).toMatchObject({
      district: 'dq',
      date: '2026-11-21',
      supplyKwh: 79.5,
      salesKwh: 72,
      lossKwh: 7.5,
      ratePct: 9.43,
      class: 'qualified',
      members: { expected: 4, read: 4 },
      missing: [],
      revision: 1,
    });
    const [published] = messages('lineloss/dq/daily');
    expect(published).toMatchObject({ date: '2026-11-21', ratePct: 9.43, revision: 1 });
    expect(typeof published!.ts).toBe('string');
  });

  it('a member that does not answer makes the day not computable and names it', () => {
    const f = daily('dsilent', '2026-11-21')!;
    expect(f.figure).toMatchObject({
      class: 'not-computable',
      ratePct: null,
      lossKwh: null,
      members: { expected: 2, read: 1 },
      missing: ['dsilent-2'],
    });
    expect(messages('lineloss/dsilent/daily')).toHaveLength(1);
  });

  it('a member whose freezes are stamped a day off is not used', () => {
    const f = daily('dday', '2026-11-21')!;
    expect(f.class).toBe('not-computable');
    expect(f.figure.missing).toEqual(['dday-2']);
    expect((f.figure.why as Record<string, string>)['dday-2']).toMatch(/is stamped 2026-11-2\d 00:00/);
    // explain names it last, with the reason, after the members read.
    expect(explainDay(store, 'dday', '2026-11-21')!.members).toEqual([
      { meter: 'dday-1', kwh: 24, averageKwh: null, changeKwh: null },
      { meter: 'dday-2', kwh: null, averageKwh: null, changeKwh: null, why: expect.stringMatching(/is stamped/) },
    ]);
  });

  it('a supply meter that lost a phase gives a negative day', () => {
    // It registers two thirds of 0.125 kW × 24 h = 2.00 kWh × 20 = 40 kWh against sales of 24 + 30 = 54 kWh.
    const f = daily('dphase', '2026-11-21')!;
    expect(f.class).toBe('negative');
    expect(f.figure.supplyKwh).toBeCloseTo(40, 0);
    expect(f.figure.ratePct).toBeCloseTo(-35, 0);
  });

  it('a register that rolls over 999999.99 → 0 inside the day counts the day’s energy, not a million kWh less', () => {
    // droll-1: 999984.00 at 11-21 00:00, 8.00 at 11-22 00:00: 24.00 kWh. Sales 54, supply 60: 10 %.
    const f = daily('droll', '2026-11-21')!;
    expect(f.figure).toMatchObject({ supplyKwh: 60, salesKwh: 54, ratePct: 10, class: 'qualified' });
  });

  it('the member that did not answer answers two hours later: the day is published again, computable, revision 2', async () => {
    sim.bus.setFaults({ silent: false }, addressOf('dsilent-2') as never);
    const early = await runAt('2026-11-22', '01:15');
    expect(early.published).toEqual([]); // the recall waits recallEvery (2h)
    const r = await runAt('2026-11-22', '02:15');
    expect(r.published).toContain('dsilent/2026-11-21#2');
    // supply 0.125 × 24 × 20 = 60; sales 24 + 31.5 = 55.5; loss 4.5 = 7.5 %
    expect(daily('dsilent', '2026-11-21')!.figure).toMatchObject({ class: 'qualified', ratePct: 7.5, missing: [], revision: 2 });
    expect(messages('lineloss/dsilent/daily').map((m) => [m.class, m.revision])).toEqual([
      ['not-computable', 1],
      ['qualified', 2],
    ]);
    // The other districts were not published again.
    expect(messages('lineloss/dq/daily')).toHaveLength(1);
  });

  it('a bypassed member (its consumption stops, the supply does not) gives high days and the alert after three', async () => {
    await runAt('2026-11-23', '00:15');
    const first = daily('dbypass', '2026-11-22')!;
    // supply 60, sales 24 (dbypass-2 registers nothing): 60 %, flagged at 20 % or more
    expect(first.figure).toMatchObject({ class: 'high', ratePct: 60, flagged20: true });
    expect((first.figure.topContributors as { meter: string }[])[0]).toEqual({
      meter: 'dbypass-2',
      kwh: 0,
      averageKwh: 30,
      changeKwh: -30,
    });
    expect(messages('lineloss/dbypass/alerts')).toEqual([]);
    await runAt('2026-11-24', '00:15');
    expect(messages('lineloss/dbypass/alerts')).toEqual([]);
    await runAt('2026-11-25', '00:15');
    const alerts = messages('lineloss/dbypass/alerts');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      alertId: 'lineloss-dbypass-high-2026-11-22',
      meter: 'dbypass-general',
      district: 'dbypass',
      kind: 'line-loss-high',
      state: 'raised',
      evidence: { alertAfterDays: 3, days: [{ date: '2026-11-22' }, { date: '2026-11-23' }, { date: '2026-11-24' }] },
    });
    // explain puts the bypassed member first: 0 kWh against its 30 kWh of the day before the bypass.
    expect(explainDay(store, 'dbypass', '2026-11-24')!.members[0]).toEqual({ meter: 'dbypass-2', kwh: 0, averageKwh: 10, changeKwh: -10 });
    // Each day once per district.
    expect(messages('lineloss/dq/daily').map((m) => m.date)).toEqual(['2026-11-21', '2026-11-22', '2026-11-23', '2026-11-24']);
  });
});
