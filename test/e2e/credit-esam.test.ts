import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: { state?: string; purchaseCount?: number; after?: { count: number; balance: number } };
}

const ADDRESS = '000000000601';
const CUSTOMER = '880000000601';
const PROFILES = fileURLToPath(new URL('../fixtures/profiles', import.meta.url));
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let gw: string;
let daemon: DaemonProcess | undefined;
/** The station's encryption machine, holding the same test key as the simulated meter's ESAM. */
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
let answering = true;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [{ address: ADDRESS, kind: 'money', balance: 10, purchaseCount: 3, customerNumber: CUSTOMER, esam: { key: ESAM_TEST_KEY } }],
    },
  });
  gw = uniqueId('gw-esam');
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-hsm') });
  // The test station: answers the gateway's encryption-machine questions with the test key (or stays silent).
  station.on('message', (topic, payload) => {
    if (topic !== `meterd/${gw}/hsm/request` || !answering) return;
    const q = JSON.parse(payload.toString('utf8')) as Record<string, string | number>;
    const answer =
      q.op === 'identity'
        ? hsm.identity({ address: String(q.address), meterNumber: String(q.meterNumber) })
        : hsm.rechargeMacs({
            address: String(q.address),
            random2: String(q.random2),
            esamSerial: String(q.esamSerial),
            amount: Number(q.amount),
            count: Number(q.count),
            customerNo: String(q.customerNo),
          });
    void answer.then((a) => station.publishAsync(`meterd/${gw}/hsm/reply`, JSON.stringify({ requestId: q.requestId, ...a }), { qos: 1 }));
  });
  await station.subscribeAsync(`meterd/${gw}/hsm/request`, { qos: 1 });
  daemon = startDaemon(`gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }   # the station here sends unsigned top-ups
profiles: { dirs: ["${PROFILES}"] }
credit: { hsmTimeout: 2s }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 3s, retries: 1 }
meters:
  - { id: esam-601, bus: bus1, address: "${ADDRESS}", customerNo: "${CUSTOMER}", profile: acme-esam-money }
polling:
  intervals: { instant: 30s, credit: 30s }
`);
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
});
afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited();
  }
  await station?.endAsync();
  await watcher?.close();
  await clearRetained(broker.url, [`meterd/${gw}/status`, `meterd/${gw}/meters/esam-601/state`, `meterd/${gw}/buses/bus1/state`]);
  await sim?.close();
  await broker?.close();
});

const meter = () => sim.meters.get(ADDRESS)!.snapshot();
const replies = (requestId: string) => watcher.json<Reply>(`meterd/${gw}/cmd/topup/result`).filter((r) => r.requestId === requestId);
const finalReply = async (requestId: string) => {
  await watcher.waitFor(() => replies(requestId).some((r) => r.status !== 'accepted'), `a final reply to ${requestId}`, 30_000);
  return replies(requestId).find((r) => r.status !== 'accepted')!;
};
const topup = (payload: Record<string, unknown>) => station.publishAsync(`meterd/${gw}/cmd/topup`, JSON.stringify(payload), { qos: 1 });

describe('meterd run: a top-up on an ESAM meter through the station encryption machine over MQTT', () => {
  it('lands once: the gateway asks hsm/request for ciphertext and MACs, the meter counts +1 and its balance rises', async () => {
    await topup({ requestId: 'esam-1', meter: 'esam-601', amountFen: 2500 });
    const r = await finalReply('esam-1');
    expect(r, daemon!.stderr()).toMatchObject({
      status: 'done',
      result: { state: 'applied', purchaseCount: 4, after: { count: 4, balance: 35 } },
    });
    expect(meter()).toMatchObject({ purchaseCount: 4, balance: 3500, esam: { authentications: 1, macFailures: 0 } });
    const ops = watcher.json<{ op: string }>(`meterd/${gw}/hsm/request`).map((q) => q.op);
    expect(ops).toEqual(['identity', 'recharge-macs']);
  });

  it('a station that does not answer in time: rejected HSM_TIMEOUT, settled by reading the meter, nothing loaded', async () => {
    answering = false;
    await topup({ requestId: 'esam-2', meter: 'esam-601', amountFen: 2500 });
    const r = await finalReply('esam-2');
    expect(r).toMatchObject({ status: 'rejected', error: { code: 'HSM_TIMEOUT' }, result: { state: 'rejected', after: { count: 4 } } });
    expect(meter()).toMatchObject({ purchaseCount: 4, balance: 3500, esam: { authentications: 1 } });
  });
});
