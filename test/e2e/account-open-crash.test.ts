import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import type { Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { commandSignature } from '../../src/uplink/commands/signature.js';
import type { TopicWatcher } from '../helpers/broker.js';
import { startDaemonRig, type DaemonRig } from '../helpers/daemon-rig.js';

// An ESAM account opening with an opening purchase, the gateway killed (SIGKILL) while it waits for the encryption
// machine's opening MACs: after the restart the command resumes, the purchase is loaded once, the books have one
// opening entry and one sale, and the archive binds the customer.

const ESAM = '000000000631';
const CUSTOMER = '880000000631';
const KEY = 'account-open-crash-key';
let rig: DaemonRig;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let gw: string;
let config: string;
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
/** The encryption machine holds back opening MACs while false (the gateway waits for them, then is killed). */
let answerOpenings = false;

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-acct-crash',
    station: 'station-crash',
    buses: [{ meters: [{ address: ESAM, kind: 'money', purchaseCount: 0, balance: 0, opened: false, esam: { key: ESAM_TEST_KEY } }] }],
    hsm: { machine: hsm, answers: (op) => op !== 'opening-macs' || answerOpenings },
  });
  sim = rig.sim;
  watcher = rig.watcher;
  station = rig.station;
  gw = rig.gw;
  config = `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${rig.broker.url}", protocolVersion: ${rig.broker.kind === 'external' ? 5 : 4} }
commands: { hmacKey: "${KEY}" }
credit: { hsmTimeout: 30s }
buses: [{ id: bus1, port: "${rig.busUrl()}", gap: 5ms, timeout: 3s, retries: 1 }]
meters:
  - { id: esam-631, bus: bus1, address: "${ESAM}", profile: dlt645-2007-single-phase-prepaid-esam }
`;
  await rig.start(config);
}, 60_000);
afterAll(async () => {
  await rig?.close({ retained: ['status', 'meters/esam-631/state'] });
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
    await rig.kill('SIGKILL');
    expect(sim.meters.get(ESAM)!.snapshot()).toMatchObject({ opened: false, purchaseCount: 0 });

    answerOpenings = true;
    await rig.start(config);
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

    rig.withStore((store) => {
      expect(store.ledger.list({ meterId: ESAM }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([['opening', 0, 0]]);
      expect(store.ledger.list({ meterId: 'esam-631' }).map((e) => [e.requestId, e.state, e.purchaseCount, e.amount])).toEqual([
        ['crash-1', 'applied', 1, 3000],
      ]);
      expect(store.archive.get(CUSTOMER)).toMatchObject({ meterAddress: ESAM, state: 'active' });
      expect(store.archive.history(CUSTOMER).map((h) => h.action)).toEqual(['open-account']);
    });
  });
});
