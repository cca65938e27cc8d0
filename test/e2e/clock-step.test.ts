import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

/** The wall-clock shifter preloaded into the daemon (Date only; timers stay monotonic, as after an NTP step). */
const CLOCK_SHIFT = fileURLToPath(new URL('../helpers/clock-shift.mjs', import.meta.url));

interface ReadingMessage {
  meter: string;
  ts: string;
  seq: number;
}

const METERS = [
  { id: 'cs-1', address: '000000000201' },
  { id: 'cs-2', address: '000000000202' },
];

let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let gatewayId: string;
let daemon: DaemonProcess | undefined;

function config(): string {
  return `gateway:
  id: ${gatewayId}
  dataDir: ./data
mqtt:
  url: ${broker.url}
  protocolVersion: ${broker.kind === 'external' ? 5 : 4}
buses:
  - id: bus1
    port: tcp://127.0.0.1:${sim.address!.tcpPort}
    gap: 5ms
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
polling:
  intervals: { instant: 1s, energy: 2s, status: 2s, credit: 2s }
`;
}

/** Starts the daemon with its wall clock shifted by `offsetMs`; returns how to step it later. */
function startShifted(offsetMs: number): { step(toOffsetMs: number): void } {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-clock-'));
  const file = join(dir, 'clock-shift');
  writeFileSync(file, String(offsetMs));
  const d = startDaemon(config(), { dir, execArgv: ['--import', CLOCK_SHIFT], env: { CLOCK_SHIFT_FILE: file }, logLevel: 'info' });
  daemon = d;
  return {
    step(toOffsetMs) {
      writeFileSync(file, String(toOffsetMs));
      d.child.kill('SIGUSR2');
    },
  };
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: METERS.map((m) => ({ address: m.address, kind: 'energy' as const, balance: 50 })) },
  });
  gatewayId = uniqueId('gw-clock');
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
});

afterEach(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited()).toBe(0);
  }
  daemon = undefined;
});

afterAll(async () => {
  await watcher?.close();
  await clearRetained(broker.url, [
    `meterd/${gatewayId}/status`,
    `meterd/${gatewayId}/buses/bus1/state`,
    ...METERS.map((m) => `meterd/${gatewayId}/meters/${m.id}/state`),
  ]);
  await sim?.close();
  await broker?.close();
});

const readings = () => watcher.json<ReadingMessage>().filter((m) => typeof m.seq === 'number' && m.meter !== undefined);
const logEvents = (event: string) =>
  daemon!
    .stderr()
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('meterd run under a wall clock that steps (Date shifted in the process, timers untouched)', () => {
  it('keeps reading every meter when the clock steps back an hour, and logs the step once', { timeout: 60_000 }, async () => {
    const clock = startShifted(0);
    await watcher.waitFor(() => METERS.every((m) => readings().some((r) => r.meter === m.id)), 'a reading from every meter', 20_000);
    const seen = readings().length;
    clock.step(-3_600_000);

    // Readings taken after the step carry the stepped-back time; they keep coming at the configured rate (the old
    // poller slept through the whole hour).
    const stepped = () => readings().filter((r) => Date.parse(r.ts) < Date.now() - 3_000_000);
    await watcher.waitFor(
      () => METERS.every((m) => stepped().filter((r) => r.meter === m.id).length >= 5),
      'five readings per meter after the step',
      15_000,
    );
    expect(readings().length).toBeGreaterThan(seen);
    await watcher.waitFor(() => logEvents('clock-step').length > 0, 'the clock-step log line', 15_000);
    const steps = logEvents('clock-step');
    expect(steps).toHaveLength(1);
    expect(Math.abs((steps[0]!.stepMs as number) + 3_600_000)).toBeLessThan(2_000);
    // seq keeps counting through the step: the station's contract is on seq, not on ts.
    const seqs = [...new Set(readings().map((r) => r.seq))].sort((a, b) => a - b);
    expect(seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1)).toBe(true);
  });

  it('a gateway booted at 1970 that gets its time keeps reading on time (no catch-up over 56 years of slots)', {
    timeout: 60_000,
  }, async () => {
    const clock = startShifted(Date.parse('1970-01-01T00:00:10Z') - Date.now());
    const from1970 = () => readings().filter((r) => Date.parse(r.ts) < Date.parse('1971-01-01T00:00:00Z'));
    await watcher.waitFor(() => METERS.every((m) => from1970().some((r) => r.meter === m.id)), 'readings stamped 1970', 20_000);
    clock.step(0);
    const now = () => readings().filter((r) => Date.parse(r.ts) > Date.now() - 600_000);
    await watcher.waitFor(
      () => METERS.every((m) => now().filter((r) => r.meter === m.id).length >= 5),
      'five readings per meter stamped with the real time',
      15_000,
    );
    await watcher.waitFor(() => logEvents('clock-step').length > 0, 'the clock-step log line', 15_000);
    expect(logEvents('clock-step')).toHaveLength(1);
    expect(logEvents('clock-step')[0]!.stepMs as number).toBeGreaterThan(1_700_000_000_000);
  });
});
