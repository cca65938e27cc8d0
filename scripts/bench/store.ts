/**
 * Store throughput on this machine: how many readings a poll cycle can commit per second with their outbox messages,
 * what a durable (synchronous=FULL) commit costs, and how long the uplink's side takes to drain a 100,000-message
 * backlog. Prints figures; asserts nothing.
 *
 *   npx tsx scripts/bench/store.ts [dir]     (default: a temp dir; pass a folder on the target disk, e.g. the SD card)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../../src/clock.js';
import { enqueue, insertReadings, openStore, type LimitsResult, type Reading, type Store } from '../../src/store/index.js';

const READINGS_PER_CYCLE = 100;
const POINTS_PER_READING = 10;
const BACKLOG = 100_000;
const DRAIN_BATCH = 100;

const dir = mkdtempSync(join(process.argv[2] ?? tmpdir(), 'meterd-bench-'));
let storeNumber = 0;

function freshStore(): Store {
  return openStore({ path: join(dir, `bench-${++storeNumber}.db`), clock: systemClock });
}

function reading(meter: number, takenAt: number): Reading {
  const values: Record<string, { v: number; unit: string }> = {};
  for (let p = 0; p < POINTS_PER_READING; p++) values[`point_${p}`] = { v: 1000 + meter + p / 100, unit: 'kWh' };
  return { meterId: `room-${meter}`, takenAt, values };
}

function pollCycle(store: Store, durable: boolean): void {
  const takenAt = systemClock.now();
  store.transaction(
    (tx) => {
      for (let m = 0; m < READINGS_PER_CYCLE; m++) {
        const r = reading(m, takenAt);
        insertReadings(tx, [r]);
        enqueue(tx, { topic: `meters/${r.meterId}/readings`, class: 'telemetry', payload: r, seqStream: 'readings' });
      }
    },
    { durable },
  );
}

function time(action: () => void): number {
  const start = performance.now();
  action();
  return (performance.now() - start) / 1000;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function benchWrites(cycles: number, durable: boolean): void {
  const store = freshStore();
  const seconds = time(() => {
    for (let c = 0; c < cycles; c++) pollCycle(store, durable);
  });
  const readings = cycles * READINGS_PER_CYCLE;
  console.log(
    `  synchronous=${durable ? 'FULL  ' : 'NORMAL'}: ${fmt(readings)} readings in ${fmt(seconds, 2)} s → ` +
      `${fmt(readings / seconds)} readings/s (${fmt((seconds * 1000) / cycles, 2)} ms per ${READINGS_PER_CYCLE}-reading transaction)`,
  );
  store.close();
}

function benchSingleCommits(count: number, durable: boolean): void {
  const store = freshStore();
  const seconds = time(() => {
    for (let i = 0; i < count; i++) {
      store.transaction(
        (tx) => enqueue(tx, { topic: 'meters/room-1/credit', class: 'credit', payload: { requestId: `r-${i}`, amount: 50 } }),
        { durable },
      );
    }
  });
  console.log(
    `  one credit message per commit, synchronous=${durable ? 'FULL  ' : 'NORMAL'}: ${fmt((seconds * 1000) / count, 3)} ms per commit`,
  );
  store.close();
}

function backlogStore(): Store {
  const store = freshStore();
  for (let c = 0; c < BACKLOG / READINGS_PER_CYCLE; c++) pollCycle(store, false);
  return store;
}

function benchDrain(label: string, ackBatch: (store: Store, ids: number[]) => void): void {
  const store = backlogStore();
  let drained = 0;
  const seconds = time(() => {
    for (;;) {
      const batch = store.outbox.peek({ limit: DRAIN_BATCH });
      if (batch.length === 0) break;
      ackBatch(
        store,
        batch.map((m) => m.id),
      );
      drained += batch.length;
    }
  });
  console.log(`  ${label}: ${fmt(drained)} messages in ${fmt(seconds, 2)} s → ${fmt(drained / seconds)} messages/s`);
  store.close();
}

function benchCap(): void {
  const backlog = backlogStore();
  const path = backlog.path;
  // Closed and reopened so the WAL is folded into the file and the cap acts on data alone.
  backlog.close();
  const uncapped = openStore({ path, clock: systemClock });
  const full = uncapped.enforceLimits().usedBytes;
  uncapped.close();
  const capped = openStore({ path, clock: systemClock, maxBytes: Math.floor(full / 2) });
  let result: LimitsResult | undefined;
  const seconds = time(() => {
    result = capped.enforceLimits();
  });
  console.log(
    `  halving a ${fmt(full / 1e6, 1)} MB store: dropped ${fmt(result?.prunedTelemetry ?? 0)} messages and ` +
      `${fmt(result?.prunedReadings ?? 0)} readings in ${fmt(seconds, 2)} s`,
  );
  capped.close();
}

console.log(`meterd store benchmark — Node ${process.version}, files in ${dir}`);
console.log(
  `\nwrites: ${READINGS_PER_CYCLE} readings × ${POINTS_PER_READING} points per transaction, each with its telemetry message (seq)`,
);
benchWrites(300, false);
benchWrites(100, true);
console.log('\ncommit latency');
benchSingleCommits(500, false);
benchSingleCommits(200, true);
console.log(`\ndrain a ${fmt(BACKLOG)}-message backlog, peek ${DRAIN_BATCH} at a time`);
benchDrain('ack(id) per message      ', (store, ids) => {
  for (const id of ids) store.outbox.ack(id);
});
benchDrain('ackMany(ids) per batch   ', (store, ids) => store.outbox.ackMany(ids));
console.log('\ndisk cap');
benchCap();

rmSync(dir, { recursive: true, force: true });
