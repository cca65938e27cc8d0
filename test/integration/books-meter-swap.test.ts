import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadGatewayConfig, type GatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { TRUSTED_CLOCK } from '../../src/services/alerts/service.js';
import { Books, type BooksPeriod, type MeterReconciliation } from '../../src/services/books/index.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { purchaseCounterWindow } from '../../src/store/index.js';
import { eventually, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';
import { stopGatewayRig, submitReplace } from '../helpers/replace-rig.js';

// The books' purchase-counter check across a meter replacement (issue 16): the real gateway replaces a money meter
// (counter 5) by a new one (counter 0) on simulated DL/T 645 meters; the day's and the month's books reconcile each
// meter over its own time at the point, state the swap in plain words, and still find a load from outside on the new
// meter. Wall time is a ManualClock (readings and the swap are stamped with it); the polls run on real timers.

const TZ = 'Asia/Shanghai';
const local = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+08:00`);
const OLD = '000000000551';
const NEW = '000000000552';
const QUIET = '000000000553';
const CUSTOMER = '660000000551';
const DAY: BooksPeriod = { kind: 'daily', date: '2026-12-04' };
const MONTH: BooksPeriod = { kind: 'monthly', month: '2026-12' };

const clock = new ManualClock(local('2026-12-03', '20:00'));
let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
let config: GatewayConfig;
const gatewayId = uniqueId('gw-books-swap');

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        { address: OLD, kind: 'money', balance: 37.5, purchaseCount: 5, customerNumber: CUSTOMER },
        { address: NEW, kind: 'money', balance: 0, purchaseCount: 0, customerNumber: CUSTOMER },
        { address: QUIET, kind: 'money', balance: 10, purchaseCount: 3, customerNumber: '660000000553' },
      ],
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-books-swap-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: ${TZ} }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 300ms, retries: 0 }
meters:
  - { id: room-a, bus: bus1, address: "${OLD}", customerNo: "${CUSTOMER}", profile: dlt645-2007-single-phase-prepaid-money }
  - { id: room-q, bus: bus1, address: "${QUIET}", customerNo: "660000000553", profile: dlt645-2007-single-phase-prepaid-money }
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1s, daily: 1d }
`,
  );
  config = loadGatewayConfig(file, {});
  gw = await startGateway(config, { logger: silentLogger, clock, clockTrust: TRUSTED_CLOCK });
}, 30_000);

afterAll(() => stopGatewayRig({ gw, sim, broker, gatewayId, meterIds: ['room-a', 'room-q'] }));

/** Waits for a poll of the point's counter stamped at the clock's present time, at this count. */
async function polledAt(meterId: string, count: number): Promise<void> {
  const at = clock.now();
  await eventually(
    () => gw.store.transaction((tx) => purchaseCounterWindow(tx, meterId, at, at + 1)?.last.count === count),
    `a poll of ${meterId} at counter ${count}`,
    15_000,
  );
}

/** The books as `meterd report` makes them: the config's meters (the old address), the register in the store. */
function row(period: BooksPeriod, meterId: string): MeterReconciliation | undefined {
  const books = new Books({ store: gw.store, clock, gateway: config.gateway, meters: config.meters });
  return books.report(period).reconciliation.find((m) => m.meterId === meterId);
}

describe("the books' counter check across a meter replacement", { timeout: 90_000 }, () => {
  it('the swap day and the month: no counter finding, the swap stated in plain words', async () => {
    // The evening before: the old meter's counter is read at 5.
    await polledAt('room-a', 5);
    await polledAt('room-q', 3);

    clock.set(local('2026-12-04', '09:00'));
    await polledAt('room-a', 5);
    clock.set(local('2026-12-04', '10:42'));
    expect(await submitReplace(gw, { requestId: 'swap-books', meter: 'room-a', newAddress: NEW, reason: 'display dead' })).toMatchObject({
      status: 'done',
      result: { moved: { amount: 37.5, purchaseCount: 1 } },
    });
    clock.set(local('2026-12-04', '11:00'));
    await polledAt('room-a', 1);

    for (const period of [DAY, MONTH]) {
      const r = row(period, 'room-a')!;
      expect(r.findings).toEqual([]);
      expect(r).toMatchObject({
        status: 'balanced',
        address: NEW,
        opening: { count: 5 },
        closing: { count: 1 },
        counterDelta: 1,
        booksLoads: 1,
        difference: 0,
      });
      expect(r.swaps).toEqual([
        {
          at: local('2026-12-04', '10:42'),
          oldAddress: OLD,
          newAddress: NEW,
          finalCount: 5,
          initialCount: 0,
          closingCount: 1,
          transfers: 1,
          text: `meter replaced at 2026-12-04 10:42 (${OLD} → ${NEW}): old meter's counter 5 at removal, new meter's 0 → 1 (transfer)`,
        },
      ]);
      // The transfer is a load the new meter's counter confirms, not one awaiting confirmation.
      const books = new Books({ store: gw.store, clock, gateway: config.gateway, meters: config.meters });
      expect(books.report(period).unconfirmed).toEqual([]);
    }
    // A meter nobody touched is not listed.
    expect(row(DAY, 'room-q')).toBeUndefined();
  });

  it('a load from outside on the new meter after the swap is still found, on the day and in the month', async () => {
    clock.set(local('2026-12-04', '14:00'));
    // A card from another station inserted into the new meter: purchase 2, no sale in the books.
    expect(sim.meters.get(NEW)!.insertCardLoad(2, 2_000, Date.now())).toBe('loaded');
    await polledAt('room-a', 2);

    for (const period of [DAY, MONTH]) {
      const r = row(period, 'room-a')!;
      expect(r.findings.map((f) => [f.kind, f.purchaseCount])).toEqual([['outside-load', 2]]);
      expect(r).toMatchObject({ status: 'difference', opening: { count: 5 }, closing: { count: 2 }, counterDelta: 2, booksLoads: 1 });
      expect(r.swaps.map((w) => w.text)).toEqual([
        `meter replaced at 2026-12-04 10:42 (${OLD} → ${NEW}): old meter's counter 5 at removal, new meter's 0 → 2 (transfer)`,
      ]);
    }
  });

  it('the next day the new meter alone is reconciled from its own counter', async () => {
    clock.set(local('2026-12-05', '09:00'));
    await polledAt('room-a', 2);
    // Nothing moved on the 5th: the old meter's readings of the 4th are not the new meter's opening.
    expect(row({ kind: 'daily', date: '2026-12-05' }, 'room-a')).toBeUndefined();
    expect(sim.meters.get(NEW)!.insertCardLoad(3, 1_000, Date.now())).toBe('loaded');
    clock.set(local('2026-12-05', '10:00'));
    await polledAt('room-a', 3);
    const r = row({ kind: 'daily', date: '2026-12-05' }, 'room-a')!;
    expect(r).toMatchObject({ opening: { count: 2 }, closing: { count: 3 }, swaps: [] });
    expect(r.findings.map((f) => [f.kind, f.purchaseCount])).toEqual([['outside-load', 3]]);
  });
});
