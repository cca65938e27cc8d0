import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { systemClock } from '../../src/clock.js';
import type { CreditPort } from '../../src/devices/credit-port.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { dlt645EsamCreditPort } from '../../src/devices/esam-credit-port.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { DeviceProfile } from '../../src/profiles/types.js';
import { CreditService } from '../../src/services/credit.js';
import type { EncryptionMachine } from '../../src/devices/encryption-machine.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { openStore, type Store } from '../../src/store/index.js';
import mqtt, { type MqttClient } from 'mqtt';
import { MqttEncryptionMachine } from '../../src/uplink/hsm.js';
import { MqttSession } from '../../src/uplink/session.js';
import { startTestBroker, testMqttSettings, uniqueId, type TestBroker } from '../helpers/broker.js';

const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;
const AUTH = { password: { level: 2, code: '000000' }, operator: '00000001' };
const WRONG_KEY = 'FFEEDDCCBBAA99887766554433221100';
const CUSTOMER = '880000000021';

/** The shipped money profile with its credit method switched to dlt645-esam (same read-back points). */
function esamProfile(): DeviceProfile {
  const money = loadProfiles().get('dlt645-2007-single-phase-prepaid-money')!;
  return { ...money, credit: { method: 'dlt645-esam', unit: 'money', readBack: money.credit!.readBack } } as DeviceProfile;
}

let broker: TestBroker;
let session: MqttSession;
let machine: MqttEncryptionMachine;
let station: MqttClient;
const stationRequests: Record<string, unknown>[] = [];
/** When set, the test station answers every request with this error instead of MACs. */
let stationError: { code: string; message: string } | undefined;
let sim: Dlt645Simulator;
let bus: FrameBus<Frame>;
let store: Store;
let service: CreditService;
const ports = new Map<string, CreditPort>();
const good = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
const wrong = new LocalTestEncryptionMachine(WRONG_KEY);

beforeAll(async () => {
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: ['21', '22', '23', '24', '25'].map((address) => ({
        address,
        kind: 'money' as const,
        balance: 20,
        purchaseCount: 4,
        customerNumber: CUSTOMER,
        esam: { key: ESAM_TEST_KEY },
      })),
    },
  });
  bus = await openBus<Frame>({
    id: 'bus1',
    port: `tcp://127.0.0.1:${sim.address!.tcpPort}`,
    line: LINE,
    decoder: new Dlt645Decoder(),
    gapMs: 0,
  });
  const profile = esamProfile();
  const port = (address: string, machine: EncryptionMachine, hsmTimeoutMs?: number) =>
    dlt645EsamCreditPort(new Dlt645Meter({ link: bus, address, timeoutMs: 300, readRetries: 1 }), profile, AUTH, machine, { hsmTimeoutMs });
  ports.set('esam-21', port('000000000021', good));
  // The identity key is right but the recharge MACs come from another key: the meter authenticates, then says MAC failed.
  ports.set('esam-22', port('000000000022', { identity: (m) => good.identity(m), rechargeMacs: (i) => wrong.rechargeMacs(i) }));
  // An encryption machine that never answers.
  ports.set(
    'esam-23',
    port('000000000023', { identity: () => new Promise(() => undefined), rechargeMacs: () => new Promise(() => undefined) }, 200),
  );
  // Wrong recharge MACs, then an encryption machine that never answers the re-authentication.
  let identities = 0;
  ports.set(
    'esam-25',
    port(
      '000000000025',
      {
        identity: (m) => (++identities === 1 ? good.identity(m) : new Promise(() => undefined)),
        rechargeMacs: (i) => wrong.rechargeMacs(i),
      },
      200,
    ),
  );
  // Over a real broker: the gateway's MQTT encryption machine, and a test station answering hsm/request with the test key.
  broker = await startTestBroker();
  const gatewayId = uniqueId('gw');
  session = new MqttSession({
    mqtt: testMqttSettings(broker.url),
    gatewayId,
    birth: () => ({ version: '0.0.0-test', startedAt: new Date().toISOString(), buses: [] }),
  });
  session.start();
  await session.waitConnected({ timeoutMs: 10_000 });
  machine = new MqttEncryptionMachine(session, { timeoutMs: 10_000 });
  await machine.start();
  station = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: uniqueId('station'), protocolVersion: 4 }, false);
  station.on('message', (_topic, payload) => {
    const req = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    stationRequests.push(req);
    if (stationError) {
      void station.publishAsync(`meterd/${gatewayId}/hsm/reply`, JSON.stringify({ requestId: req.requestId, error: stationError }), {
        qos: 1,
      });
      return;
    }
    const answer =
      req.op === 'identity'
        ? good.identity({ address: String(req.address), meterNumber: String(req.meterNumber) })
        : good.rechargeMacs({
            address: String(req.address),
            random2: String(req.random2),
            esamSerial: String(req.esamSerial),
            amount: Number(req.amount),
            count: Number(req.count),
            customerNo: String(req.customerNo),
          });
    void answer.then((a) =>
      station.publishAsync(`meterd/${gatewayId}/hsm/reply`, JSON.stringify({ requestId: req.requestId, ...a }), { qos: 1 }),
    );
  });
  await station.subscribeAsync(`meterd/${gatewayId}/hsm/request`, { qos: 1 });
  ports.set('esam-24', port('000000000024', machine));
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-esam-')), 'meterd.db'), clock: systemClock });
  service = new CreditService({ store, clock: systemClock, ports });
});
afterAll(async () => {
  await station?.endAsync();
  await machine?.stop();
  await session?.close();
  await broker?.close();
  store?.close();
  await bus?.close();
  await sim?.close();
});

const snap = (address: string) => sim.meters.get(address)!.snapshot();

describe('credit on ESAM meters: identity authentication, MACs from the encryption machine, recharge', () => {
  it('a top-up with MACs from the test key lands once: count +1, balance up', async () => {
    const r = await service.topUp({ requestId: 'e-1', meterId: 'esam-21', channel: 'remote', amountFen: 5000, customerNo: CUSTOMER });
    expect(r.entry).toMatchObject({
      state: 'applied',
      purchaseCount: 5,
      before: { count: 4, balance: 2000 },
      after: { count: 5, balance: 7000 },
    });
    expect(snap('000000000021')).toMatchObject({
      purchaseCount: 5,
      balance: 7000,
      esam: { authentications: 1, macFailures: 0, sessionOpen: true },
    });
    // The same request id again: the first result, nothing written.
    const again = await service.topUp({ requestId: 'e-1', meterId: 'esam-21', channel: 'remote', amountFen: 5000, customerNo: CUSTOMER });
    expect(again.fresh).toBe(false);
    expect(snap('000000000021')).toMatchObject({ purchaseCount: 5, balance: 7000, esam: { authentications: 1 } });
  });

  it('wrong MACs: one re-authentication, then MAC failed; the ledger says rejected and the meter is unchanged', async () => {
    const r = await service.topUp({ requestId: 'e-2', meterId: 'esam-22', channel: 'remote', amountFen: 5000, customerNo: CUSTOMER });
    expect(r.entry).toMatchObject({
      state: 'rejected',
      purchaseCount: 5,
      error: { code: 'MAC_FAILED' },
      after: { count: 4, balance: 2000 },
    });
    expect(snap('000000000022')).toMatchObject({
      purchaseCount: 4,
      balance: 2000,
      esam: { authentications: 2, authenticationFailures: 0, macFailures: 2 },
    });
  });

  it('an encryption machine that does not answer: nothing is written, the row is settled by reading the meter', async () => {
    const r = await service.topUp({ requestId: 'e-3', meterId: 'esam-23', channel: 'remote', amountFen: 5000, customerNo: CUSTOMER });
    expect(r.entry).toMatchObject({
      state: 'rejected',
      error: { code: 'HSM_TIMEOUT' },
      before: { count: 4, balance: 2000 },
      after: { count: 4, balance: 2000 },
    });
    expect(snap('000000000023')).toMatchObject({ purchaseCount: 4, balance: 2000, esam: { authentications: 0 } });
  });

  it('an encryption machine that goes silent while re-authenticating after a MAC failure: rejected HSM_TIMEOUT, one MAC failure only', async () => {
    const r = await service.topUp({ requestId: 'e-8', meterId: 'esam-25', channel: 'remote', amountFen: 5000, customerNo: CUSTOMER });
    expect(r.entry).toMatchObject({
      state: 'rejected',
      error: { code: 'HSM_TIMEOUT', message: expect.stringContaining('MAC') },
      after: { count: 4, balance: 2000 },
    });
    expect(snap('000000000025')).toMatchObject({ purchaseCount: 4, balance: 2000, esam: { authentications: 1, macFailures: 1 } });
  });

  it('the station-supplied ciphertext (topup esam) is used for identity authentication', async () => {
    const esam = await good.identity({ address: '000000000021', meterNumber: '000000000021' });
    const r = await service.topUp({ requestId: 'e-4', meterId: 'esam-21', channel: 'remote', amountFen: 100, customerNo: CUSTOMER, esam });
    expect(r.entry).toMatchObject({ state: 'applied', purchaseCount: 6, after: { count: 6, balance: 7100 } });
    expect(snap('000000000021').esam).toMatchObject({ authentications: 2, authenticationFailures: 0 });
    // A stale or wrong station ciphertext: the meter refuses it, the one re-authentication asks the encryption machine.
    const stale = await wrong.identity({ address: '000000000021', meterNumber: '000000000021' });
    const r2 = await service.topUp({
      requestId: 'e-5',
      meterId: 'esam-21',
      channel: 'remote',
      amountFen: 100,
      customerNo: CUSTOMER,
      esam: stale,
    });
    expect(r2.entry).toMatchObject({ state: 'applied', purchaseCount: 7, after: { count: 7, balance: 7200 } });
    expect(snap('000000000021').esam).toMatchObject({ authentications: 4, authenticationFailures: 1 });
  });

  it('over a real broker: the MQTT encryption machine asks the station for ciphertext and MACs; a top-up lands once', async () => {
    const r = await service.topUp({ requestId: 'e-6', meterId: 'esam-24', channel: 'remote', amountFen: 1234, customerNo: CUSTOMER });
    expect(r.entry).toMatchObject({
      state: 'applied',
      purchaseCount: 5,
      before: { count: 4, balance: 2000 },
      after: { count: 5, balance: 3234 },
    });
    expect(snap('000000000024')).toMatchObject({ purchaseCount: 5, balance: 3234, esam: { authentications: 1, macFailures: 0 } });
    expect(stationRequests.map((q) => q.op)).toEqual(['identity', 'recharge-macs']);
    expect(stationRequests[1]).toMatchObject({
      address: '000000000024',
      amount: 1234,
      count: 5,
      customerNo: CUSTOMER,
      random2: expect.stringMatching(/^[0-9A-F]{8}$/),
      esamSerial: expect.stringMatching(/^[0-9A-F]{16}$/),
    });
    const again = await service.topUp({ requestId: 'e-6', meterId: 'esam-24', channel: 'remote', amountFen: 1234, customerNo: CUSTOMER });
    expect(again.fresh).toBe(false);
    expect(snap('000000000024')).toMatchObject({ purchaseCount: 5, balance: 3234 });
    expect(stationRequests).toHaveLength(2);
  });

  it('a station whose encryption machine answers with an error: rejected HSM_FAILED, nothing sent to the meter', async () => {
    stationError = { code: 'KEY_NOT_FOUND', message: 'no key for this meter' };
    try {
      const r = await service.topUp({ requestId: 'e-7', meterId: 'esam-24', channel: 'remote', amountFen: 100, customerNo: CUSTOMER });
      expect(r.entry).toMatchObject({
        state: 'rejected',
        error: { code: 'HSM_FAILED', message: expect.stringContaining('KEY_NOT_FOUND') },
        after: { count: 5, balance: 3234 },
      });
      expect(snap('000000000024')).toMatchObject({ purchaseCount: 5, balance: 3234, esam: { authentications: 1 } });
      expect(stationRequests.slice(2).map((q) => q.op)).toEqual(['identity']);
    } finally {
      stationError = undefined;
    }
  });

  it('the simulated ESAM meter refuses a recharge without authentication, and a wrong ciphertext', async () => {
    const machine = new LocalTestEncryptionMachine(WRONG_KEY);
    const p = dlt645EsamCreditPort(
      new Dlt645Meter({ link: bus, address: '000000000022', timeoutMs: 300, readRetries: 1 }),
      esamProfile(),
      AUTH,
      machine,
    );
    const out = await p.load({ purchaseCount: 5, amount: 100, customerNo: CUSTOMER }, { priority: 'credit' });
    expect(out).toMatchObject({ kind: 'refused', code: 'AUTHENTICATION_FAILED' });
    expect(snap('000000000022')).toMatchObject({
      purchaseCount: 4,
      esam: { authentications: 4, authenticationFailures: 2, sessionOpen: false },
    });
  });
});
