import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';

/**
 * The line-loss job inside the real gateway: a district of a supply meter and two members on a simulated line, the
 * gateway's wall clock moved by the test. The meters were switched on at 2026-11-20 00:00 local time.
 */
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const local = (date: string, hhmm = '00:00') => {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const [h, min] = hhmm.split(':').map(Number) as [number, number];
  return new Date(y, m - 1, d, h, min).getTime();
};
const clock = new ManualClock(local('2026-11-20'));
const gatewayId = uniqueId('gw-lineloss');
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let file: string;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    clock,
    spec: {
      meters: [
        { address: '000000000801', kind: 'plain', phases: 3, powerKw: 0.125 },
        { address: '000000000802', kind: 'plain', powerKw: 1 },
        { address: '000000000803', kind: 'plain', powerKw: 1.25 },
      ],
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-lineloss-gw-'));
  file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: ${TZ} }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: b1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", timeout: 200ms, retries: 0, gap: 0ms }
districts:
  - { id: d1, name: North dorms transformer, supplyMeter: d1-general, ctRatio: 20 }
meters:
  - { id: d1-general, bus: b1, address: "000000000801", profile: dlt645-2007-three-phase, district: d1 }
  - { id: room-101, bus: b1, address: "000000000802", profile: dlt645-2007-single-phase-prepaid, district: d1 }
  - { id: room-102, bus: b1, address: "000000000803", profile: dlt645-2007-single-phase-prepaid, district: d1 }
`,
  );
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/lineloss/#`);
});

afterAll(async () => {
  await watcher?.close();
  await sim?.close();
  await broker?.close();
});

/** Starts the gateway at a local time, lets its start-up catch-up finish and the outbox drain, and stops it. */
async function runGatewayAt(date: string, hhmm: string): Promise<void> {
  clock.set(local(date, hhmm));
  const gw: Gateway = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger, clock });
  try {
    await gw.lineloss.idle();
    await watcher.waitFor(() => gw.store.outbox.counts().byClass.report === 0, 'the line-loss reports delivered', 10_000);
  } finally {
    await gw.stop();
  }
}

const dates = () => watcher.json<{ date: string; revision: number; ratePct: number }>(`meterd/${gatewayId}/lineloss/d1/daily`);

describe('the line-loss job in the gateway', () => {
  it('a first start computes the last day; after three days off the gateway computes the three missed days, each once', async () => {
    await runGatewayAt('2026-11-22', '00:20');
    await watcher.waitFor(() => dates().length === 1, 'the first day');
    // supply 0.125 kW × 24 h × CT 20 = 60 kWh; sales 24 + 30 = 54; loss 6 = 10 %
    expect(dates()).toEqual([expect.objectContaining({ date: '2026-11-21', revision: 1, ratePct: 10 })]);

    await runGatewayAt('2026-11-25', '00:20');
    await watcher.waitFor(() => dates().length === 4, 'the three missed days');
    expect(dates().map((d) => [d.date, d.revision])).toEqual([
      ['2026-11-21', 1],
      ['2026-11-22', 1],
      ['2026-11-23', 1],
      ['2026-11-24', 1],
    ]);
  }, 60_000);

  it('a restart on the same day publishes nothing again', async () => {
    await runGatewayAt('2026-11-25', '09:00');
    await new Promise((r) => setTimeout(r, 300));
    expect(dates().map((d) => d.date)).toEqual(['2026-11-21', '2026-11-22', '2026-11-23', '2026-11-24']);
  }, 30_000);
});
