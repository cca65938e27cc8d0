import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { systemClock } from '../../src/clock.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { startTcpCut, type TcpCut } from '../helpers/tcp-cut.js';

interface ReadingMessage {
  meter: string;
  ts: string;
  seq: number;
  values: Record<string, { v: number | string; unit: string } | { error: string }>;
}

const METERS = [
  { id: 'room-101', address: '000000000101', voltage: 221.3, energy: 1001.01 },
  { id: 'room-102', address: '000000000102', voltage: 222.4, energy: 2002.02 },
  { id: 'room-103', address: '000000000103', voltage: 223.5, energy: 3003.03 },
];

let broker: TestBroker;
let sim: Dlt645Simulator;
let proxy: TcpCut;
let watcher: TopicWatcher;
let gatewayId: string;
let daemon: DaemonProcess | undefined;

function config(dataDir: string): string {
  return `gateway:
  id: ${gatewayId}
  dataDir: ${dataDir}
mqtt:
  url: ${proxy.url}
  protocolVersion: ${broker.kind === 'external' ? 5 : 4}
buses:
  - id: bus1
    port: tcp://127.0.0.1:${sim.address!.tcpPort}
    gap: 5ms
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
polling:
  intervals: { instant: 1s, energy: 1s, status: 5s, credit: 5s }
`;
}

beforeAll(async () => {
  broker = await startTestBroker();
  proxy = await startTcpCut(broker.url);
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: METERS.map((m) => ({
        address: m.address,
        kind: 'money' as const,
        balance: 50,
        registers: { 'voltage.a': m.voltage, 'energy.active.import': m.energy },
      })),
    },
  });
  gatewayId = uniqueId('gw-e2e');
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
});

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await watcher?.close();
  await clearRetained(broker.url, [
    `meterd/${gatewayId}/status`,
    `meterd/${gatewayId}/buses/bus1/state`,
    ...METERS.map((m) => `meterd/${gatewayId}/meters/${m.id}/state`),
  ]);
  await sim?.close();
  await proxy?.close();
  await broker?.close();
});

const readings = () => watcher.json<ReadingMessage>().filter((m) => typeof m.seq === 'number' && m.values !== undefined);
const seqs = () => [...new Set(readings().map((r) => r.seq))].sort((a, b) => a - b);
const contiguous = (xs: number[]) => xs.length > 0 && xs.every((x, i) => i === 0 || x === xs[i - 1]! + 1);

describe('meterd run, end to end: simulated meters → SQLite → MQTT broker', () => {
  let dataDir: string;

  it("readings for every meter arrive with the meters' values, and the gateway says it is online", async () => {
    daemon = startDaemon(config('./data'));
    dataDir = join(daemon.dir, 'data');
    await watcher.waitFor(
      () => METERS.every((m) => readings().some((r) => r.meter === m.id && 'v' in (r.values['voltage.a'] ?? {}))),
      'a voltage reading from every meter',
      20_000,
    );
    for (const m of METERS) {
      const r = readings().find((x) => x.meter === m.id && x.values['voltage.a'])!;
      expect(r.values['voltage.a']).toEqual({ v: m.voltage, unit: 'V' });
      const e = readings().find((x) => x.meter === m.id && x.values['energy.active.import'])!;
      expect(e.values['energy.active.import']).toEqual({ v: m.energy, unit: 'kWh' });
      expect(Date.parse(r.ts)).toBeGreaterThan(Date.now() - 60_000);
    }
    const status = watcher.json(`meterd/${gatewayId}/status`).at(-1);
    expect(status).toMatchObject({ state: 'online', buses: [{ id: 'bus1', state: 'up' }] });
    // The retained state follows the status and credit groups, which read the relay and the balance.
    const stateTopic = `meterd/${gatewayId}/meters/room-101/state`;
    const complete = (s: Record<string, unknown>) => s.relay === 'closed' && (s.balance as { moneyYuan?: number } | null)?.moneyYuan === 50;
    await watcher.waitFor(() => watcher.json(stateTopic).some(complete), 'a meter state with the relay and balance read', 20_000);
    expect(watcher.json(stateTopic).at(-1)).toMatchObject({
      meter: 'room-101',
      state: 'online',
      relay: 'closed',
      balance: { moneyYuan: 50 },
    });
    // Each bus reports its load and what it skipped, retained.
    const busTopic = `meterd/${gatewayId}/buses/bus1/state`;
    await watcher.waitFor(() => watcher.json(busTopic).length > 0, 'the bus state', 20_000);
    expect(watcher.json(busTopic).at(-1)).toMatchObject({ bus: 'bus1', state: 'up', skippedPolls: 0, timeouts: 0 });
    expect(watcher.json(busTopic).at(-1)!.utilisation).toBeGreaterThan(0);
  });

  it('broker outage: every reading taken while the broker was unreachable arrives afterwards, in order, none missing', async () => {
    const before = seqs().at(-1)!;
    proxy.cut();
    await new Promise((r) => setTimeout(r, 3000));
    const duringOutage = seqs().at(-1)!;
    proxy.restore();
    // The gateway kept reading during the outage; wait for those readings to come through.
    await watcher.waitFor(() => seqs().at(-1)! >= duringOutage + 6 && contiguous(seqs()), 'the outage backlog, contiguous by seq', 30_000);
    expect(seqs().at(-1)!).toBeGreaterThan(before + 6);
    expect(contiguous(seqs())).toBe(true);
    // Per meter, the read times never go backwards in arrival order (duplicates aside).
    for (const m of METERS) {
      const seen = new Set<number>();
      const times = readings()
        .filter((r) => r.meter === m.id && !seen.has(r.seq) && seen.add(r.seq))
        .map((r) => Date.parse(r.ts));
      expect(times).toEqual([...times].sort((a, b) => a - b));
    }
  });

  it('power cut: killed with SIGKILL while the broker is down, restarted, everything stored before the kill is delivered', async () => {
    proxy.cut();
    await new Promise((r) => setTimeout(r, 2500));
    daemon!.child.kill('SIGKILL');
    expect(await daemon!.exited()).toBe('SIGKILL');
    // What the killed process had committed: its undelivered readings and their highest seq.
    const store = openStore({ path: join(dataDir, 'meterd.db'), clock: systemClock });
    const stored = store.outbox
      .peek({ limit: 100_000 })
      .filter((m) => m.class === 'telemetry')
      .map((m) => (JSON.parse(m.payload) as { seq: number }).seq);
    expect(store.integrityCheck().ok).toBe(true);
    store.close();
    expect(stored.length).toBeGreaterThan(0);
    const lastStored = Math.max(...stored);

    proxy.restore();
    daemon = startDaemon(config('./data'), { dir: join(dataDir, '..') });
    await watcher.waitFor(() => seqs().includes(lastStored) && contiguous(seqs()), `every seq up to ${lastStored}, contiguous`, 30_000);
    expect(contiguous(seqs())).toBe(true);
    // And the restarted gateway keeps counting from there, never reusing a seq.
    await watcher.waitFor(() => seqs().at(-1)! > lastStored, 'new readings after the restart', 20_000);
  });

  it('SIGTERM stops it cleanly: it says offline (shutdown) and exits 0', async () => {
    daemon!.child.kill('SIGTERM');
    expect(await daemon!.exited()).toBe(0);
    await watcher.waitFor(() => watcher.json(`meterd/${gatewayId}/status`).at(-1)?.state === 'offline', 'the offline status');
    expect(watcher.json(`meterd/${gatewayId}/status`).at(-1)).toEqual({ state: 'offline', reason: 'shutdown' });
  });
});
