import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { Books } from '../../src/services/books/index.js';
import { localDate } from '../../src/services/books/periods.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { openStore, saveCustomer, type Store } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// Replacing a faulty meter with the meterd process on simulated meters (issue 16, docs/lifecycle.md): the remaining
// credit moves onto the new meter exactly once, also when the daemon is killed between any two steps of the job.

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: {
    old?: { address: string };
    new?: { address: string };
    final?: { source: string; balance: number; purchaseCount: number };
    moved?: { amount: number; unit: string; purchaseCount: number | null };
    owed?: number;
  };
}

const CUSTOMER = '880000000777';
const POINTS = ['happy', 'silent', 'checked', 'settled', 'final', 'initial', 'bound', 'transferred', 'cli'] as const;
type Point = (typeof POINTS)[number];
const oldAddress = (i: number) => String(110 + i).padStart(12, '0');
const newAddress = (i: number) => String(220 + i).padStart(12, '0');
const idOf = (p: Point) => `room-${p}`;
const index = (p: Point) => POINTS.indexOf(p);
const NOWHERE = '000000000999';

let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let station: MqttClient;
let gw: string;
let daemon: DaemonProcess | undefined;
let dir: string | undefined;

function config(): string {
  return `gateway: { id: ${gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
commands: { allowUnsigned: true }   # the station here sends unsigned commands
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 400ms, retries: 0 }
meters:
${POINTS.map((p, i) => `  - { id: ${idOf(p)}, bus: bus1, address: "${oldAddress(i)}", customerNo: "${CUSTOMER}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 2s, status: 1h, credit: 1h, daily: 1d }
`;
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: POINTS.flatMap((p, i) => [
        // The silent point's old meter is not on the bus at all: it answers nothing.
        ...(p === 'silent'
          ? []
          : [
              {
                address: oldAddress(i),
                kind: 'money' as const,
                balance: 37.5,
                purchaseCount: 5,
                customerNumber: CUSTOMER,
                registers: { 'energy.active.import': 5123.4 },
              },
            ]),
        {
          address: newAddress(i),
          kind: 'money' as const,
          balance: 0,
          purchaseCount: 0,
          customerNumber: CUSTOMER,
          registers: { 'energy.active.import': 0.5 },
        },
      ]),
    },
  });
  gw = uniqueId('gw-replace');
  // The happy point's customer is in the archive, bound to the old meter's number, as after an archive import.
  dir = mkdtempSync(join(tmpdir(), 'meterd-replace-'));
  withStore((store) =>
    store.transaction((tx) =>
      saveCustomer(tx, CUSTOMER, { name: 'Wang Li', room: 'happy', meterAddress: oldAddress(0) }, { operator: 'test', action: 'import' }),
    ),
  );
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-replace') });
});

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await station?.endAsync();
  await watcher?.close();
  await clearRetained(broker.url, [
    `meterd/${gw}/status`,
    ...POINTS.flatMap((p) => [`meterd/${gw}/meters/${idOf(p)}/state`, `meterd/${gw}/meters/${idOf(p)}/asset`]),
  ]);
  await sim?.close();
  await broker?.close();
});

const meter = (address: string) => sim.meters.get(address)!.snapshot();
const replies = (requestId: string) =>
  watcher.json<Reply>(`meterd/${gw}/cmd/meter-replace/result`).filter((r) => r.requestId === requestId);
const finalReplies = (requestId: string) => replies(requestId).filter((r) => r.status !== 'accepted');
const send = (payload: Record<string, unknown>) =>
  station.publishAsync(`meterd/${gw}/cmd/meter-replace`, JSON.stringify(payload), { qos: 1 });
const waitFinal = (requestId: string, n = 1) =>
  watcher
    .waitFor(() => finalReplies(requestId).length >= n, `final reply ${n} to ${requestId}`, 60_000)
    .catch((err: Error) => {
      throw new Error(`${err.message}; daemon log:\n${daemon!.stderr().split('\n').slice(-20).join('\n')}`);
    });
const request = (p: Point, extra: Record<string, unknown> = {}) => ({
  requestId: `swap-${p}`,
  meter: idOf(p),
  newAddress: newAddress(index(p)),
  newAssetNo: `A-${index(p)}`,
  operator: 'li',
  reason: 'display dead',
  ...extra,
});

async function start(env: Record<string, string> = {}): Promise<void> {
  daemon = startDaemon(config(), { ...(dir ? { dir } : {}), logLevel: 'info', env });
  dir = daemon.dir;
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
}

async function kill(): Promise<void> {
  daemon!.child.kill('SIGKILL');
  await daemon!.exited();
}

function withStore<T>(fn: (store: Store) => T): T {
  const store = openStore({ path: join(dir!, 'data', 'meterd.db'), clock: systemClock });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const transfers = (p: Point) => withStore((s) => s.ledger.list({ meterId: idOf(p) }).filter((e) => e.channel === 'transfer'));

describe('replacing a faulty meter with the meterd process', { timeout: 240_000 }, () => {
  it('a money meter with 37.50 yuan and 5 purchases: 37.50 loaded onto the new meter once, nothing onto the old', async () => {
    await start();
    // The detectors have seen the old meter's register (5123.4 kWh) before the swap.
    await watcher.waitFor(
      () =>
        watcher
          .json<{ address?: string; values: Record<string, { v?: number }> }>(`meterd/${gw}/meters/room-happy/readings`)
          .some((r) => r.address === oldAddress(0) && r.values['energy.active.import']?.v === 5123.4),
      'a reading of the old meter',
      20_000,
    );
    await send(request('happy'));
    await waitFinal('swap-happy');
    const reply = finalReplies('swap-happy')[0]!;
    expect(reply).toMatchObject({
      status: 'done',
      result: {
        old: { address: oldAddress(0) },
        new: { address: newAddress(0) },
        final: { source: 'read', balance: 37.5, purchaseCount: 5 },
        moved: { amount: 37.5, unit: 'CNY', purchaseCount: 1 },
        owed: 0,
      },
    });
    expect(meter(newAddress(0))).toMatchObject({ balance: 3750, purchaseCount: 1 });
    expect(meter(oldAddress(0))).toMatchObject({ balance: 3750, purchaseCount: 5 });
    expect(transfers('happy').map((e) => [e.state, e.amount, e.purchaseCount])).toEqual([['applied', 3750, 1]]);
    // The station's retained asset names the new meter and the one taken down.
    const asset = watcher
      .json<{ address: string; previous?: { address: string; reason: string } }>(`meterd/${gw}/meters/room-happy/asset`)
      .at(-1)!;
    expect(asset).toMatchObject({ address: newAddress(0), previous: { address: oldAddress(0), reason: 'display dead' } });
  });

  it('the same request again returns the first result and changes nothing', async () => {
    await send(request('happy'));
    await waitFinal('swap-happy', 2);
    expect(finalReplies('swap-happy')[1]).toEqual(finalReplies('swap-happy')[0]);
    expect(meter(newAddress(0))).toMatchObject({ balance: 3750, purchaseCount: 1 });
    expect(transfers('happy')).toHaveLength(1);
  });

  it('readings go on under the same meter id from the new address, and no energy alert fires across the swap', async () => {
    const readings = () =>
      watcher.json<{ address?: string; values: Record<string, { v?: number }> }>(`meterd/${gw}/meters/room-happy/readings`);
    const seen = readings().length;
    await watcher.waitFor(
      () =>
        readings()
          .slice(seen)
          .some((r) => r.address === newAddress(0)),
      'a reading from the new meter',
      20_000,
    );
    const fromNew = readings()
      .slice(seen)
      .find((r) => r.address === newAddress(0))!;
    expect(fromNew.values['energy.active.import']?.v).toBe(0.5);
    // The register went from 5123.4 (old meter) to 0.5 (new meter): not energy going backwards.
    const alerts = watcher.json<{ kind: string }>(`meterd/${gw}/meters/room-happy/alerts`);
    expect(alerts.filter((a) => a.kind === 'energy-backwards' || a.kind === 'energy-stuck')).toEqual([]);
  });

  it("the register keeps what the swap day's line loss needs: the old meter's final and the new meter's initial register", () => {
    const swaps = withStore((s) => s.register.swapsBetween(Date.now() - 3_600_000, Date.now() + 1));
    expect(swaps.filter((w) => w.pointId === 'room-happy').map((w) => [w.final?.importKwh, w.initial?.importKwh])).toEqual([[5123.4, 0.5]]);
  });

  it("a card customer's next sale follows the new meter: the archive names it, the card books stand at its count", async () => {
    const card = withStore((store) => ({
      customer: store.archive.get(CUSTOMER),
      history: store.archive.history(CUSTOMER),
      // Read inside the store's lifetime: lastSale reads the ledger before its first await.
      last: new LedgerCardSales(() => store).lastSale(newAddress(0)),
    }));
    expect(card.customer?.meterAddress).toBe(newAddress(0));
    expect(card.history.at(-1)).toMatchObject({ operator: 'li', action: 'meter-replaced' });
    // A card re-issued from the books carries purchase 1 (the meter answers "repeat recharge" and adds nothing); the
    // next sale is purchase 2, which the new meter takes.
    expect(await card.last).toEqual({ count: 1, amount: 3750 });
  });

  it('the books show the transfer apart from sales', async () => {
    const cfg = loadGatewayConfig(daemon!.configPath, {});
    withStore((store) => {
      const books = new Books({ store, clock: systemClock, gateway: cfg.gateway, meters: cfg.meters });
      const total = books.report({ kind: 'daily', date: localDate(Date.now(), 'UTC') }).totals.find((t) => t.unit === 'money')!;
      expect(total.transfers).toEqual({ count: 1, amount: 3750 });
      expect(total.cash.sales).toEqual({ count: 0, amount: 0 });
    });
  });

  it('refused with nothing changed: an address another point uses, a new meter that does not answer', async () => {
    await send({ ...request('silent'), requestId: 'swap-taken', newAddress: oldAddress(index('checked')) });
    await send({ ...request('silent'), requestId: 'swap-nowhere', newAddress: NOWHERE });
    await waitFinal('swap-taken');
    await waitFinal('swap-nowhere');
    expect(finalReplies('swap-taken')[0]).toMatchObject({ status: 'rejected', error: { code: 'ADDRESS_IN_USE' } });
    expect(finalReplies('swap-nowhere')[0]).toMatchObject({ status: 'rejected', error: { code: 'NEW_METER_SILENT' } });
    withStore((s) => expect(s.register.history('room-silent').map((a) => a.address)).toEqual([oldAddress(index('silent'))]));
  });

  it('a silent old meter needs a final reading off its display, and takes a manual one', async () => {
    await send(request('silent'));
    await waitFinal('swap-silent');
    expect(finalReplies('swap-silent')[0]).toMatchObject({ status: 'rejected', error: { code: 'FINAL_READING_NEEDED' } });
    await send({ ...request('silent'), requestId: 'swap-silent-2', final: { importKwh: 812.3, balance: 12.3, purchaseCount: 3 } });
    await waitFinal('swap-silent-2');
    expect(finalReplies('swap-silent-2')[0]).toMatchObject({
      status: 'done',
      result: { final: { source: 'manual', balance: 12.3, purchaseCount: 3 }, moved: { amount: 12.3, purchaseCount: 1 } },
    });
    expect(meter(newAddress(index('silent')))).toMatchObject({ balance: 1230, purchaseCount: 1 });
    const history = await runMeterd(['meter', 'history', '-c', daemon!.configPath, '--meter', 'room-silent', '--json'], { cwd: dir });
    const rows = history.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { address: string; final?: { source: string; importKwh: number } });
    expect(rows.map((r) => [r.address, r.final?.source ?? null, r.final?.importKwh ?? null])).toEqual([
      [oldAddress(index('silent')), 'manual', 812.3],
      [newAddress(index('silent')), null, null],
    ]);
  });

  for (const step of ['checked', 'settled', 'final', 'initial', 'bound', 'transferred'] as const) {
    it(`SIGKILL after step "${step}": after a restart, exactly one transfer`, async () => {
      await kill();
      await start({ METERD_TEST_HOLD_REPLACEMENT: step });
      await send(request(step));
      await watcher
        .waitFor(() => daemon!.stderr().includes('replacement held after this step'), `the job held after ${step}`, 30_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}; daemon log:\n${daemon!.stderr().split('\n').slice(-15).join('\n')}`);
        });
      await kill();
      await start();
      await waitFinal(`swap-${step}`);
      expect(finalReplies(`swap-${step}`).at(-1)).toMatchObject({ status: 'done', result: { moved: { amount: 37.5 } } });
      const i = index(step);
      expect(meter(newAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 1 });
      expect(meter(oldAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 5 });
      expect(transfers(step).map((e) => [e.state, e.amount])).toEqual([['applied', 3750]]);
    });
  }

  it('meterd meter replace through the running daemon: the same job, its result printed', async () => {
    const i = index('cli');
    const args = [
      'meter',
      'replace',
      '-c',
      daemon!.configPath,
      '--meter',
      'room-cli',
      '--new-address',
      newAddress(i),
      '--operator',
      'zhao',
    ];
    const run = await runMeterd([...args, '--reason', 'rotation', '--request-id', 'cli-swap-1'], { cwd: dir });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`room-cli: ${oldAddress(i)} replaced by ${newAddress(i)}`);
    expect(run.stdout).toContain('37.50 CNY moved onto the new meter (purchase count 1)');
    expect(meter(newAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 1 });
    const again = await runMeterd([...args, '--reason', 'rotation', '--request-id', 'cli-swap-1', '--json'], { cwd: dir });
    expect(JSON.parse(again.stdout)).toMatchObject({ moved: { amount: 37.5, purchaseCount: 1 } });
    expect(meter(newAddress(i))).toMatchObject({ balance: 3750, purchaseCount: 1 });
    const bad = await runMeterd([...args, '--reason', 'x', '--final-import', '12'], { cwd: dir });
    expect(bad.status).toBe(2);
  });

  it('after a restart the point is polled at the new address, under the same id', async () => {
    await kill();
    await start();
    const readings = () => watcher.json<{ address?: string }>(`meterd/${gw}/meters/room-happy/readings`);
    const seen = readings().length;
    await watcher.waitFor(
      () =>
        readings()
          .slice(seen)
          .some((r) => r.address === newAddress(0)),
      'a reading from the new meter after the restart',
      20_000,
    );
    expect(
      readings()
        .slice(seen)
        .every((r) => r.address === newAddress(0)),
    ).toBe(true);
  });
});
