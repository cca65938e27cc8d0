import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { commandSignature } from '../../src/uplink/commands/signature.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemonRig, type CommandReplyMessage, type DaemonRig } from '../helpers/daemon-rig.js';

// Opening an account on a remote meter (account-open): a plain DL/T 645 meter gets its customer number written and
// read back; ESAM meters run account opening 070101FF with the station's encryption machine (hsm/request over MQTT),
// with an opening purchase or without. Real daemon, real broker, simulated meters over TCP, real SQLite.

const PLAIN = '000000000621';
const ESAM = '000000000622';
const ESAM_EMPTY = '000000000623';
const PLAIN_PAID = '000000000624';
const KEY = 'account-open-test-key';
let rig: DaemonRig;
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-acct',
    station: 'station-acct',
    buses: [
      {
        meters: [
          { address: PLAIN, kind: 'energy', purchaseCount: 0 },
          { address: PLAIN_PAID, kind: 'energy', purchaseCount: 2, balance: 3 },
          { address: ESAM, kind: 'money', purchaseCount: 0, balance: 0, opened: false, esam: { key: ESAM_TEST_KEY } },
          { address: ESAM_EMPTY, kind: 'money', purchaseCount: 0, balance: 0, opened: false, esam: { key: ESAM_TEST_KEY } },
        ],
      },
    ],
    // The station's encryption machine: identity, recharge MACs and opening MACs with the test key.
    hsm: { machine: hsm },
  });
  await rig.start(
    `gateway: { id: ${rig.gw}, dataDir: ./data }
mqtt: { url: "${rig.broker.url}", protocolVersion: ${rig.broker.kind === 'external' ? 5 : 4} }
commands: { hmacKey: "${KEY}" }
credit: { hsmTimeout: 5s }
buses: [{ id: bus1, port: "${rig.busUrl()}", gap: 5ms, timeout: 3s, retries: 1 }]
meters:
  - { id: plain-621, bus: bus1, address: "${PLAIN}", profile: dlt645-2007-single-phase-prepaid }
  - { id: esam-622, bus: bus1, address: "${ESAM}", profile: dlt645-2007-single-phase-prepaid-esam }
  - { id: esam-623, bus: bus1, address: "${ESAM_EMPTY}", profile: dlt645-2007-single-phase-prepaid-esam }
  - { id: plain-624, bus: bus1, address: "${PLAIN_PAID}", profile: dlt645-2007-single-phase-prepaid }
`,
  );
}, 60_000);
afterAll(async () => {
  await rig?.close({ retained: ['status', ...['plain-621', 'esam-622', 'esam-623', 'plain-624'].map((m) => `meters/${m}/state`)] });
});

const replies = (command: string, requestId: string) => rig.replies(command, requestId);
const send = (command: string, request: Record<string, unknown>, sign = true): Promise<CommandReplyMessage> =>
  rig.send(command, request, sign ? { key: KEY } : {});
const snapshot = (address: string) => rig.sim.meters.get(address)!.snapshot();

describe('account-open on remote meters', { timeout: 120_000 }, () => {
  it('a plain meter: meterd account open -c writes the customer number, reads it back, binds the archive, opens the books', async () => {
    const r = await runMeterd(
      [
        'account',
        'open',
        '-c',
        rig.daemon.configPath,
        '--meter',
        'plain-621',
        '--customer',
        '880000000621',
        '--name',
        'Sun Li',
        '--room',
        '6-621',
        '--operator',
        'alice',
        '--json',
      ],
      { cwd: rig.dir },
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({
      meterId: 'plain-621',
      customerNo: '880000000621',
      method: 'dlt645-customer-number',
      purchaseCount: 0,
      openedBooks: true,
    });
    expect(snapshot(PLAIN).customerNumber).toBe('880000000621');
    rig.withStore((store) => {
      expect(store.archive.get('880000000621')).toMatchObject({ meterAddress: PLAIN, state: 'active', name: 'Sun Li' });
      expect(store.archive.history('880000000621').map((h) => [h.operator, h.action])).toEqual([['alice', 'open-account']]);
      expect(store.ledger.list({ meterId: PLAIN }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([['opening', 0, 0]]);
    });
    // The meter now checks the customer number on every recharge: a top-up naming the customer loads.
    const top = await send('topup', { requestId: 'acct-top-1', meter: 'plain-621', energyKwh: 12.5, customerNo: '880000000621' });
    expect(top, JSON.stringify(top)).toMatchObject({ status: 'done', result: { state: 'applied', purchaseCount: 1 } });
  });

  it('an ESAM meter with an opening purchase: 070101FF through the encryption machine, one opening entry and one sale', async () => {
    const unsigned = await send(
      'account-open',
      { requestId: 'ao-0', meter: 'esam-622', customerNo: '880000000622', operator: 'bob' },
      false,
    );
    expect(unsigned).toMatchObject({ status: 'rejected', error: { code: 'UNSIGNED' } });
    const bad = await send('account-open', { requestId: 'ao-1', meter: 'esam-622', customerNo: '8800A', operator: 'bob' });
    expect(bad).toMatchObject({ status: 'rejected', error: { field: 'customerNo' } });
    const r = await send('account-open', {
      requestId: 'ao-2',
      meter: 'esam-622',
      customerNo: '880000000622',
      name: 'Zhao Min',
      room: '6-622',
      amountFen: 5000,
      operator: 'bob',
    });
    expect(r, JSON.stringify(r)).toMatchObject({
      status: 'done',
      result: {
        method: 'dlt645-esam-opening',
        purchaseCount: 1,
        balance: 5000,
        openedBooks: true,
        sale: { requestId: 'ao-2', state: 'applied', purchaseCount: 1, amount: 5000 },
      },
    });
    expect(snapshot(ESAM)).toMatchObject({ opened: true, customerNumber: '880000000622', purchaseCount: 1 });
    const ops = rig.watcher
      .json<{ op: string; address: string }>(`meterd/${rig.gw}/hsm/request`)
      .filter((q) => q.address === ESAM)
      .map((q) => q.op);
    expect(ops).toEqual(['identity', 'opening-macs']);
    rig.withStore((store) => {
      expect(store.ledger.list({ meterId: ESAM }).map((e) => [e.channel, e.purchaseCount])).toEqual([['opening', 0]]);
      expect(store.ledger.get('ao-2')).toMatchObject({ state: 'applied', purchaseCount: 1, amount: 5000, operator: 'bob' });
      expect(store.archive.history('880000000622').map((h) => h.action)).toEqual(['open-account']);
    });

    // Opened once: a second opening is refused by the meter with its reason, nothing taken, and a recharge works.
    const again = await send('account-open', {
      requestId: 'ao-3',
      meter: 'esam-622',
      customerNo: '880000000622',
      amountFen: 100,
      operator: 'bob',
    });
    expect(again).toMatchObject({ status: 'rejected', error: { code: 'ACCOUNT_OPEN_REFUSED' } });
    expect(snapshot(ESAM).purchaseCount).toBe(1);
    const top = await send('topup', { requestId: 'acct-top-2', meter: 'esam-622', amountFen: 2000, customerNo: '880000000622' });
    expect(top, JSON.stringify(top)).toMatchObject({ status: 'done', result: { state: 'applied', purchaseCount: 2 } });
  });

  it('an ESAM meter without money: opened at count 1 with nothing loaded, an opening entry and no sale', async () => {
    const r = await runMeterd(
      [
        'account',
        'open',
        '-c',
        rig.daemon.configPath,
        '--meter',
        'esam-623',
        '--customer',
        '880000000623',
        '--name',
        'Qian Yu',
        '--room',
        '6-623',
        '--operator',
        'carol',
      ],
      { cwd: rig.dir },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(
      'account opened on meter esam-623 for customer 880000000623 (ESAM account opening): purchase count 1, no money taken',
    );
    expect(snapshot(ESAM_EMPTY)).toMatchObject({ opened: true, customerNumber: '880000000623', purchaseCount: 1, balance: 0 });
    rig.withStore((store) => {
      expect(store.ledger.list({ meterId: ESAM_EMPTY }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([['opening', 1, 0]]);
      expect(store.ledger.list({ meterId: 'esam-623' })).toEqual([]);
    });
    // A customer bound to another meter is refused before the meter is touched.
    const conflict = await send('account-open', { requestId: 'ao-4', meter: 'plain-621', customerNo: '880000000623', operator: 'carol' });
    expect(conflict).toMatchObject({ status: 'rejected', error: { code: 'ARCHIVE_CONFLICT' } });
  });

  it('a plain meter with an opening purchase: the customer number set, the books opened where the meter stands, the purchase a recharge once', async () => {
    const request = {
      requestId: 'ao-5',
      meter: 'plain-624',
      customerNo: '880000000624',
      name: 'Li Wei',
      room: '6-624',
      energyKwh: 20,
      operator: 'dave',
    };
    const r = await send('account-open', request);
    expect(r, JSON.stringify(r)).toMatchObject({
      status: 'done',
      result: {
        method: 'dlt645-customer-number',
        purchaseCount: 3,
        openedBooks: true,
        sale: { requestId: 'ao-5', state: 'applied', purchaseCount: 3, amount: 2000 },
      },
    });
    expect(snapshot(PLAIN_PAID)).toMatchObject({ customerNumber: '880000000624', purchaseCount: 3 });
    // The same request again: the recorded answer, nothing loaded twice.
    await rig.station.publishAsync(
      `meterd/${rig.gw}/cmd/account-open`,
      JSON.stringify(
        (() => {
          const body = { ...request, ts: new Date().toISOString() };
          return { ...body, signature: commandSignature(body, KEY) };
        })(),
      ),
      { qos: 1 },
    );
    await rig.watcher.waitFor(
      () => replies('account-open', 'ao-5').filter((x) => x.status === 'done').length >= 2,
      'the repeated answer',
      20_000,
    );
    expect(snapshot(PLAIN_PAID).purchaseCount).toBe(3);
    rig.withStore((store) => {
      expect(store.ledger.list({ meterId: PLAIN_PAID }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([['opening', 2, 0]]);
      expect(store.ledger.get('ao-5')).toMatchObject({
        channel: 'operator',
        state: 'applied',
        purchaseCount: 3,
        amount: 2000,
        operator: 'dave',
      });
    });
  });
});
