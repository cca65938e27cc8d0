import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { Books } from '../../src/services/books/index.js';
import { localDate } from '../../src/services/books/periods.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { openStore, type Store } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// Replacing an ESAM money meter (issue 16 step 3, docs/lifecycle.md § What carries on across the swap): the new
// meter's account is opened through the station's encryption machine the way account-open opens one, then the old
// meter's balance moves onto it as a transfer, once, also when the daemon is killed around the opening. And
// account-open after a replacement reaches the new meter, not the one taken down.

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: Record<string, unknown>;
}

const CUSTOMER = '880000000711';
/** `plain` is a plain kWh meter whose profile opens an account by its customer number (dlt645-customer-number). */
const profileOf = (p: Point) => (p === 'plain' ? 'dlt645-2007-single-phase-prepaid' : 'dlt645-2007-single-phase-prepaid-esam');
/** Points replaced with the daemon held (and killed) at a hold point of the opening, and `later`, opened afterwards. */
const POINTS = ['happy', 'account-sending', 'account-unrecorded', 'account-opened', 'later', 'found', 'refused', 'plain'] as const;
type Point = (typeof POINTS)[number];
const oldAddress = (i: number) => String(710 + i).padStart(12, '0');
const newAddress = (i: number) => String(730 + i).padStart(12, '0');
const idOf = (p: Point) => `esam-${p}`;
const index = (p: Point) => POINTS.indexOf(p);

let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let gw: string;
let daemon: DaemonProcess | undefined;
let dir: string;
/** The station's encryption machine, holding the simulated meters' ESAM key. */
const hsm = new LocalTestEncryptionMachine(ESAM_TEST_KEY);
/** Meters whose opening MACs the station does not give (its encryption machine refuses them). */
const noOpeningFor = new Set<string>();

function config(): string {
  // `later` has no customer number in the config: its replacement opens nothing, account-open does it afterwards.
  return `gateway: { id: ${gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
commands: { allowUnsigned: true }   # the station here sends unsigned commands
credit: { hsmTimeout: 2s }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 1s, retries: 1 }
meters:
${POINTS.map((p, i) => `  - { id: ${idOf(p)}, bus: bus1, address: "${oldAddress(i)}",${p === 'later' ? '' : ` customerNo: "${CUSTOMER}",`} profile: ${profileOf(p)} }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h, daily: 1d }
`;
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        ...POINTS.filter((p) => p !== 'plain').flatMap((p, i) => [
          {
            address: oldAddress(i),
            kind: 'money' as const,
            balance: p === 'later' ? 0 : 37.5,
            purchaseCount: 5,
            customerNumber: CUSTOMER,
            esam: { key: ESAM_TEST_KEY },
            registers: { 'energy.active.import': 5123.4 },
          },
          // New from the store room: not opened, no customer number, purchase count 0; `found`'s was opened for
          // the customer by the station beforehand.
          {
            address: newAddress(i),
            kind: 'money' as const,
            balance: 0,
            ...(p === 'found' ? { purchaseCount: 3, customerNumber: CUSTOMER } : { purchaseCount: 0, opened: false }),
            esam: { key: ESAM_TEST_KEY },
            registers: { 'energy.active.import': 0.5 },
          },
        ]),
        // Plain kWh meters: the new one holds no customer number, so it would refuse the transfer unless opened.
        { address: oldAddress(index('plain')), kind: 'energy' as const, balance: 20, purchaseCount: 4, customerNumber: CUSTOMER },
        { address: newAddress(index('plain')), kind: 'energy' as const, balance: 0, purchaseCount: 0 },
      ],
    },
  });
  gw = uniqueId('gw-replace-esam');
  dir = mkdtempSync(join(tmpdir(), 'meterd-replace-esam-'));
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-replace-esam') });
  // The station answers the gateway's encryption-machine questions (identity, recharge and opening MACs).
  station.on('message', (topic, payload) => {
    if (topic !== `meterd/${gw}/hsm/request`) return;
    const q = JSON.parse(payload.toString('utf8')) as Record<string, string | number>;
    if (q.op === 'opening-macs' && noOpeningFor.has(String(q.address))) return;
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
}, 60_000);

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await station?.endAsync();
  await watcher?.close();
  await clearRetained(broker.url, [
    `meterd/${gw}/status`,
    `meterd/${gw}/buses/bus1/state`,
    ...POINTS.flatMap((p) => [`meterd/${gw}/meters/${idOf(p)}/state`, `meterd/${gw}/meters/${idOf(p)}/asset`]),
  ]);
  await sim?.close();
  await broker?.close();
});

const meter = (address: string) => sim.meters.get(address)!.snapshot();
const replies = (command: string, requestId: string) =>
  watcher.json<Reply>(`meterd/${gw}/cmd/${command}/result`).filter((r) => r.requestId === requestId);
const finalReplies = (command: string, requestId: string) => replies(command, requestId).filter((r) => r.status !== 'accepted');
const send = (command: string, payload: Record<string, unknown>) =>
  station.publishAsync(`meterd/${gw}/cmd/${command}`, JSON.stringify(payload), { qos: 1 });
const waitFinal = (command: string, requestId: string, n = 1) =>
  watcher
    .waitFor(() => finalReplies(command, requestId).length >= n, `final reply ${n} to ${requestId}`, 60_000)
    .catch((err: Error) => {
      throw new Error(`${err.message}; daemon log:\n${daemon!.stderr().split('\n').slice(-20).join('\n')}`);
    });
const request = (p: Point) => ({
  requestId: `swap-${p}`,
  meter: idOf(p),
  newAddress: newAddress(index(p)),
  operator: 'li',
  reason: 'display dead',
});
/** Opening MACs the gateway asked the station for, for the meter at this address: one per opening sent. */
const openingsAsked = (address: string) =>
  watcher.json<{ op: string; address: string }>(`meterd/${gw}/hsm/request`).filter((q) => q.op === 'opening-macs' && q.address === address)
    .length;

async function start(env: Record<string, string> = {}): Promise<void> {
  daemon = startDaemon(config(), { dir, logLevel: 'info', env });
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
}

async function kill(): Promise<void> {
  daemon!.child.kill('SIGKILL');
  await daemon!.exited();
}

function withStore<T>(fn: (store: Store) => T): T {
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const ledger = (p: Point) =>
  withStore((s) => s.ledger.list({ meterId: idOf(p) }).map((e) => [e.channel, e.state, e.amount, e.purchaseCount]));

describe('replacing an ESAM money meter with the meterd process', { timeout: 300_000 }, () => {
  it('the new meter is opened through the encryption machine, then 37.50 moves onto it once as a transfer', async () => {
    await start();
    await send('meter-replace', request('happy'));
    await waitFinal('meter-replace', 'swap-happy');
    const reply = finalReplies('meter-replace', 'swap-happy')[0]!;
    expect(reply, daemon!.stderr().split('\n').slice(-10).join('\n')).toMatchObject({
      status: 'done',
      result: {
        new: { address: newAddress(0) },
        // The initial reading is taken with the account open: the opening is the new meter's purchase 1.
        initial: { purchaseCount: 1, balance: 0 },
        account: { method: 'dlt645-esam-opening', customerNo: CUSTOMER, opened: true, purchaseCount: 1 },
        moved: { amount: 37.5, unit: 'CNY', purchaseCount: 2 },
        owed: 0,
      },
    });
    expect(meter(newAddress(0))).toMatchObject({ opened: true, customerNumber: CUSTOMER, balance: 3750, purchaseCount: 2 });
    expect(meter(oldAddress(0))).toMatchObject({ balance: 3750, purchaseCount: 5 });
    expect(openingsAsked(newAddress(0))).toBe(1);
    expect(ledger('happy')).toEqual([['transfer', 'applied', 3750, 2]]);
  });

  it('the books show a transfer, not a sale', () => {
    const cfg = loadGatewayConfig(daemon!.configPath, {});
    withStore((store) => {
      const books = new Books({ store, clock: systemClock, gateway: cfg.gateway, meters: cfg.meters });
      const total = books.report({ kind: 'daily', date: localDate(Date.now(), 'UTC') }).totals.find((t) => t.unit === 'money')!;
      expect(total.transfers).toEqual({ count: 1, amount: 3750 });
      expect(total.cash.sales).toEqual({ count: 0, amount: 0 });
    });
  });

  it('the same request again returns the first result and changes nothing', async () => {
    await send('meter-replace', request('happy'));
    await waitFinal('meter-replace', 'swap-happy', 2);
    expect(finalReplies('meter-replace', 'swap-happy')[1]).toEqual(finalReplies('meter-replace', 'swap-happy')[0]);
    expect(meter(newAddress(0))).toMatchObject({ balance: 3750, purchaseCount: 2 });
    expect(openingsAsked(newAddress(0))).toBe(1);
    expect(ledger('happy')).toHaveLength(1);
  });

  for (const hold of ['account-sending', 'account-unrecorded', 'account-opened'] as const) {
    it(`SIGKILL at "${hold}": after a restart, one opening and one transfer`, async () => {
      const i = index(hold);
      await kill();
      await start({ METERD_TEST_HOLD_REPLACEMENT: hold });
      await send('meter-replace', request(hold));
      await watcher
        .waitFor(() => daemon!.stderr().includes('replacement held after this step'), `the job held at ${hold}`, 30_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}; daemon log:\n${daemon!.stderr().split('\n').slice(-15).join('\n')}`);
        });
      await kill();
      // Before the opening went out the meter is still closed; after it, open: the restart must read which.
      expect(meter(newAddress(i)).opened).toBe(hold !== 'account-sending');
      const asked = openingsAsked(newAddress(i));
      await start();
      await waitFinal('meter-replace', `swap-${hold}`);
      expect(finalReplies('meter-replace', `swap-${hold}`).at(-1)).toMatchObject({
        status: 'done',
        result: { account: { opened: true, purchaseCount: 1 }, moved: { amount: 37.5, purchaseCount: 2 }, owed: 0 },
      });
      // An opening already taken by the meter is read off it after the restart, not sent again.
      expect(openingsAsked(newAddress(i))).toBe(hold === 'account-sending' ? asked + 1 : asked);
      expect(openingsAsked(newAddress(i))).toBe(1);
      expect(meter(newAddress(i))).toMatchObject({ opened: true, customerNumber: CUSTOMER, balance: 3750, purchaseCount: 2 });
      expect(meter(oldAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 5 });
      expect(ledger(hold)).toEqual([['transfer', 'applied', 3750, 2]]);
    });
  }

  it('account-open after a replacement reaches the new meter, not the one taken down', async () => {
    const i = index('later');
    await send('meter-replace', request('later'));
    await waitFinal('meter-replace', 'swap-later');
    // No customer number for the point and nothing to move: the new meter is bound with its account still closed.
    expect(finalReplies('meter-replace', 'swap-later')[0]).toMatchObject({
      status: 'done',
      result: { new: { address: newAddress(i) }, account: null, moved: { amount: 0 }, owed: 0 },
    });
    expect(meter(newAddress(i)).opened).toBe(false);

    await send('account-open', {
      requestId: 'open-later',
      meter: idOf('later'),
      customerNo: CUSTOMER.replace(/1$/, '9'),
      name: 'Zhou Min',
      room: 'later',
      operator: 'li',
    });
    await waitFinal('account-open', 'open-later');
    expect(finalReplies('account-open', 'open-later')[0]).toMatchObject({
      status: 'done',
      result: { method: 'dlt645-esam-opening', purchaseCount: 1 },
    });
    expect(meter(newAddress(i))).toMatchObject({ opened: true, customerNumber: CUSTOMER.replace(/1$/, '9'), purchaseCount: 1 });
    expect(meter(oldAddress(i))).toMatchObject({ customerNumber: CUSTOMER, purchaseCount: 5 });
    expect(openingsAsked(oldAddress(i))).toBe(0);
    // The archive binds the customer to the new meter's number, and its books start at the new meter.
    withStore((s) => {
      expect(s.archive.get(CUSTOMER.replace(/1$/, '9'))).toMatchObject({ meterAddress: newAddress(i), state: 'active' });
    });
  });

  it('a plain meter with a customer-number account: the number is written and read back, then the kWh move', async () => {
    const i = index('plain');
    await send('meter-replace', request('plain'));
    await waitFinal('meter-replace', 'swap-plain');
    expect(finalReplies('meter-replace', 'swap-plain')[0]).toMatchObject({
      status: 'done',
      result: {
        account: { method: 'dlt645-customer-number', customerNo: CUSTOMER, opened: true, purchaseCount: 0 },
        moved: { amount: 20, unit: 'kWh', purchaseCount: 1 },
        owed: 0,
      },
    });
    expect(meter(newAddress(i))).toMatchObject({ customerNumber: CUSTOMER, balance: 2000, purchaseCount: 1 });
    expect(ledger('plain')).toEqual([['transfer', 'applied', 2000, 1]]);
  });

  it('a new ESAM meter the station opened for the customer beforehand is left as it is: no second opening', async () => {
    const i = index('found');
    await send('meter-replace', request('found'));
    await waitFinal('meter-replace', 'swap-found');
    expect(finalReplies('meter-replace', 'swap-found')[0]).toMatchObject({
      status: 'done',
      result: { account: { opened: false, customerNo: CUSTOMER, purchaseCount: 3 }, moved: { amount: 37.5, purchaseCount: 4 }, owed: 0 },
    });
    expect(openingsAsked(newAddress(i))).toBe(0);
    expect(meter(newAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 4 });
  });

  it('an opening the encryption machine does not answer refuses the job with nothing changed; sent again, it goes through', async () => {
    const i = index('refused');
    noOpeningFor.add(newAddress(i));
    await send('meter-replace', request('refused'));
    await waitFinal('meter-replace', 'swap-refused');
    expect(finalReplies('meter-replace', 'swap-refused')[0]).toMatchObject({ status: 'rejected', error: { code: 'ACCOUNT_OPEN_FAILED' } });
    expect(meter(newAddress(i))).toMatchObject({ opened: false, purchaseCount: 0, balance: 0 });
    withStore((s) => expect(s.register.history(idOf('refused')).map((a) => a.address)).toEqual([oldAddress(i)]));
    expect(ledger('refused')).toEqual([]);

    noOpeningFor.delete(newAddress(i));
    await send('meter-replace', { ...request('refused'), requestId: 'swap-refused-2' });
    await waitFinal('meter-replace', 'swap-refused-2');
    expect(finalReplies('meter-replace', 'swap-refused-2')[0]).toMatchObject({
      status: 'done',
      result: { account: { opened: true, purchaseCount: 1 }, moved: { amount: 37.5, purchaseCount: 2 } },
    });
    expect(meter(newAddress(i))).toMatchObject({ opened: true, balance: 3750, purchaseCount: 2 });
  });
});
