import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { startDaemonRig, type DaemonRig } from '../helpers/daemon-rig.js';

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: { state?: string; purchaseCount?: number; after?: { count: number; balance: number } };
}

const ADDRESS = '000000000601';
const CUSTOMER = '880000000601';
const PROFILES = fileURLToPath(new URL('../fixtures/profiles', import.meta.url));
let rig: DaemonRig;
/** The station's encryption machine, holding the same test key as the simulated meter's ESAM. */
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
let answering = true;

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-esam',
    station: 'station-hsm',
    buses: [
      {
        meters: [
          { address: ADDRESS, kind: 'money', balance: 10, purchaseCount: 3, customerNumber: CUSTOMER, esam: { key: ESAM_TEST_KEY } },
        ],
      },
    ],
    // The test station: answers the gateway's encryption-machine questions with the test key (or stays silent).
    hsm: { machine: hsm, answers: () => answering },
  });
  await rig.start(`gateway: { id: ${rig.gw}, dataDir: ./data }
mqtt: { url: "${rig.broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }   # the station here sends unsigned top-ups
profiles: { dirs: ["${PROFILES}"] }
credit: { hsmTimeout: 2s }
buses:
  - { id: bus1, port: "${rig.busUrl()}", gap: 5ms, timeout: 3s, retries: 1 }
meters:
  - { id: esam-601, bus: bus1, address: "${ADDRESS}", customerNo: "${CUSTOMER}", profile: acme-esam-money }
polling:
  intervals: { instant: 30s, credit: 30s }
`);
});
afterAll(async () => {
  await rig?.close({ retained: ['status', 'meters/esam-601/state', 'buses/bus1/state'] });
});

const meter = () => rig.sim.meters.get(ADDRESS)!.snapshot();
const topup = (payload: Record<string, unknown>) => rig.send<Reply>('topup', payload);

describe('meterd run: a top-up on an ESAM meter through the station encryption machine over MQTT', () => {
  it('lands once: the gateway asks hsm/request for ciphertext and MACs, the meter counts +1 and its balance rises', async () => {
    const r = await topup({ requestId: 'esam-1', meter: 'esam-601', amountFen: 2500 });
    expect(r, rig.daemon.stderr()).toMatchObject({
      status: 'done',
      result: { state: 'applied', purchaseCount: 4, after: { count: 4, balance: 35 } },
    });
    expect(meter()).toMatchObject({ purchaseCount: 4, balance: 3500, esam: { authentications: 1, macFailures: 0 } });
    const ops = rig.watcher.json<{ op: string }>(`meterd/${rig.gw}/hsm/request`).map((q) => q.op);
    expect(ops).toEqual(['identity', 'recharge-macs']);
  });

  it('a station that does not answer in time: rejected HSM_TIMEOUT, settled by reading the meter, nothing loaded', async () => {
    answering = false;
    const r = await topup({ requestId: 'esam-2', meter: 'esam-601', amountFen: 2500 });
    expect(r).toMatchObject({ status: 'rejected', error: { code: 'HSM_TIMEOUT' }, result: { state: 'rejected', after: { count: 4 } } });
    expect(meter()).toMatchObject({ purchaseCount: 4, balance: 3500, esam: { authentications: 1 } });
  });
});
