import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { openStore } from '../../src/store/index.js';
import { commandSignature } from '../../src/uplink/commands/signature.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// An ESAM account opening with an opening purchase, the gateway killed (SIGKILL) while it waits for the encryption
// machine's opening MACs: after the restart the command resumes, the purchase is loaded once, the books have one
// opening entry and one sale, and the archive binds the customer.

const ESAM = '000000000631';
const CUSTOMER = '880000000631';
const KEY = 'account-open-crash-key';
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let daemon: DaemonProcess;
let gw: string;
let config: string;
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
/** The encryption machine holds back opening MACs while false (the gateway waits for them, then is killed). */
let answerOpenings = false;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: ESAM, kind: 'money', purchaseCount: 0, balance: 0, opened: false, esam: { key: ESAM_TEST_KEY } }] },
  });
  gw = uniqueId('gw-acct-crash');
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-crash') });
  station.on('message', (topic, payload) => {
    if (topic !== `meterd/${gw}/hsm/request`) return;
    const q = JSON.parse(payload.toString('utf8')) as Record<string, string | number>;
    if (q.op === 'opening-macs' && !answerOpenings) return;
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
  config = `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
commands: { hmacKey: "${KEY}" }
credit: { hsmTimeout: 30s }
buses: [{ id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 3s, retries: 1 }]
meters:
  - { id: esam-631, bus: bus1, address: "${ESAM}", profile: dlt645-2007-single-phase-prepaid-esam }
`;
  daemon = startDaemon(config);
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
}, 60_000);
afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited();
  }
  await station?.endAsync();
  await watcher?.close();
  await clearRetained(broker.url, [`meterd/${gw}/status`, `meterd/${gw}/meters/esam-631/state`]);
  await sim?.close();
  await broker?.close();
});

type Reply = { requestId: string; status: string; result?: Record<string, unknown>; error?: { code: string; message: string } };
const replies = (requestId: string) => watcher.json<Reply>(`meterd/${gw}/cmd/account-open/result`).filter((r) => r.requestId === requestId);

describe('account-open survives a SIGKILL while the encryption machine is asked', { timeout: 120_000 }, () => {
  it('resumes after the restart: the opening purchase loads once, one opening entry, one sale, the customer bound', async () => {
    const body = {
      requestId: 'crash-1',
      meter: 'esam-631',
      customerNo: CUSTOMER,
      name: 'Wu Fan',
      room: '6-631',
      amountFen: 3000,
      operator: 'erin',
      ts: new Date().toISOString(),
    };
    await station.publishAsync(`meterd/${gw}/cmd/account-open`, JSON.stringify({ ...body, signature: commandSignature(body, KEY) }), {
      qos: 1,
    });
    await watcher.waitFor(
      () => watcher.json<{ op: string }>(`meterd/${gw}/hsm/request`).some((q) => q.op === 'opening-macs'),
      'the gateway asking for the opening MACs',
      20_000,
    );
    expect(replies('crash-1').map((r) => r.status)).toEqual(['accepted']);
    daemon.child.kill('SIGKILL');
    await daemon.exited();
    expect(sim.meters.get(ESAM)!.snapshot()).toMatchObject({ opened: false, purchaseCount: 0 });

    answerOpenings = true;
    daemon = startDaemon(config, { dir: daemon.dir });
    await watcher.waitFor(() => replies('crash-1').some((r) => r.status !== 'accepted'), 'the resumed account-open result', 60_000);
    const final = replies('crash-1').find((r) => r.status !== 'accepted')!;
    expect(final, JSON.stringify(final)).toMatchObject({
      status: 'done',
      result: {
        method: 'dlt645-esam-opening',
        purchaseCount: 1,
        balance: 3000,
        sale: { state: 'applied', purchaseCount: 1, amount: 3000 },
      },
    });
    expect(sim.meters.get(ESAM)!.snapshot()).toMatchObject({ opened: true, customerNumber: CUSTOMER, purchaseCount: 1, balance: 3000 });

    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(store.ledger.list({ meterId: ESAM }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([['opening', 0, 0]]);
      expect(store.ledger.list({ meterId: 'esam-631' }).map((e) => [e.requestId, e.state, e.purchaseCount, e.amount])).toEqual([
        ['crash-1', 'applied', 1, 3000],
      ]);
      expect(store.archive.get(CUSTOMER)).toMatchObject({ meterAddress: ESAM, state: 'active' });
      expect(store.archive.history(CUSTOMER).map((h) => h.action)).toEqual(['open-account']);
    } finally {
      store.close();
    }
  });
});
