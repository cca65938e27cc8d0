import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { allowanceRows, openStore, type AllowanceRow, type Store } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, type TestBroker } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { campusMeters, type CampusMeter } from '../helpers/campus.js';

// The issue's "must show" at its own scale: 500 simulated meters on 5 buses (450 dormitory rooms, 50 offices), a tenth
// of the rooms silent at the start, driven through the real `meterd` process. The daemon is SIGKILLed in the middle of
// the batch and restarted; the round completes with every room loaded once. The meters' own purchase counters,
// balances and purchase records prove it. (The smaller campus of test/e2e/allowances.test.ts shows the refusals,
// the commands and the CLI; this file shows the scale.)

const BUSES = 5;
const PER_BUS = 100;
const OFFICES_PER_BUS = 10;
const AMOUNT_FEN = 1500;
const COUNT = 7;
const BALANCE_YUAN = 20;
const KEY = { allowance: 'dorm-free', term: 'term-1', round: 'r1' };

type Room = CampusMeter;
const rooms: Room[] = campusMeters(BUSES, PER_BUS, OFFICES_PER_BUS);
const dorms = rooms.filter((r) => r.dorm);
const silent = rooms.filter((r) => r.silent);

let broker: TestBroker;
const sims: Dlt645Simulator[] = [];
let daemon: DaemonProcess | undefined;
let dir: string | undefined;
const gw = uniqueId('gw-kill500');

function config(): string {
  return `gateway: { id: ${gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${sims.map((s, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${s.address!.tcpPort}", gap: 2ms, timeout: 150ms, retries: 0 }`).join('\n')}
meters:
${rooms.map((r) => `  - { id: ${r.id}, bus: bus${r.bus}, address: "${r.address}", customerNo: "${r.customerNo}", profile: dlt645-2007-single-phase-prepaid-money, tags: [${r.dorm ? 'dorm' : 'office'}] }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: ${AMOUNT_FEN}
    at: "00:00"
    deadline: 1d
    retry: 1s
    terms:
      - id: term-1
        rounds:
          - { id: r1, date: "${new Date().toISOString().slice(0, 10)}" }
`;
}

function withStore<T>(fn: (store: Store) => T): T {
  const store = openStore({ path: join(dir!, 'data', 'meterd.db'), clock: systemClock, checkAtOpen: false });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}
const planRows = (): AllowanceRow[] => {
  try {
    return withStore((s) => s.transaction((tx) => allowanceRows(tx, KEY)));
  } catch {
    return []; // not created yet, or busy
  }
};
const meter = (r: Room) => sims[r.bus]!.meters.get(r.address)!;

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`gave up waiting for ${what}; daemon log:\n${daemon?.stderr().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  broker = await startTestBroker();
  for (let b = 0; b < BUSES; b++)
    sims.push(
      await startDlt645Simulator({
        tcpPort: 0,
        spec: {
          meters: rooms
            .filter((r) => r.bus === b)
            .map((r) => ({
              address: r.address,
              kind: 'money' as const,
              balance: BALANCE_YUAN,
              purchaseCount: COUNT,
              customerNumber: r.customerNo,
            })),
        },
        // A few milliseconds a reply, so the batch lasts long enough to be killed in the middle of it.
        faults: { delayMs: 4 },
      }),
    );
  for (const r of silent) sims[r.bus]!.bus.setFaults({ silent: true }, r.address);
}, 60_000);

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await clearRetained(broker.url, [`meterd/${gw}/status`, `meterd/${gw}/allowances/dorm-free`]);
  await Promise.all(sims.map((s) => s.close()));
  await broker?.close();
});

describe('a campus of 500 meters on 5 buses with the meterd process', { timeout: 300_000 }, () => {
  it('a SIGKILL mid-batch and a restart finish the round with every room loaded once and no office touched', async () => {
    daemon = startDaemon(config(), { logLevel: 'warn' });
    dir = daemon.dir;
    const reachable = dorms.length - silent.length;
    await until(
      () => {
        const applied = planRows().filter((r) => r.state === 'applied').length;
        return applied >= 50 && applied < reachable - 100;
      },
      'a batch under way',
      60_000,
    );
    daemon.child.kill('SIGKILL');
    await daemon.exited();
    const atKill = planRows();
    const appliedAtKill = atKill.filter((r) => r.state === 'applied').length;
    expect(appliedAtKill).toBeGreaterThan(0);
    expect(appliedAtKill).toBeLessThan(reachable);

    daemon = startDaemon(config(), { dir, logLevel: 'warn' });
    const silentIds = new Set(silent.map((r) => r.id));
    await until(
      () => {
        const rows = planRows();
        return (
          rows.length === dorms.length &&
          rows.every((r) => (silentIds.has(r.meterId) ? r.state === 'pending' && r.tries >= 1 : r.state === 'applied'))
        );
      },
      'every reachable room applied and the silent ones waiting',
      120_000,
    );
    for (const r of silent) sims[r.bus]!.bus.setFaults({ silent: false }, r.address);
    await until(() => planRows().every((r) => r.state === 'applied'), 'the round complete', 120_000);

    // Every room: its counter one up, its balance one allowance up, one new purchase record of the allowance.
    // Every office: untouched.
    for (const r of rooms) {
      const m = meter(r);
      const s = m.snapshot();
      const loaded = r.dorm ? 1 : 0;
      expect([r.id, s.purchaseCount, s.balance]).toEqual([r.id, COUNT + loaded, BALANCE_YUAN * 100 + loaded * AMOUNT_FEN]);
      expect([r.id, m.purchaseRecords().map((p) => [p.countAfter, p.amount])]).toEqual([r.id, r.dorm ? [[COUNT + 1, AMOUNT_FEN]] : []]);
    }
    const loads = withStore((s) => s.ledger.list({ limit: 10_000 })).filter((e) => e.channel === 'allowance');
    const applied = loads.filter((e) => e.state === 'applied');
    expect(applied).toHaveLength(dorms.length);
    expect(new Set(applied.map((e) => e.meterId)).size).toBe(dorms.length);
    // The loads the kill interrupted were settled from the meters' counters: none is left open.
    expect(loads.filter((e) => e.state === 'writing' || e.state === 'verifying' || e.state === 'received')).toEqual([]);
  });
});
