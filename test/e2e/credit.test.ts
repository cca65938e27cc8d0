import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore } from '../../src/store/index.js';
import {
  clearRetained,
  eventually,
  startTestBroker,
  uniqueId,
  watchTopics,
  type TestBroker,
  type TopicWatcher,
} from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: { state?: string; purchaseCount?: number; after?: { count: number; balance: number }; relay?: string };
}

const ADDRESS = '000000000501';
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let gw: string;
let daemon: DaemonProcess | undefined;
let dir: string | undefined;

function config(): string {
  return `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
commands: { allowUnsigned: true }   # the station here sends unsigned top-ups and relay commands
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 6s, retries: 1 }
meters:
  - { id: room-501, bus: bus1, address: "${ADDRESS}", customerNo: "880000000501", profile: dlt645-2007-single-phase-prepaid }
polling:
  intervals: { instant: 30s, energy: 30s, status: 30s, credit: 30s }
`;
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: ADDRESS, kind: 'energy', balance: 10, purchaseCount: 20, customerNumber: '880000000501' }] },
  });
  gw = uniqueId('gw-credit');
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-cmd') });
});
afterEach(() => sim.bus.setFaults({ delayMs: undefined }, ADDRESS));
afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await station?.endAsync();
  await watcher?.close();
  await clearRetained(broker.url, [`meterd/${gw}/status`, `meterd/${gw}/meters/room-501/state`]);
  await sim?.close();
  await broker?.close();
});

const meter = () => sim.meters.get(ADDRESS)!.snapshot();
const replies = (requestId: string) => watcher.json<Reply>(`meterd/${gw}/cmd/topup/result`).filter((r) => r.requestId === requestId);
const send = (command: string, payload: Record<string, unknown>) =>
  station.publishAsync(`meterd/${gw}/cmd/${command}`, JSON.stringify(payload), { qos: 1 });
const finalReply = (requestId: string) =>
  watcher.waitFor(() => replies(requestId).some((r) => r.status !== 'accepted'), `a final reply to ${requestId}`, 30_000);

async function start(): Promise<void> {
  daemon = startDaemon(config(), { ...(dir ? { dir } : {}), logLevel: 'info' });
  dir = daemon.dir;
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
}

async function kill(): Promise<void> {
  daemon!.child.kill('SIGKILL');
  await daemon!.exited();
}

function ledgerState(requestId: string): string | undefined {
  const store = openStore({ path: join(dir!, 'data', 'meterd.db'), clock: systemClock });
  try {
    return store.ledger.get(requestId)?.state;
  } finally {
    store.close();
  }
}

describe('top-up over MQTT with the meterd process: exactly once', { timeout: 120_000 }, () => {
  it('a top-up lands once; its done reply carries the new balance and purchase count', async () => {
    await start();
    await send('topup', { requestId: 'pay-1', meter: 'room-501', energyKwh: 12.34 });
    await finalReply('pay-1');
    expect(replies('pay-1').map((r) => r.status)).toEqual(['accepted', 'done']);
    expect(replies('pay-1')[1]!.result).toMatchObject({ state: 'applied', purchaseCount: 21, after: { count: 21, balance: 22.34 } });
    expect(meter()).toMatchObject({ purchaseCount: 21, balance: 2234 });
  });

  it('the same request again, and twice at once, lands once', async () => {
    await send('topup', { requestId: 'pay-1', meter: 'room-501', energyKwh: 12.34 });
    await Promise.all([
      send('topup', { requestId: 'pay-2', meter: 'room-501', energyKwh: 1 }),
      send('topup', { requestId: 'pay-2', meter: 'room-501', energyKwh: 1 }),
    ]);
    await finalReply('pay-2');
    await watcher.waitFor(
      () => replies('pay-1').filter((r) => r.status === 'done').length >= 2,
      'the repeated pay-1 answered from the record',
    );
    // The copy that arrived while the first ran is told "accepted" again; one load, one result.
    expect(
      replies('pay-2')
        .filter((r) => r.status === 'done')
        .map((r) => r.result?.purchaseCount),
    ).toEqual([22]);
    expect(meter()).toMatchObject({ purchaseCount: 22, balance: 2334 });
  });

  it('a malformed command is rejected by name and changes nothing', async () => {
    await station.publishAsync(`meterd/${gw}/cmd/topup`, JSON.stringify({ requestId: 'bad-1', meter: 'room-501', energyKwh: -5 }), {
      qos: 1,
    });
    await watcher.waitFor(() => replies('bad-1').length > 0, 'the rejection');
    expect(replies('bad-1')[0]).toMatchObject({ status: 'rejected', error: { field: 'energyKwh' } });
    expect(meter().purchaseCount).toBe(22);
  });

  for (const [state, holdMs] of [
    ['received', 4000],
    ['writing', 4000],
    ['verifying', 4000],
  ] as const) {
    it(`SIGKILL while the load is "${state}": after a restart it ends applied exactly once, and the meter proves it`, async () => {
      const before = meter();
      const requestId = `crash-${state}`;
      // Slow replies hold the daemon in each state long enough to kill it there.
      sim.bus.setFaults({ delayMs: holdMs }, ADDRESS);
      await send('topup', { requestId, meter: 'room-501', energyKwh: 5 });
      await eventually(() => ledgerState(requestId) === state, `the load to reach "${state}"`, 30_000);
      await kill();
      sim.bus.setFaults({ delayMs: undefined }, ADDRESS);
      await start();
      await eventually(() => ledgerState(requestId) === 'applied', `${requestId} applied after the restart`, 30_000).catch((err: Error) => {
        throw new Error(
          `${err.message}; ledger says ${ledgerState(requestId)}; daemon log:\n${daemon!.stderr().split('\n').slice(-15).join('\n')}`,
        );
      });
      expect(meter()).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 500 });
      await finalReply(requestId);
      expect(replies(requestId).at(-1)).toMatchObject({
        status: 'done',
        result: { state: 'applied', purchaseCount: before.purchaseCount! + 1 },
      });
    });
  }

  it('a relay trip then close over MQTT, each confirmed by the meter and by the published state', async () => {
    const relay = (id: string) => watcher.json<Reply>(`meterd/${gw}/cmd/relay/result`).filter((r) => r.requestId === id);
    await send('relay', { requestId: 'trip-1', meter: 'room-501', action: 'trip' });
    await watcher.waitFor(() => relay('trip-1').some((r) => r.status !== 'accepted'), 'the trip result', 20_000);
    expect(relay('trip-1').at(-1)).toMatchObject({ status: 'done', result: { relay: 'open' } });
    expect(meter().relay.open).toBe(true);
    await send('relay', { requestId: 'close-1', meter: 'room-501', action: 'close' });
    await watcher.waitFor(() => relay('close-1').some((r) => r.status !== 'accepted'), 'the close result', 20_000);
    expect(relay('close-1').at(-1)).toMatchObject({ status: 'done', result: { relay: 'closed' } });
    expect(meter().relay.open).toBe(false);
    const state = watcher.json(`meterd/${gw}/meters/room-501/state`).at(-1);
    expect(state).toMatchObject({ relay: 'closed', relayChange: { action: 'close', requestedBy: 'close-1' } });
  });
});
