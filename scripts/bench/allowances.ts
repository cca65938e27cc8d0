/**
 * Allowance batches (docs/allowances.md):
 * 1. rows executed per minute on one 2400-baud bus, the simulator holding every reply as long as the line would (the
 *    request's and the reply's bytes at 11 bits a byte, plus a 20 ms meter turnaround), against what the line allows
 *    for the same frames (their bytes and turnarounds only, no gateway time between them);
 * 2. the time to plan a round of 10,000 rows (one SQLite transaction, the rows' unique keys included).
 * Run: npm run bench -- allowances [meters on the bus, default 30]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { AllowanceService } from '../../src/services/allowances/index.js';
import { startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore } from '../../src/store/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';

const METERS = Number(process.argv[2] ?? 30);
const BAUD = 2400;
const TURNAROUND_MS = 20;
const BYTE_MS = (11 * 1000) / BAUD;

// 1. Rows per minute on one bus.
const sim = await startDlt645Simulator({
  tcpPort: 0,
  spec: {
    meters: [
      ...Array.from({ length: METERS }, (_, i) => ({
        address: String(i + 1).padStart(12, '0'),
        kind: 'money' as const,
        balance: 40,
        purchaseCount: 3,
        customerNumber: String(880000000000 + i),
      })),
      // The cashier's meter, not in the batch.
      { address: '000000009999', kind: 'money' as const, balance: 40, purchaseCount: 3, customerNumber: '889999999999' },
    ],
  },
  emulateLine: { turnaroundMs: TURNAROUND_MS },
});
const broker = await startEmbeddedBroker({ port: 0 });
const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-allow-'));
writeFileSync(
  join(dir, 'meterd.yaml'),
  `gateway: { id: bench-allow, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", baudRate: ${BAUD}, parity: even }
meters:
  - { id: office-1, bus: bus1, address: "000000009999", customerNo: "889999999999", profile: dlt645-2007-single-phase-prepaid-money }
${Array.from({ length: METERS }, (_, i) => `  - { id: room-${i + 1}, bus: bus1, address: "${String(i + 1).padStart(12, '0')}", customerNo: "${880000000000 + i}", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h, daily: 1d }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1500
    terms: [{ id: t1, rounds: [{ id: r1, date: "2099-01-01" }] }]
`,
);
const gw = await startGateway(loadGatewayConfig(join(dir, 'meterd.yaml'), {}), { logger: silentLogger });
// Polls are spread over their hour-long intervals, so the batch has the line almost to itself; a poll that falls in
// it counts towards the line's bytes too, which only makes the measured share look lower.
await new Promise((r) => setTimeout(r, 3000));
// A cashier's top-up on the idle bus, then one in the middle of the batch: the difference is its wait for the batch.
const topup = async (requestId: string) => {
  const t = performance.now();
  const { entry } = await gw.credit.topUp({
    requestId,
    meterId: 'office-1',
    channel: 'operator',
    amountFen: 100,
    operator: 'bench',
    customerNo: '889999999999',
  });
  if (entry.state !== 'applied') throw new Error(`top-up ${requestId} ${entry.state}`);
  return performance.now() - t;
};
const idle0 = sim.bus.stats();
const idleTopupMs = await topup('cash-idle');
const cashierBytes = sim.bus.stats().lineBytes - idle0.lineBytes;
const cashierExchanges = sim.bus.stats().requests - idle0.requests;
const bytes0 = sim.bus.stats().lineBytes;
const requests0 = sim.bus.stats().requests;
const t0 = performance.now();
gw.allowances.runNow({ allowance: 'dorm-free', term: 't1', round: 'r1' }, { by: 'bench' });
while ((gw.allowances.roundStatus({ allowance: 'dorm-free', term: 't1', round: 'r1' })?.counts.applied ?? 0) < 3)
  await new Promise((r) => setTimeout(r, 20));
const busyTopupMs = await topup('cash-busy');
while (gw.allowances.roundStatus({ allowance: 'dorm-free', term: 't1', round: 'r1' })?.complete !== true)
  await new Promise((r) => setTimeout(r, 50));
const ms = performance.now() - t0;
const status = gw.allowances.roundStatus({ allowance: 'dorm-free', term: 't1', round: 'r1' })!;
// The cashier's exchanges are not the batch's.
const lineBytes = sim.bus.stats().lineBytes - bytes0 - cashierBytes;
const exchanges = sim.bus.stats().requests - requests0 - cashierExchanges;
const lineMs = lineBytes * BYTE_MS + exchanges * TURNAROUND_MS;
const measured = (METERS / ms) * 60_000;
const theoretical = (METERS / lineMs) * 60_000;
console.log(`one ${BAUD}-baud bus (8E1, ${BYTE_MS.toFixed(2)} ms a byte emulated), ${TURNAROUND_MS} ms meter turnaround, ${METERS} rows`);
console.log(`  applied ${status.counts.applied}/${METERS} in ${(ms / 1000).toFixed(1)} s: ${measured.toFixed(1)} rows/min`);
console.log(
  `  per row: ${(exchanges / METERS).toFixed(1)} exchanges, ${(lineBytes / METERS).toFixed(0)} bytes on the line (the wallet read before, the load, the wallet read back)`,
);
console.log(
  `  what the line allows for those frames: ${theoretical.toFixed(1)} rows/min (${(lineMs / METERS).toFixed(0)} ms of bytes and turnaround a row); the gateway reaches ${((measured / theoretical) * 100).toFixed(0)} %`,
);
const exchangeMs = lineMs / exchanges;
console.log(
  `  a cashier's top-up (${cashierExchanges} exchanges) on the idle bus: ${idleTopupMs.toFixed(0)} ms; during the batch: ${busyTopupMs.toFixed(0)} ms, a difference of ${(busyTopupMs - idleTopupMs).toFixed(0)} ms, ${((busyTopupMs - idleTopupMs) / exchangeMs).toFixed(1)} batch exchanges of ${exchangeMs.toFixed(0)} ms (the arbiter bounds its wait by the one exchange in flight; a few tens of ms is noise)`,
);
await gw.stop();
await sim.close();
await broker.close();

// 2. Planning 10,000 rows.
const ROWS = 10_000;
const clock = new ManualClock(Date.UTC(2026, 8, 7, 1, 0));
const store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-bench-plan-')), 'meterd.db'), clock });
const meters = Array.from({ length: ROWS }, (_, i) => ({
  id: `room-${i}`,
  busId: `bus${i % 40}`,
  address: String(i + 1).padStart(12, '0'),
  customerNo: String(880000000000 + i),
  tags: ['dorm'],
  creditUnit: 'money' as const,
}));
const service = new AllowanceService({
  store,
  clock,
  timeZone: 'UTC',
  allowances: [
    {
      id: 'dorm-free',
      meters: { tags: ['dorm'], ids: [], districts: [] },
      unit: 'money',
      amount: 1500,
      at: '00:00',
      deadlineMs: 14 * 86_400_000,
      retryMs: 300_000,
      terms: [{ id: 't1', rounds: [{ id: 'r1', date: '2026-09-07' }] }],
    },
  ],
  meters,
  busIds: [],
  credit: {
    topUp: () => Promise.reject(new Error('not in this benchmark')),
    reachable: () => Promise.resolve(false),
  },
});
const p0 = performance.now();
const planned = service.planDue();
const planMs = performance.now() - p0;
const counts = service.roundStatus({ allowance: 'dorm-free', term: 't1', round: 'r1' })!.counts;
const a0 = performance.now();
service.planDue();
const againMs = performance.now() - a0;
console.log(
  `planning a round of ${ROWS.toLocaleString('en')} rows: ${planMs.toFixed(0)} ms (${planned.length} round, ${counts.planned} rows, one durable transaction); planning again: ${againMs.toFixed(1)} ms, nothing written`,
);
store.close();
