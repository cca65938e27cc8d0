import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, type SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { openStore } from '../../src/store/index.js';
import type { TopicWatcher } from '../helpers/broker.js';
import type { DaemonProcess } from '../helpers/daemon.js';
import { startDaemonRig, type DaemonRig } from '../helpers/daemon-rig.js';

const METER = '000012345678';
const layout = loadCardLayout('sle4442-dorm');
let rig: DaemonRig;
let encoder: SimulatedEncoder;
let watcher: TopicWatcher;
let station: MqttClient;
let daemon: DaemonProcess;
let gw: string;

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-card',
    station: 'counter',
    buses: [{ meters: [{ address: METER, kind: 'energy', purchaseCount: 3 }] }],
    encoder: true,
  });
  encoder = rig.encoder!;
  watcher = rig.watcher;
  station = rig.station;
  gw = rig.gw;
  // The books already hold purchase 3 of this meter, which the meter has taken (its write-back says 3).
  const store = openStore({ path: join(rig.dir, 'data', 'meterd.db'), clock: systemClock });
  await new LedgerCardSales(() => store).record({
    channel: 'card',
    meterNumber: METER,
    purchaseCount: 3,
    amount: 1000,
    unit: '0.01kWh',
    operator: 'alice',
    encoder: 'star-st102',
    layout: 'sle4442-dorm',
    at: new Date().toISOString(),
  });
  store.close();
  daemon = await rig.start(
    `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${rig.broker.url}", protocolVersion: ${rig.broker.kind === 'external' ? 5 : 4} }
commands: { allowUnsigned: true }   # the counter here sends unsigned card sales
buses: [{ id: bus1, port: "${rig.busUrl()}" }]
meters: [{ id: room-201, bus: bus1, address: "${METER}", profile: dlt645-2007-single-phase-prepaid }]
encoders: [{ id: counter-1, port: "${rig.encoderPort}" }]
`,
  );
}, 60_000);
afterAll(async () => {
  await rig?.close({ retained: ['status', 'meters/room-201/state'] });
});

const result = (command: string, requestId: string) =>
  watcher
    .json<{ requestId: string; status: string; result?: Record<string, unknown>; error?: { code: string } }>(
      `meterd/${gw}/cmd/${command}/result`,
    )
    .filter((r) => r.requestId === requestId);

describe('the counter over MQTT: card-read and card-sell on an encoder attached to the gateway', { timeout: 60_000 }, () => {
  it('card-read shows what the card carries; card-sell writes it and records the sale in the books', async () => {
    encoder.insert(
      cards.ours(layout, {
        meterNumber: METER,
        customerNumber: '000000000042',
        purchaseCount: 3,
        purchaseAmount: 1000,
        writeBack: { balance: 350, purchaseCount: 3 },
      }),
    );
    await station.publishAsync(`meterd/${gw}/cmd/card-read`, JSON.stringify({ requestId: 'cr-1' }), { qos: 1 });
    await watcher.waitFor(() => result('card-read', 'cr-1').some((r) => r.status !== 'accepted'), 'the card-read result', 20_000);
    expect(result('card-read', 'cr-1').at(-1)).toMatchObject({
      status: 'done',
      result: { meterNumber: METER, role: 'purchase', purchase: { count: 3 } },
    });

    await station.publishAsync(
      `meterd/${gw}/cmd/card-sell`,
      JSON.stringify({ requestId: 'cs-1', meter: 'room-201', energyKwh: 15, operator: 'carol' }),
      { qos: 1 },
    );
    await watcher.waitFor(() => result('card-sell', 'cs-1').some((r) => r.status !== 'accepted'), 'the card-sell result', 20_000);
    expect(result('card-sell', 'cs-1').at(-1), JSON.stringify(result('card-sell', 'cs-1'))).toMatchObject({
      status: 'done',
      result: { meterNumber: METER, purchaseCount: 4, amount: 1500, operator: 'carol' },
    });

    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(store.ledger.list({ meterId: METER }).map((e) => [e.channel, e.purchaseCount, e.amount, e.operator])).toEqual([
        ['card', 3, 1000, 'alice'],
        ['card', 4, 1500, 'carol'],
      ]);
    } finally {
      store.close();
    }
  });

  it('a card for another meter is refused by name and nothing is recorded', async () => {
    encoder.insert(
      cards.ours(layout, {
        meterNumber: '000099999999',
        customerNumber: '000000000001',
        purchaseCount: 1,
        purchaseAmount: 100,
        writeBack: { balance: 0, purchaseCount: 1 },
      }),
    );
    await station.publishAsync(
      `meterd/${gw}/cmd/card-sell`,
      JSON.stringify({ requestId: 'cs-2', meter: 'room-201', energyKwh: 5, operator: 'carol' }),
      { qos: 1 },
    );
    await watcher.waitFor(() => result('card-sell', 'cs-2').some((r) => r.status !== 'accepted'), 'the refusal', 20_000);
    expect(result('card-sell', 'cs-2').at(-1)).toMatchObject({ status: 'rejected', error: { code: 'CARD_NOT_FOR_METER' } });
  });
});
