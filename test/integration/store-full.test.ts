import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { walSizing } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// The real fault: the daemon's data folder on a tmpfs of its own, filled with dd while it runs. This machine runs the
// tests as root, which `mount` needs; if it is refused the test fails (it does not skip, and there is no stand-in).

interface Reading {
  seq: number;
  meter: string;
  ts: string;
}
interface Status {
  state: string;
  storage?: string;
}

const METERS = [
  { id: 'f1', address: '000000000301' },
  { id: 'f2', address: '000000000302' },
];

const root = mkdtempSync(join(tmpdir(), 'meterd-full-'));
const mounts: string[] = [];
let broker: TestBroker;
let sim: Dlt645Simulator;
const daemons: DaemonProcess[] = [];
const retained: string[] = [];

function mountTmpfs(name: string, size: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`cannot mount a tmpfs at ${dir} (${(error as Error).message.trim()}): this test needs root to fill a real file system`);
  }
  mounts.push(dir);
  return dir;
}

/** Fills the file system with zeros until ENOSPC, as `dd` stops there with a non-zero exit. */
function fill(dir: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
  } catch {
    // ENOSPC: the point of the exercise.
  }
  const fs = statfsSync(dir);
  expect(fs.bavail * fs.bsize).toBe(0);
}

function config(gatewayId: string, dataDir: string): string {
  return `gateway:
  id: ${gatewayId}
  dataDir: ${dataDir}
mqtt:
  url: ${broker.url}
  protocolVersion: 4
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

function lines(daemon: DaemonProcess): Record<string, unknown>[] {
  return daemon
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function startGateway(dataDir: string): Promise<{ daemon: DaemonProcess; watcher: TopicWatcher; gatewayId: string }> {
  const gatewayId = uniqueId('gw-full');
  retained.push(
    `meterd/${gatewayId}/status`,
    `meterd/${gatewayId}/buses/bus1/state`,
    ...METERS.map((m) => `meterd/${gatewayId}/meters/${m.id}/state`),
  );
  const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
  const daemon = startDaemon(config(gatewayId, dataDir), { dir: mkdtempSync(join(root, 'cfg-')) });
  daemons.push(daemon);
  return { daemon, watcher, gatewayId };
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: METERS.map((m) => ({ address: m.address, kind: 'money' as const, balance: 50 })) },
  });
});

afterAll(async () => {
  for (const d of daemons) {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      d.child.kill('SIGKILL');
      await d.exited();
    }
  }
  for (const dir of mounts) execFileSync('umount', [dir]);
  rmSync(root, { recursive: true, force: true });
  await clearRetained(broker.url, retained);
  await sim?.close();
  await broker?.close();
});

describe('a disk that fills up under a running daemon (16 MiB tmpfs, dd until ENOSPC)', () => {
  it('stays up, says STORE_FULL once and storage: full, answers commands, and stores again by itself when space returns', async () => {
    const dataDir = mountTmpfs('full16', '16m');
    const { daemon, watcher, gatewayId } = await startGateway(dataDir);
    const readingsTopic = (m: string) => `meterd/${gatewayId}/meters/${m}/readings`;
    const readings = () => METERS.flatMap((m) => watcher.json<Reading>(readingsTopic(m.id)));
    const statuses = () => watcher.json<Status>(`meterd/${gatewayId}/status`);
    await watcher.waitFor(() => readings().length >= 10, 'readings before the fill', 20_000);

    const filledAt = Date.now();
    fill(dataDir);
    await watcher.waitFor(() => lines(daemon).some((l) => l.code === 'STORE_FULL'), 'STORE_FULL in the log', 30_000);
    const fullAfterMs = Date.now() - filledAt;
    await watcher.waitFor(() => statuses().at(-1)?.storage === 'full', 'the retained status saying storage: full');

    // A station command while the disk is full still gets an answer.
    const station = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: uniqueId('station') }, false);
    await station.publishAsync(
      `meterd/${gatewayId}/cmd/read`,
      JSON.stringify({ requestId: 'read-while-full', meter: 'f1', points: ['voltage.a'] }),
      { qos: 1 },
    );
    await watcher.waitFor(
      () => watcher.json<{ requestId: string }>(`meterd/${gatewayId}/cmd/read/result`).some((r) => r.requestId === 'read-while-full'),
      'a reply to the command sent while the disk is full',
    );
    await station.endAsync();

    // Polling goes on into memory for a while: the process must still be there, and have said STORE_FULL once.
    const heldSince = Date.now();
    await new Promise((r) => setTimeout(r, 8_000));
    expect(daemon.child.exitCode).toBeNull();
    expect(lines(daemon).filter((l) => l.code === 'STORE_FULL')).toHaveLength(1);
    const full = lines(daemon).find((l) => l.code === 'STORE_FULL')!;
    expect(full).toMatchObject({ level: 50, dataDir, freeBytes: expect.any(Number) });
    expect(lines(daemon).some((l) => l.level === 60)).toBe(false);
    const seenBeforeRm = readings().length;

    rmSync(join(dataDir, 'fill'));
    const freedAt = Date.now();
    await watcher.waitFor(() => statuses().at(-1)?.storage === 'ok', 'storage: ok again', 20_000);
    const okAfterMs = Date.now() - freedAt;
    await watcher.waitFor(() => readings().length >= seenBeforeRm + 10, 'readings again after space returned', 20_000);
    // Held readings were taken while the disk was full and are delivered once space is back.
    const held = readings().filter((r) => Date.parse(r.ts) >= heldSince && Date.parse(r.ts) < freedAt);
    expect(held.length).toBeGreaterThan(0);

    daemon.child.kill('SIGTERM');
    expect(await daemon.exited()).toBe(0);

    // No number reused for another reading, and no gap: what was held got its seq when it was stored.
    const bySeq = new Map<number, string>();
    for (const r of readings()) {
      const key = `${r.meter}@${r.ts}`;
      expect(bySeq.get(r.seq) ?? key).toBe(key);
      bySeq.set(r.seq, key);
    }
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    await watcher.close();
    process.stdout.write(
      `store-full figures: STORE_FULL ${fullAfterMs} ms after the fill; storage ok ${okAfterMs} ms after rm; ${held.length} readings held in memory and delivered; seq ${seqs[0]}–${seqs.at(-1)} without gap\n`,
    );
  });
});

describe('a 2 MiB volume', () => {
  it('runs: the WAL is sized to the volume and checkpointed long before it could fill it', async () => {
    const dataDir = mountTmpfs('tiny2', '2m');
    const { daemon, watcher, gatewayId } = await startGateway(dataDir);
    const readings = () => METERS.flatMap((m) => watcher.json<Reading>(`meterd/${gatewayId}/meters/${m.id}/readings`));
    const limit = walSizing(2 * 1024 * 1024, 4096).journalSizeLimitBytes;
    expect(limit).toBeLessThanOrEqual(2 * 1024 * 1024 * (1 / 16) + 64 * 1024);

    let largestWal = 0;
    const started = Date.now();
    while (Date.now() - started < 15_000) {
      const wal = join(dataDir, 'meterd.db-wal');
      if (existsSync(wal)) largestWal = Math.max(largestWal, statSync(wal).size);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(daemon.child.exitCode).toBeNull();
    expect(readings().length).toBeGreaterThan(20);
    // A WAL may overshoot its checkpoint size by the transaction that crossed it, then is cut back to the limit.
    expect(largestWal).toBeLessThan(2 * limit);
    expect(lines(daemon).some((l) => l.level === 60)).toBe(false);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited()).toBe(0);
    await watcher.close();
    process.stdout.write(
      `store-full figures (2 MiB): WAL limit ${limit} B, largest WAL seen ${largestWal} B, ${readings().length} readings in 15 s\n`,
    );
  });
});
