import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startModbusSimulator, type ModbusSimulator, type SimulatedModbusMeter } from '../../src/sim/modbus/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// Replacing Modbus meters with the meterd process (issue 16, docs/lifecycle.md § Modbus meters): the new meter at
// another unit id of the same line. The technician's `meterd meter replace --new-address 2` (a bare unit id); a
// SIGKILL before and after the swap, then a restart: the kWh wallet lands on the new unit exactly once, and the point
// is polled at the unit the register names, not the one of the config line.

interface Reply {
  requestId: string;
  status: 'accepted' | 'done' | 'rejected' | 'failed';
  error?: { code: string; message: string };
  result?: Record<string, unknown>;
}
interface Reading {
  address?: string;
  values: Record<string, { v?: number }>;
}

const profile = loadProfiles().get('modbus-dorm-prepaid')!;
// Each point's old meter at an odd unit id, its new one at the next.
const POINTS = ['cli', 'initial', 'bound'] as const;
type Point = (typeof POINTS)[number];
const oldUnit = (p: Point) => 1 + 2 * POINTS.indexOf(p);
const newUnit = (p: Point) => oldUnit(p) + 1;
const idOf = (p: Point) => `dorm-${p}`;
const OLD = { 'credit.balance.energy': 37.5, 'credit.purchase.count': 5, 'energy.active.import': 5123.4 };
const NEW = { 'credit.balance.energy': 0, 'credit.purchase.count': 0, 'energy.active.import': 0.5 };

let broker: TestBroker;
let sim: ModbusSimulator;
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
  - { id: line1, port: "tcp://127.0.0.1:${sim.port}", protocol: modbus-tcp, gap: 2ms, timeout: 400ms, retries: 0 }
meters:
${POINTS.map((p) => `  - { id: ${idOf(p)}, bus: line1, unit: ${oldUnit(p)}, profile: modbus-dorm-prepaid }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 2s, status: 1h, credit: 1h }
`;
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startModbusSimulator({
    profile,
    unit: oldUnit('cli'),
    tcpPort: 0,
    values: OLD,
    neighbours: [
      { unit: newUnit('cli'), values: NEW },
      ...POINTS.slice(1).flatMap((p) => [
        { unit: oldUnit(p), values: OLD },
        { unit: newUnit(p), values: NEW },
      ]),
    ],
  });
  gw = uniqueId('gw-replace-modbus');
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station-replace-modbus') });
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

async function start(env: Record<string, string> = {}): Promise<void> {
  daemon = startDaemon(config(), { ...(dir ? { dir } : {}), logLevel: 'info', env });
  dir = daemon.dir;
  const online = watcher.json(`meterd/${gw}/status`).length;
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).slice(online).at(-1)?.state === 'online', 'the gateway online', 20_000);
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

const at = (unit: number): SimulatedModbusMeter => sim.meterAt(unit)!;
const wallet = (unit: number) => [at(unit).getValue('credit.balance.energy'), at(unit).getValue('credit.purchase.count')];
const transfers = (p: Point) => withStore((s) => s.ledger.list({ meterId: idOf(p) }).filter((e) => e.channel === 'transfer'));
const finalReplies = (requestId: string) =>
  watcher.json<Reply>(`meterd/${gw}/cmd/meter-replace/result`).filter((r) => r.requestId === requestId && r.status !== 'accepted');
const readings = (p: Point) => watcher.json<Reading>(`meterd/${gw}/meters/${idOf(p)}/readings`);

describe('replacing Modbus meters with the meterd process', { timeout: 180_000 }, () => {
  it('meterd meter replace --new-address 2 (a unit id): the kWh wallet moves onto the new unit once', async () => {
    await start();
    const p = 'cli';
    const args = ['meter', 'replace', '-c', daemon!.configPath, '--meter', idOf(p), '--operator', 'zhao', '--reason', 'rotation'];
    const run = await runMeterd([...args, '--new-address', String(newUnit(p)), '--request-id', 'cli-modbus-1'], { cwd: dir });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`${idOf(p)}: unit ${oldUnit(p)} replaced by unit ${newUnit(p)}`);
    expect(run.stdout).toContain('37.50 kWh moved onto the new meter (purchase count 1)');
    expect(wallet(newUnit(p))).toEqual([37.5, 1]);
    expect(wallet(oldUnit(p))).toEqual([37.5, 5]);
    expect(at(oldUnit(p)).writes()).toEqual([]);
    // A DL/T 645 address for a Modbus point is refused before the daemon is asked.
    const wrong = await runMeterd([...args, '--new-address', '000000000002'], { cwd: dir });
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain("--new-address must be the meter's Modbus unit id");
  });

  for (const step of ['initial', 'bound'] as const) {
    it(`SIGKILL after step "${step}": after a restart, one transfer onto the new unit, none onto the old`, async () => {
      await kill();
      await start({ METERD_TEST_HOLD_REPLACEMENT: step });
      const request = { requestId: `swap-${step}`, meter: idOf(step), newAddress: `unit ${newUnit(step)}`, operator: 'li', reason: 'dead' };
      await station.publishAsync(`meterd/${gw}/cmd/meter-replace`, JSON.stringify(request), { qos: 1 });
      await watcher
        .waitFor(() => daemon!.stderr().includes('replacement held after this step'), `the job held after ${step}`, 30_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}; daemon log:\n${daemon!.stderr().split('\n').slice(-15).join('\n')}`);
        });
      await kill();
      await start();
      await watcher.waitFor(() => finalReplies(request.requestId).length > 0, `the reply to ${request.requestId}`, 60_000);
      expect(finalReplies(request.requestId).at(-1)).toMatchObject({
        status: 'done',
        result: {
          old: { address: `unit ${oldUnit(step)}` },
          new: { address: `unit ${newUnit(step)}` },
          moved: { amount: 37.5, unit: 'kWh', purchaseCount: 1 },
        },
      });
      expect(wallet(newUnit(step))).toEqual([37.5, 1]);
      expect(at(newUnit(step)).credits).toEqual({ applied: 1, repeat: 0, refused: 0 });
      expect(wallet(oldUnit(step))).toEqual([37.5, 5]);
      expect(at(oldUnit(step)).writes()).toEqual([]);
      expect(transfers(step).map((e) => [e.state, e.amount, e.purchaseCount])).toEqual([['applied', 3750, 1]]);
    });
  }

  it('after the restarts each point is read at the unit the register names, not the config line’s', async () => {
    for (const p of POINTS) {
      const seen = readings(p).length;
      await watcher.waitFor(
        () =>
          readings(p)
            .slice(seen)
            .some((r) => r.address === `unit ${newUnit(p)}`),
        `a reading of ${idOf(p)} from unit ${newUnit(p)}`,
        20_000,
      );
      const fromNew = readings(p)
        .slice(seen)
        .find((r) => r.address === `unit ${newUnit(p)}`)!;
      expect(fromNew.values['energy.active.import']?.v).toBe(0.5);
    }
    expect(daemon!.stderr()).toContain('the meter register says unit 2');
  });
});
