import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig, type GatewayConfig } from '../../src/config/index.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { allowanceRequestId, AllowanceService, roundDueAt } from '../../src/services/allowances/index.js';
import { allowanceEvents, allowanceRows, openStore, type Store } from '../../src/store/index.js';

const profiles = loadProfiles();
const DAY = 86_400_000;

function configYaml(extraMeters = ''): string {
  return `gateway: { id: gw-a, dataDir: ./data, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: /dev/null }
  - { id: bus2, port: /dev/null }
meters:
  - { id: room-101, bus: bus1, address: "000000000101", customerNo: "101", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }
  - { id: room-102, bus: bus2, address: "000000000102", customerNo: "102", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }
  - { id: office-1, bus: bus1, address: "000000000201", profile: dlt645-2007-single-phase-prepaid-money, tags: [office] }
${extraMeters}allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1500
    at: "08:00"
    deadline: 14d
    terms:
      - id: 2026-autumn
        rounds:
          - { id: r1, date: "2026-09-07" }
          - { id: r2, date: "2026-11-16" }
`;
}

function config(extraMeters = ''): GatewayConfig {
  const r = parseConfig(configYaml(extraMeters), 'meterd.yaml', { env: {}, profiles });
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  return r.config;
}

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

function setup(startMs: number, c: GatewayConfig = config()) {
  const clock = new ManualClock(startMs);
  const store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-allow-')), 'meterd.db'), clock });
  stores.push(store);
  return { clock, store, service: service(c, store, clock) };
}

function service(c: GatewayConfig, store: Store, clock: ManualClock): AllowanceService {
  return new AllowanceService({
    store,
    clock,
    timeZone: c.gateway.timeZone,
    allowances: c.allowances,
    meters: c.meters.map((m) => ({ ...m, creditUnit: m.profile.credit?.unit })),
    busIds: [],
    // The planner never loads; a load here would be a bug the test must see.
    credit: {
      topUp: () => {
        throw new Error('the planner must not load');
      },
      reachable: () => {
        throw new Error('the planner must not read meters');
      },
    },
  });
}

const R1 = { allowance: 'dorm-free', term: '2026-autumn', round: 'r1' };
const R2 = { allowance: 'dorm-free', term: '2026-autumn', round: 'r2' };
// 2026-09-07 08:00 in Shanghai (UTC+8) is 00:00 UTC.
const R1_DUE = Date.UTC(2026, 8, 7, 0, 0);
const rows = (store: Store, key = R1) => store.transaction((tx) => allowanceRows(tx, key));

describe('allowance planner', () => {
  it('a round is due at its date and local time in the gateway zone', () => {
    expect(roundDueAt('2026-09-07', '08:00', 'Asia/Shanghai')).toBe(R1_DUE);
    expect(roundDueAt('2026-09-07', '08:00', 'UTC')).toBe(Date.UTC(2026, 8, 7, 8, 0));
  });

  it('plans nothing before the round is due, then one row per targeted meter with a snapshot of amount and identity', () => {
    const { clock, store, service: s } = setup(R1_DUE - 60_000);
    expect(s.planDue()).toEqual([]);
    expect(rows(store)).toEqual([]);
    clock.set(R1_DUE);
    expect(s.planDue()).toEqual([expect.objectContaining(R1)]);
    expect(rows(store).map((r) => [r.meterId, r.busId, r.address, r.customerNo, r.unit, r.amount, r.state])).toEqual([
      ['room-101', 'bus1', '000000000101', '101', 'money', 1500, 'planned'],
      ['room-102', 'bus2', '000000000102', '102', 'money', 1500, 'planned'],
    ]);
    expect(s.roundStatus(R1)).toMatchObject({ dueAt: R1_DUE, deadlineAt: R1_DUE + 14 * DAY, lateOnPlan: false, complete: false });
    // The ledger key of each load comes from the plan key, and no station request id (no spaces) can equal it.
    expect(allowanceRequestId(rows(store)[0]!)).toBe('allowance dorm-free/2026-autumn/r1/room-101 #1');
  });

  it('planning twice changes nothing, and a meter added to the config after the plan is not in that round', () => {
    const { clock, store, service: s } = setup(R1_DUE + 1000);
    s.planDue();
    const first = rows(store);
    clock.advance(60_000);
    expect(s.planDue()).toEqual([]);
    const later = service(
      config('  - { id: room-103, bus: bus1, address: "000000000103", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }\n'),
      store,
      clock,
    );
    expect(later.planDue()).toEqual([]);
    expect(rows(store)).toEqual(first);
  });

  it('a gateway that was off at the round time plans it when it starts (catch-up)', () => {
    const { store, service: s } = setup(R1_DUE + 3 * DAY);
    expect(s.planDue().map((k) => k.round)).toEqual(['r1']);
    expect(rows(store).every((r) => r.state === 'planned')).toBe(true);
  });

  it('a round first seen more than its deadline after its start is planned as expired: no old allowance by surprise', () => {
    const { store, service: s } = setup(R1_DUE + 20 * DAY);
    s.planDue();
    expect(rows(store).map((r) => [r.state, r.reasonCode])).toEqual([
      ['expired', 'LATE'],
      ['expired', 'LATE'],
    ]);
    expect(s.roundStatus(R1)).toMatchObject({ lateOnPlan: true, complete: true, counts: { expired: 2, planned: 0 } });
    // A person may force it: the rows come back pending with a fresh deadline.
    const forced = s.runNow(R1, { by: 'tech', force: true });
    expect(forced.counts).toMatchObject({ pending: 2, expired: 0 });
    expect(rows(store)[0]!.deadlineAt).toBe(R1_DUE + 20 * DAY + 14 * DAY);
    const id = rows(store)[0]!.id;
    const events = store.transaction((tx) => allowanceEvents(tx, id));
    expect(events.map((e) => e.state)).toEqual(['expired', 'pending']);
  });

  it('a clock stepped back after a round was planned never plans or runs it again', () => {
    const { clock, store, service: s } = setup(R1_DUE + 1000);
    s.planDue();
    const before = rows(store);
    clock.set(R1_DUE - 5 * DAY);
    expect(s.planDue()).toEqual([]);
    clock.set(R1_DUE + 2000);
    expect(s.planDue()).toEqual([]);
    expect(rows(store)).toEqual(before);
  });

  it('allowance-run before the date plans the round now; sent twice it changes nothing', () => {
    const { store, service: s } = setup(R1_DUE - 2 * DAY);
    const first = s.runNow(R1, { by: 'station' });
    expect(first.counts).toMatchObject({ planned: 2 });
    const again = s.runNow(R1, { by: 'station' });
    expect(again.counts).toEqual(first.counts);
    expect(rows(store)).toHaveLength(2);
  });

  it('rows nobody reached before the deadline expire at the next tick; the round completes and its report is queued once', async () => {
    const { clock, store, service: s } = setup(R1_DUE + 1000);
    s.planDue();
    clock.set(R1_DUE + 14 * DAY + 1);
    s.start();
    await s.stop();
    expect(rows(store).map((r) => [r.state, r.reasonCode])).toEqual([
      ['expired', 'EXPIRED'],
      ['expired', 'EXPIRED'],
    ]);
    const out = store.outbox.peek({ limit: 100 });
    const reports = out.filter((m) => m.topic === 'allowances/dorm-free/report');
    expect(reports).toHaveLength(1);
    expect(JSON.parse(reports[0]!.payload)).toMatchObject({
      round: 'r1',
      complete: true,
      counts: { expired: 2, planned: 0 },
      meters: [
        { meter: 'room-101', state: 'expired', reason: { code: 'EXPIRED' } },
        { meter: 'room-102', state: 'expired', reason: { code: 'EXPIRED' } },
      ],
    });
    // The retained progress (state class, one per topic waiting in the outbox) says complete.
    const progress = out.filter((m) => m.topic === 'allowances/dorm-free');
    expect(progress).toHaveLength(1);
    expect(JSON.parse(progress[0]!.payload)).toMatchObject({ complete: true, counts: { expired: 2 } });
  });

  it('a person decides on expired rows: cancel closes one, carry-over adds its amount to the next round', () => {
    const { clock, store, service: s } = setup(R1_DUE + 20 * DAY);
    s.planDue();
    s.resolve(R1, 'room-101', 'cancel', 'clerk');
    s.resolve(R1, 'room-102', 'carry-over', 'clerk');
    expect(rows(store).map((r) => [r.meterId, r.state, r.reasonCode])).toEqual([
      ['room-101', 'cancelled', 'LATE'],
      ['room-102', 'cancelled', 'CARRIED_OVER'],
    ]);
    expect(() => s.resolve(R1, 'room-101', 'retry', 'clerk')).toThrow(/cancelled/);
    clock.set(roundDueAt('2026-11-16', '08:00', 'Asia/Shanghai'));
    s.planDue();
    expect(rows(store, R2).map((r) => [r.meterId, r.amount])).toEqual([
      ['room-101', 1500],
      ['room-102', 3000],
    ]);
    expect(() => s.resolve(R2, 'room-102', 'carry-over', 'clerk')).toThrow(/only expired and needs-attention/);
  });
});
