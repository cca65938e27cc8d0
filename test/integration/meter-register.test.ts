import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import pino from 'pino';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { installAsset, openStore, removeAsset, StoreError } from '../../src/store/index.js';
import { clearRetained, startTestBroker, type TestBroker, type TopicWatcher, uniqueId, watchTopics } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';

// The meter register in a real gateway: every configured meter becomes its point's installed asset at first start;
// after the register names another meter the daemon polls that one, logs the disagreement, and config check, doctor
// and `meterd meter list|history` say what hangs where and which config line to change.

const OLD = '000000000901';
const OTHER = '000000000902';
const NEW = '000000000903';
let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway | undefined;
let watcher: TopicWatcher;
let dir: string;
let file: string;
let logged = '';
const gatewayId = uniqueId('gw-register');
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;

async function start(): Promise<Gateway> {
  const stream = {
    write: (line: string) => {
      logged += line;
    },
  };
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: pino({ level: 'info' }, stream) });
  return gw;
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        { address: OLD, kind: 'money', balance: 10, purchaseCount: 1, registers: { 'energy.active.import': 1234.5 } },
        { address: OTHER, kind: 'money', balance: 10, purchaseCount: 1 },
        { address: NEW, kind: 'money', balance: 0, purchaseCount: 0, registers: { 'energy.active.import': 7.25 } },
      ],
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'meterd-register-'));
  file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 500ms, retries: 0 }
meters:
  - id: room-1
    bus: bus1
    address: "${OLD}"
    profile: dlt645-2007-single-phase-prepaid-money
  - { id: room-2, bus: bus1, address: "${OTHER}", profile: dlt645-2007-single-phase-prepaid-money, verification: { periodYears: 6 } }
polling:
  intervals: { instant: 10m, energy: 10m, status: 10m, credit: 10m, daily: 1d }
`,
  );
  watcher = await watchTopics(broker.url, topic('#'));
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await watcher?.close();
  await clearRetained(broker.url, [
    topic('status'),
    ...['room-1', 'room-2'].flatMap((m) => [topic(`meters/${m}/state`), topic(`meters/${m}/asset`)]),
  ]);
  await sim?.close();
  await broker?.close();
});

describe('the meter register', { timeout: 60_000 }, () => {
  it('at first start every configured meter becomes the installed asset of its point, retained on meters/<id>/asset', async () => {
    const g = await start();
    const installed = g.store.register.installed();
    expect([...installed.values()].map((a) => [a.pointId, a.address, a.initialSource])).toEqual([
      ['room-1', OLD, 'config'],
      ['room-2', OTHER, 'config'],
    ]);
    await watcher.waitFor(() => watcher.json(topic('meters/room-2/asset')).length > 0, 'the asset message of room-2');
    const msg = watcher
      .json<{ address: string; verification: { periodYears: number; dueAt: string } }>(topic('meters/room-2/asset'))
      .at(-1)!;
    expect(msg.address).toBe(OTHER);
    // The meter's own period (6 years) over its profile's default (8).
    expect(msg.verification.periodYears).toBe(6);
    expect(new Date(msg.verification.dueAt).getUTCFullYear()).toBe(new Date(installed.get('room-2')!.installedAt).getUTCFullYear() + 6);
    expect((await g.poller.pollNow('room-1', ['energy.active.import'])).get('energy.active.import')).toEqual({ v: 1234.5, unit: 'kWh' });
    await g.stop();
    gw = undefined;
  });

  it('no address is bound to two points at once', () => {
    const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(() =>
        store.transaction((tx) =>
          installAsset(tx, { pointId: 'room-9', busId: 'bus1', address: OTHER, profile: 'x', installedAt: 1, initialSource: 'read' }),
        ),
      ).toThrow(StoreError);
      expect(store.register.active('room-9')).toBeNull();
    } finally {
      store.close();
    }
  });

  it('after the register names another meter, the daemon polls it and says which config line to change', async () => {
    // What a replacement leaves in the register (the job itself is tested in meter-replace tests).
    const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      store.transaction((tx) => {
        const old = store.register.active('room-1')!;
        removeAsset(tx, old.id, {
          removedAt: Date.now(),
          final: { importKwh: 1234.5, exportKwh: 0, balance: 1000, overdraft: 0, purchaseCount: 1 },
          finalSource: 'manual',
          reason: 'display dead',
          operator: 'li',
          requestId: 'r-1',
        });
        installAsset(tx, {
          pointId: 'room-1',
          busId: 'bus1',
          address: NEW,
          assetNo: 'A-0903',
          profile: 'dlt645-2007-single-phase-prepaid-money',
          installedAt: Date.now(),
          initial: { importKwh: 7.25, exportKwh: 0, balance: 0, overdraft: 0, purchaseCount: 0 },
          initialSource: 'read',
          operator: 'li',
          requestId: 'r-1',
        });
      });
    } finally {
      store.close();
    }
    const g = await start();
    expect((await g.poller.pollNow('room-1', ['energy.active.import'])).get('energy.active.import')).toEqual({ v: 7.25, unit: 'kWh' });
    const warnings = logged.split('\n').filter((l) => l.includes('the meter register says'));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain(`${file}:8`);
    await g.stop();
    gw = undefined;

    const check = await runMeterd(['config', 'check', '-c', file], { cwd: dir });
    expect(check.status).toBe(0);
    expect(check.stdout).toContain(`warning: ${file}:8: meter room-1: the config says ${OLD}, the meter register says ${NEW}`);
    expect(check.stdout).toContain(`Change ${file}:8 to address: "${NEW}"`);
  });

  it('meterd meter list and history show what hangs where, since when, and what is due', async () => {
    const list = await runMeterd(['meter', 'list', '-c', file, '--json'], { cwd: dir });
    expect(list.status).toBe(0);
    const rows = list.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { meter: string; address: string; assetNo: string | null; overdue: boolean });
    expect(rows.map((r) => [r.meter, r.address, r.assetNo, r.overdue])).toEqual([
      ['room-1', NEW, 'A-0903', false],
      ['room-2', OTHER, null, false],
    ]);
    // Nothing is due within 90 days of a fresh install; everything within 9 years.
    const soon = await runMeterd(['meter', 'list', '-c', file, '--due', '90d'], { cwd: dir });
    expect(soon.stdout).toContain('0 meter(s) due within 90d');
    const later = await runMeterd(['meter', 'list', '-c', file, '--due', `${9 * 366}d`], { cwd: dir });
    expect(later.stdout).toContain('2 meter(s) due within');
    const bad = await runMeterd(['meter', 'list', '-c', file, '--due', 'soon'], { cwd: dir });
    expect(bad.status).toBe(2);

    const history = await runMeterd(['meter', 'history', '-c', file, '--meter', 'room-1'], { cwd: dir });
    expect(history.status).toBe(0);
    const lines = history.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toContain(`installed ${OLD}`);
    expect(lines[1]).toMatch(new RegExp(`removed ${OLD} by li: display dead; final import 1234.5 kWh, balance 10.00.*\\(manual\\)`));
    expect(lines[2]).toContain(`installed ${NEW} (asset A-0903)`);
  });
});
