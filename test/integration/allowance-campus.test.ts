import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { allowanceRows } from '../../src/store/index.js';
import { clearRetained, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';
import { campusMeters, type CampusMeter } from '../helpers/campus.js';

// The issue's campus: 500 simulated meters on 5 buses, 450 dormitory rooms and 50 offices. A tenth of the rooms are
// silent when the round starts and come back later. The round completes with every room loaded exactly once (the
// meters' own purchase counters and balances say so) and no office touched. (The SIGKILL mid-batch is shown on a
// campus of this size with the meterd process in test/e2e/allowance-campus-kill.test.ts, with the refusals and the
// commands on a smaller one in test/e2e/allowances.test.ts.)

const BUSES = 5;
const PER_BUS = 100;
const OFFICES_PER_BUS = 10;
const AMOUNT_FEN = 2000;
const KEY = { allowance: 'dorm-free', term: 'term-1', round: 'r1' };

type Meter = CampusMeter;
const meters: Meter[] = campusMeters(BUSES, PER_BUS, OFFICES_PER_BUS);
const dorms = meters.filter((m) => m.dorm);

let broker: TestBroker;
const sims: Dlt645Simulator[] = [];
let gw: Gateway;
const gatewayId = uniqueId('gw-campus');

beforeAll(async () => {
  broker = await startTestBroker();
  for (let b = 0; b < BUSES; b++) {
    sims.push(
      await startDlt645Simulator({
        tcpPort: 0,
        spec: {
          meters: meters
            .filter((m) => m.bus === b)
            .map((m) => ({ address: m.address, kind: 'money' as const, balance: 25, purchaseCount: 11, customerNumber: m.customerNo })),
        },
      }),
    );
  }
  for (const m of meters.filter((x) => x.silent)) sims[m.bus]!.bus.setFaults({ silent: true }, m.address);
  const dir = mkdtempSync(join(tmpdir(), 'meterd-campus-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${sims.map((s, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${s.address!.tcpPort}", gap: 2ms, timeout: 150ms, retries: 0 }`).join('\n')}
meters:
${meters.map((m) => `  - { id: ${m.id}, bus: bus${m.bus}, address: "${m.address}", customerNo: "${m.customerNo}", profile: dlt645-2007-single-phase-prepaid-money, tags: [${m.dorm ? 'dorm' : 'office'}] }`).join('\n')}
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
`,
  );
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await clearRetained(broker.url, [`meterd/${gatewayId}/status`, `meterd/${gatewayId}/allowances/dorm-free`]);
  await Promise.all(sims.map((s) => s.close()));
  await broker?.close();
});

const rows = () => gw.store.transaction((tx) => allowanceRows(tx, KEY));
const snapshot = (m: Meter) => sims[m.bus]!.meters.get(m.address)!.snapshot();

describe('a campus of 500 meters on 5 buses', { timeout: 180_000 }, () => {
  it('one round loads every dorm room exactly once, the silent tenth after it comes back, and no office', async () => {
    const silentIds = new Set(meters.filter((m) => m.silent).map((m) => m.id));
    await until(() => {
      const r = rows();
      return (
        r.length === dorms.length &&
        r.every((x) => (silentIds.has(x.meterId) ? x.state === 'pending' && x.tries >= 1 : x.state === 'applied'))
      );
    }, 'every reachable room applied and the silent ones waiting');
    for (const m of meters.filter((x) => x.silent)) sims[m.bus]!.bus.setFaults({ silent: false }, m.address);
    gw.allowances.wakeAll();
    await until(() => gw.allowances.roundStatus(KEY)?.complete === true, 'the round complete');

    expect(gw.allowances.roundStatus(KEY)!.counts).toMatchObject({ applied: dorms.length, planned: 0, pending: 0, 'needs-attention': 0 });
    for (const m of meters) {
      const s = snapshot(m);
      expect([m.id, s.purchaseCount, s.balance]).toEqual([m.id, m.dorm ? 12 : 11, m.dorm ? 2500 + AMOUNT_FEN : 2500]);
    }
    const loads = gw.store.ledger.list({ limit: 10_000 }).filter((e) => e.channel === 'allowance');
    const applied = loads.filter((e) => e.state === 'applied');
    expect(applied).toHaveLength(dorms.length);
    expect(new Set(applied.map((e) => e.meterId)).size).toBe(dorms.length);
    // The silent rooms: one failed load each (nothing reached them), then the one that applied.
    for (const id of silentIds) expect(loads.filter((e) => e.meterId === id).map((e) => e.state)).toEqual(['failed', 'applied']);
  });
});

async function until(condition: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
