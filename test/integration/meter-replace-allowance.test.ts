import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { allowanceRows } from '../../src/store/index.js';
import { clearRetained, eventually, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';

// An allowance row of a point whose meter died (it stays pending, retried) is loaded onto the replacement, once.

const OLD = '000000000441';
const NEW = '000000000442';
const CUSTOMER = '660000000441';
const KEY = { allowance: 'dorm-free', term: 't1', round: 'r1' };
let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
const gatewayId = uniqueId('gw-replace-allow');

beforeAll(async () => {
  broker = await startTestBroker();
  // The old meter is not on the bus: it died before the allowance round.
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: NEW, kind: 'money', balance: 0, purchaseCount: 0, customerNumber: CUSTOMER }] },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-replace-allow-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 300ms, retries: 0 }
meters:
  - { id: room-a, bus: bus1, address: "${OLD}", customerNo: "${CUSTOMER}", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1200
    retry: 1s
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2099-09-07" }
`,
  );
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await clearRetained(broker.url, [`meterd/${gatewayId}/status`, `meterd/${gatewayId}/allowances/dorm-free`]);
  await sim?.close();
  await broker?.close();
});

const row = () => gw.store.transaction((tx) => allowanceRows(tx, KEY))[0]!;

describe('an allowance row across a meter replacement', { timeout: 60_000 }, () => {
  it('a row left pending by the dead meter loads onto the new meter once, after the swap', async () => {
    gw.allowances.runNow(KEY, { by: 'test' });
    await eventually(() => row().reasonCode === 'METER_UNREACHABLE', 'the row waiting for the dead meter', 20_000);
    expect(row()).toMatchObject({ state: 'pending', address: OLD });

    const { final } = gw.desk.submit(
      'meter-replace',
      {
        requestId: 'swap-a',
        meter: 'room-a',
        newAddress: NEW,
        operator: 'li',
        reason: 'dead',
        final: { importKwh: 10, balance: 5, purchaseCount: 2 },
      },
      { operator: 'li' },
    );
    expect(await final).toMatchObject({ status: 'done', result: { moved: { amount: 5 } } });

    await eventually(() => row().state === 'applied', 'the row applied on the new meter', 30_000);
    expect(row().address).toBe(NEW);
    // The transfer (count 1, 5.00 yuan), then the allowance (count 2, 12.00 yuan): each once.
    expect(sim.meters.get(NEW)!.snapshot()).toMatchObject({ purchaseCount: 2, balance: 1700 });
    const loads = gw.store.ledger.list({ meterId: 'room-a' }).filter((e) => e.state === 'applied');
    expect(loads.map((e) => [e.channel, e.amount, e.purchaseCount])).toEqual([
      ['transfer', 500, 1],
      ['allowance', 1200, 2],
    ]);
  });
});
