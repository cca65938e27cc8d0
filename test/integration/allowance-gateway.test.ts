import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { Books } from '../../src/services/books/index.js';
import { localDate } from '../../src/services/books/periods.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { clearRetained, startTestBroker, type TestBroker, type TopicWatcher, uniqueId, watchTopics } from '../helpers/broker.js';

// The allowance service inside a real gateway (in process): a round started by hand before its date, two more "run
// now" while it runs, a cashier's top-up in the middle of the batch, the station's progress and report, and the day's
// books with the allowance under its own channel and the meters' counters reconciled.

const ROOMS = 10;
const AMOUNT_FEN = 1200;
const rooms = Array.from({ length: ROOMS }, (_, i) => ({
  id: `room-${301 + i}`,
  address: String(301 + i).padStart(12, '0'),
  customerNo: String(660000000000 + i),
}));
const KEY = { allowance: 'dorm-free', term: 't1', round: 'r2' };

let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
let watcher: TopicWatcher;
const gatewayId = uniqueId('gw-allowbooks');
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: rooms.map((r) => ({ address: r.address, kind: 'money', balance: 30, purchaseCount: 4, customerNumber: r.customerNo })),
    },
    // Slow enough replies that the cashier's top-up below arrives while the batch is running.
    faults: { delayMs: 20 },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-allowbooks-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 500ms, retries: 0 }
meters:
${rooms.map((r) => `  - { id: ${r.id}, bus: bus1, address: "${r.address}", customerNo: "${r.customerNo}", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }`).join('\n')}
polling:
  intervals: { instant: 10m, energy: 10m, status: 10m, credit: 10m }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: ${AMOUNT_FEN}
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2020-03-02" }
          - { id: r2, date: "2099-09-07" }
`,
  );
  watcher = await watchTopics(broker.url, topic('#'));
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await watcher?.close();
  await clearRetained(broker.url, [topic('status'), topic('allowances/dorm-free'), ...rooms.map((r) => topic(`meters/${r.id}/state`))]);
  await sim?.close();
  await broker?.close();
});

describe('allowances in a running gateway', { timeout: 90_000 }, () => {
  it('a round first seen years after its deadline was planned expired and loaded nobody', () => {
    const r1 = gw.allowances.roundStatus({ ...KEY, round: 'r1' });
    expect(r1).toMatchObject({ lateOnPlan: true, complete: true, counts: { expired: ROOMS, applied: 0 } });
    for (const r of rooms) expect(sim.meters.get(r.address)!.snapshot().purchaseCount).toBe(4);
  });

  it('run by hand before its date, run twice more while it runs, a top-up in the middle: every room loaded once, books balanced', async () => {
    // Every meter's counter read before the batch: the opening of the day's reconciliation.
    for (const r of rooms) await gw.poller.pollNow(r.id, ['credit.purchase.count']);

    const first = gw.allowances.runNow(KEY, { by: 'test' });
    expect(first.counts).toMatchObject({ planned: ROOMS });
    // While the first rows load: a cashier's top-up on a room of the batch, and two more "run now".
    await until(() => (gw.allowances.roundStatus(KEY)?.counts.applied ?? 0) >= 2, 'the batch under way');
    const topup = gw.credit.topUp({
      requestId: 'cash-1',
      meterId: rooms[7]!.id,
      channel: 'operator',
      amountFen: 5000,
      operator: 'alice',
      customerNo: rooms[7]!.customerNo,
    });
    gw.allowances.runNow(KEY, { by: 'test' });
    gw.allowances.runNow(KEY, { by: 'station' });
    expect((await topup).entry.state).toBe('applied');
    await until(() => gw.allowances.roundStatus(KEY)?.complete === true, 'the round complete');

    for (const r of rooms) {
      const m = sim.meters.get(r.address)!.snapshot();
      const cash = r === rooms[7] ? 1 : 0;
      expect(m.purchaseCount, r.id).toBe(4 + 1 + cash);
      expect(m.balance, r.id).toBe(3000 + AMOUNT_FEN + cash * 5000);
    }
    expect(gw.allowances.roundStatus(KEY)!.counts).toMatchObject({ applied: ROOMS, pending: 0, planned: 0, 'needs-attention': 0 });

    // The station: retained progress ending complete, throttled (fewer messages than rows moved), and one report with
    // every room.
    // The report and the last progress are two messages of the outbox; the progress can arrive after the report.
    await watcher.waitFor(
      () =>
        watcher.json(topic('allowances/dorm-free/report')).some((m) => m.round === 'r2') &&
        watcher.json<{ round: string; complete: boolean }>(topic('allowances/dorm-free')).some((m) => m.round === 'r2' && m.complete),
      'the report of r2 and its complete progress',
      10_000,
    );
    const progress = watcher
      .json<{ round: string; complete: boolean; counts: Record<string, number> }>(topic('allowances/dorm-free'))
      .filter((m) => m.round === 'r2');
    expect(progress.at(-1)).toMatchObject({ complete: true, counts: { applied: ROOMS, needsAttention: 0, planned: 0, pending: 0 } });
    expect(progress.length).toBeLessThan(ROOMS);
    const reports = watcher.json<{ round: string; meters: { meter: string; state: string; amount: { units: number } }[] }>(
      topic('allowances/dorm-free/report'),
    );
    const r2 = reports.filter((m) => m.round === 'r2');
    expect(r2).toHaveLength(1);
    expect(r2[0]!.meters.map((m) => [m.meter, m.state, m.amount.units])).toEqual(rooms.map((r) => [r.id, 'applied', AMOUNT_FEN]));
    const credits = watcher.json<{ channel: string; state: string }>().filter((m) => m.channel === 'allowance');
    expect(credits.filter((m) => m.state === 'applied')).toHaveLength(ROOMS);

    // The day's books: the allowances under their own channel and never in the cash; the counters reconcile.
    for (const r of rooms) await gw.poller.pollNow(r.id, ['credit.purchase.count']);
    const books = new Books({ store: gw.store, clock: systemClock, gateway: gw.config.gateway, meters: gw.config.meters });
    const report = books.report({ kind: 'daily', date: localDate(Date.now(), 'UTC') });
    const total = report.totals.find((t) => t.unit === 'money')!;
    expect(total.allowances).toMatchObject({ count: ROOMS, amount: ROOMS * AMOUNT_FEN });
    expect(total.cash.sales).toMatchObject({ count: 1, amount: 5000 });
    expect(report.reconciliation.map((m) => [m.meterId, m.status])).toEqual(rooms.map((r) => [r.id, 'balanced']));
  });
});

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
