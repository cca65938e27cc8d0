import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

interface ReadingMessage {
  meter: string;
  ts: string;
  seq: number;
  values: Record<string, { v: number | string; unit: string } | { error: string }>;
}

const METERS = [
  { id: 'flat-1', address: '000000000311', voltage: 226.1 },
  { id: 'flat-2', address: '000000000312', voltage: 227.2 },
];

let broker: TestBroker;
let pty: PtyPair;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let gatewayId: string;
let daemon: DaemonProcess | undefined;

beforeAll(async () => {
  broker = await startTestBroker();
  pty = await createPtyPair();
  sim = await startDlt645Simulator({
    port: pty.b,
    spec: {
      meters: METERS.map((m) => ({ address: m.address, kind: 'money' as const, balance: 80, registers: { 'voltage.a': m.voltage } })),
    },
  });
  gatewayId = uniqueId('gw-replug');
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
});

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
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
  await pty?.close();
  await broker?.close();
});

function config(): string {
  return `gateway:
  id: ${gatewayId}
  dataDir: ./data
mqtt:
  url: ${broker.url}
  protocolVersion: ${broker.kind === 'external' ? 5 : 4}
buses:
  - id: bus1
    port: ${pty.a}
    gap: 5ms
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
polling:
  intervals: { instant: 1s, energy: 1s, status: 5s, credit: 5s }
`;
}

const readings = () => watcher.json<ReadingMessage>().filter((m) => typeof m.seq === 'number' && m.values !== undefined);
const voltageReadings = (meter: string) => readings().filter((r) => r.meter === meter && 'v' in (r.values['voltage.a'] ?? {}));
const seqs = () => [...new Set(readings().map((r) => r.seq))].sort((a, b) => a - b);
const contiguous = (xs: number[]) => xs.length > 0 && xs.every((x, i) => i === 0 || x === xs[i - 1]! + 1);

function busStates(): Array<Record<string, unknown>> {
  return daemon!
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.event === 'bus-state');
}

describe('meterd run: the RS-485 adapter is unplugged under polling and plugged back in', () => {
  it('polling resumes within 5 s, no committed reading is lost, and the log says lost → reopening → opened', async () => {
    daemon = startDaemon(config(), { logLevel: 'info' });
    await watcher.waitFor(() => METERS.every((m) => voltageReadings(m.id).length >= 2), 'voltage readings from every meter', 20_000);
    for (const m of METERS) expect(voltageReadings(m.id).at(-1)!.values['voltage.a']).toEqual({ v: m.voltage, unit: 'V' });

    // Unplugged: both ends of the pty pair vanish, as /dev/ttyUSB0 does.
    const unplugged = Date.now();
    await pty.stop();
    await watcher.waitFor(() => busStates().some((s) => s.change === 'lost'), 'the bus-state "lost" log line', 5_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const seqBeforeReplug = seqs().at(-1)!;

    // Plugged back in: the same path again, and the meters (which kept their state) on the line again.
    await pty.start();
    const back = Date.now();
    await sim.bus.attach(pty.b);
    await watcher.waitFor(
      () => METERS.every((m) => voltageReadings(m.id).some((r) => Date.parse(r.ts) >= back)),
      'a voltage reading from every meter after the replug',
      5_000,
    );
    const resumedMs = Date.now() - back;
    const opened = busStates().find((s) => s.change === 'opened' && Date.parse(String(s.time)) >= back);
    const reopenedAt = opened ? Date.parse(String(opened.time)) : undefined;
    console.info(
      `e2e bus replug: port reopened ${reopenedAt === undefined ? '?' : reopenedAt - back} ms and every meter read and published again ${resumedMs} ms after the port came back`,
    );
    expect(resumedMs).toBeLessThan(5_000);
    for (const m of METERS) expect(voltageReadings(m.id).at(-1)!.values['voltage.a']).toEqual({ v: m.voltage, unit: 'V' });

    // Nothing lost: every reading the gateway committed reached the broker, numbered without a gap.
    await watcher.waitFor(() => seqs().at(-1)! > seqBeforeReplug + 2 && contiguous(seqs()), 'contiguous seqs after the replug', 10_000);
    expect(contiguous(seqs())).toBe(true);
    // No reading claims to have been taken while the port was gone.
    const during = readings().filter((r) => Date.parse(r.ts) > unplugged + 500 && Date.parse(r.ts) < back - 500);
    expect(during.filter((r) => Object.values(r.values).some((v) => 'v' in v))).toEqual([]);

    const changes = busStates().map((s) => `${s.state}/${s.change}`);
    const lost = changes.indexOf('down/lost');
    expect(lost).toBeGreaterThan(0);
    expect(changes[lost + 1]).toBe('down/reopening');
    expect(changes.at(-1)).toBe('up/opened');
    const reopened = busStates().at(-1)!;
    expect(reopened).toMatchObject({ bus: 'bus1', reconnects: 1, reason: expect.stringMatching(/^opened after \d+ failed attempts?$/) });
    expect(reopened.downMs).toBeGreaterThan(3_000);
    expect(busStates().some((s) => s.change === 'reopening' && s.errno === 'ENOENT')).toBe(true);

    // The store holds the readings from before the unplug and after the replug.
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited()).toBe(0);
    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      for (const m of METERS) {
        const stored = store.readings.since(m.id, 0).filter((r) => 'v' in (r.values['voltage.a'] ?? {}));
        expect(stored.some((r) => r.takenAt < unplugged)).toBe(true);
        expect(stored.some((r) => r.takenAt >= back)).toBe(true);
      }
    } finally {
      store.close();
    }
  }, 60_000);
});
