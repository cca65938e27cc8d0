import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { enqueue, openStore, type Store } from '../../src/store/index.js';
import { writeUntilKilled } from '../helpers/store-writer.js';

// `seq` after a lost WAL: real SIGKILLs of a writer process (test/fixtures/store-writer.ts), then the WAL removed as a
// cleanup script or a `.db`-only backup would. A gap is honest; a reused number is a reading the station drops.

/** As in the writer: readings (and seq numbers) per cycle. */
const METERS = 20;

const dir = mkdtempSync(join(tmpdir(), 'meterd-seq-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) }), lines };
}

/** The seq the next reading gets (in a transaction that is committed: the test looks at what a station would get). */
function nextSeq(store: Store): number {
  return store.transaction(
    (tx) => enqueue(tx, { topic: 'meters/x/readings', class: 'telemetry', payload: {}, seqStream: 'readings' }).seq!,
  );
}

/** What `sequences` says before meterd touches the file: what a store without the guard would continue from. */
function storedSeq(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], number>("SELECT value FROM sequences WHERE stream = 'readings'").pluck().get() ?? 0;
  } finally {
    db.close();
  }
}

describe('seq after a SIGKILL', () => {
  it('with the WAL deleted (the -shm kept): the rewind is detected, logged as an error, and seq continues above everything committed', async () => {
    const path = join(dir, 'lost-wal', 'meterd.db');
    const printed = await writeUntilKilled(path, 120);
    const committedSeq = Math.max(...printed) * METERS;
    expect(existsSync(`${path}-wal`) && existsSync(`${path}-shm`)).toBe(true);
    rmSync(`${path}-wal`);
    // Without the WAL the file is behind: a store without a high-water mark would hand these numbers out again.
    expect(storedSeq(path)).toBeLessThan(committedSeq);

    const { logger, lines } = capture();
    const store = openStore({ path, clock: new ManualClock(), logger });
    try {
      expect(store.seqRewinds).toHaveLength(1);
      expect(store.seqRewinds[0]).toMatchObject({ stream: 'readings', certain: true });
      const next = nextSeq(store);
      expect(next).toBeGreaterThan(committedSeq);
      expect(next).toBe(store.seqRewinds[0]!.resumedAfter + 1);
      const logged = lines.find((l) => l.code === 'STORE_SEQ_REWOUND');
      expect(logged).toMatchObject({ level: 50, stream: 'readings', next });
    } finally {
      store.close();
    }
  });

  it('with the WAL intact: no jump, seq continues at exactly the next number (a crash alone is not a rewind)', async () => {
    const path = join(dir, 'intact', 'meterd.db');
    const printed = await writeUntilKilled(path, 80);
    const { logger, lines } = capture();
    const store = openStore({ path, clock: new ManualClock(), logger });
    try {
      const lastSeq = Math.max(...store.outbox.peek({ limit: 1_000_000 }).map((m) => (JSON.parse(m.payload) as { seq?: number }).seq ?? 0));
      expect(lastSeq).toBeGreaterThanOrEqual(Math.max(...printed) * METERS);
      expect(store.seqRewinds).toEqual([]);
      expect(nextSeq(store)).toBe(lastSeq + 1);
      expect(lines.some((l) => l.code === 'STORE_SEQ_REWOUND')).toBe(false);
    } finally {
      store.close();
    }
  });

  it('after a restart of the machine under an open store (another boot id): skips past the reservation, logged as a warning', async () => {
    const path = join(dir, 'reboot', 'meterd.db');
    const printed = await writeUntilKilled(path, 30);
    // The side file as a process of the previous boot left it; the kernel's boot id is what changes on a power cut.
    const guard = JSON.parse(readFileSync(`${path}-seq`, 'utf8')) as { reserved: { readings: number }; bootId: string };
    writeFileSync(`${path}-seq`, JSON.stringify({ ...guard, bootId: 'a-previous-boot' }));

    const { logger, lines } = capture();
    const store = openStore({ path, clock: new ManualClock(), logger });
    try {
      expect(store.seqRewinds).toMatchObject([{ stream: 'readings', certain: false, resumedAfter: guard.reserved.readings }]);
      expect(nextSeq(store)).toBe(guard.reserved.readings + 1);
      expect(guard.reserved.readings).toBeGreaterThanOrEqual(Math.max(...printed) * METERS);
      expect(lines.find((l) => l.code === 'STORE_SEQ_REWOUND')).toMatchObject({ level: 40 });
    } finally {
      store.close();
    }
  });
});

describe('seq after a clean stop', () => {
  it('continues without a gap across close and open', () => {
    const path = join(dir, 'clean', 'meterd.db');
    let store = openStore({ path, clock: new ManualClock() });
    for (let i = 0; i < 5; i++) nextSeq(store);
    store.close();
    store = openStore({ path, clock: new ManualClock() });
    try {
      expect(store.seqRewinds).toEqual([]);
      expect(nextSeq(store)).toBe(6);
    } finally {
      store.close();
    }
  });

  it('with an older copy of the .db put back (a restore of a backup): continues right after the last number handed out', () => {
    const path = join(dir, 'restored', 'meterd.db');
    let store = openStore({ path, clock: new ManualClock() });
    for (let i = 0; i < 5; i++) nextSeq(store);
    store.close();
    copyFileSync(path, `${path}.backup`);
    store = openStore({ path, clock: new ManualClock() });
    for (let i = 0; i < 7; i++) nextSeq(store);
    store.close();
    copyFileSync(`${path}.backup`, path);

    const { logger, lines } = capture();
    store = openStore({ path, clock: new ManualClock(), logger });
    try {
      expect(store.seqRewinds).toMatchObject([{ stream: 'readings', stored: 5, resumedAfter: 12, certain: true }]);
      expect(nextSeq(store)).toBe(13);
      expect(lines.find((l) => l.code === 'STORE_SEQ_REWOUND')).toMatchObject({ level: 50 });
    } finally {
      store.close();
    }
  });
});
