/**
 * Uplink throughput on this machine: (a) how fast a 100,000-message outbox backlog drains to a broker after an
 * outage, and (b) readings per second end to end, from the poll-cycle commit to the PUBACK, with 10 point values per
 * reading, as fast as the gateway can commit them and (c) paced at the target rate, where the backlog must stay flat.
 * Prints figures; asserts nothing.
 *
 *   npx tsx scripts/bench/uplink.ts                  in-process aedes (MQTT 3.1.1), in-flight window 32
 *   MQTT_URL=mqtt://127.0.0.1:1883 npx tsx scripts/bench/uplink.ts     an external broker (MQTT 5)
 *   INFLIGHT=64 BACKLOG=100000 READINGS=100000 npx tsx scripts/bench/uplink.ts
 *
 * Targets: backlog of 100,000 in under 20 s; 15,000 point values per second end to end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { systemClock } from '../../src/clock.js';
import { enqueue, insertReadings, openStore, type Reading, type Store } from '../../src/store/index.js';
import { startEmbeddedBroker } from '../../src/uplink/broker.js';
import { OutboxDrain } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';

const BACKLOG = Number(process.env.BACKLOG ?? 100_000);
const READINGS = Number(process.env.READINGS ?? 100_000);
const INFLIGHT = Number(process.env.INFLIGHT ?? 32);
const POINTS_PER_READING = 10;
const READINGS_PER_CYCLE = 100;
const COMMIT_BATCH = 1_000;
/** The end-to-end target, 15,000 point values/s, as poll cycles of 100 readings. */
const PACED_CYCLES_PER_S = 15;
const PACED_SECONDS = Number(process.env.PACED_SECONDS ?? 10);

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-uplink-'));
const external = process.env.MQTT_URL;
const embedded = external ? undefined : await startEmbeddedBroker({ port: 0 });
const url = external ?? embedded?.url ?? '';
const protocolVersion = external ? 5 : 4;
let storeNumber = 0;

function reading(meter: number, takenAt: number): Reading {
  const values: Record<string, { v: number; unit: string }> = {};
  for (let p = 0; p < POINTS_PER_READING; p++) values[`point_${p}`] = { v: 1000 + meter + p / 100, unit: 'kWh' };
  return { meterId: `room-${meter}`, takenAt, values };
}

function readingMessage(r: Reading) {
  return {
    topic: `meters/${r.meterId}/readings`,
    class: 'telemetry' as const,
    payload: { meter: r.meterId, ts: new Date(r.takenAt).toISOString(), values: r.values },
    seqStream: 'readings',
  };
}

async function connect(store: Store): Promise<{ session: MqttSession; drain: OutboxDrain }> {
  const session = new MqttSession({
    mqtt: {
      url,
      clientId: `meterd-bench-${process.pid}-${storeNumber}`,
      topicPrefix: 'meterd-bench',
      keepalive: 30,
      reconnectMaxDelayMs: 30_000,
      protocolVersion,
      inflight: INFLIGHT,
      deadLetterAfter: 5,
    },
    gatewayId: `bench-${process.pid}`,
    birth: () => ({ version: 'bench', startedAt: new Date().toISOString(), buses: [] }),
  });
  session.start();
  await session.waitConnected({ timeoutMs: 10_000 });
  return { session, drain: new OutboxDrain({ outbox: store.outbox, session, inflight: INFLIGHT }) };
}

function freshStore(): Store {
  return openStore({ path: join(dir, `bench-${++storeNumber}.db`), clock: systemClock });
}

const outboxEmpty = (store: Store) => store.outbox.peek({ limit: 1 }).length === 0;

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function benchBacklog(): Promise<void> {
  const store = freshStore();
  const takenAt = systemClock.now();
  for (let i = 0; i < BACKLOG; i += COMMIT_BATCH) {
    store.transaction((tx) => {
      for (let j = i; j < Math.min(BACKLOG, i + COMMIT_BATCH); j++) enqueue(tx, readingMessage(reading(j % 1_000, takenAt)));
    });
  }
  const bytes = store.outbox.counts().bytes;
  const { session, drain } = await connect(store);
  const start = performance.now();
  drain.start();
  await until(() => outboxEmpty(store));
  const seconds = (performance.now() - start) / 1000;
  const stats = drain.stats();
  console.log(
    `  (a) backlog: ${fmt(BACKLOG)} messages (${fmt(bytes / BACKLOG)} B each) drained in ${fmt(seconds, 2)} s → ` +
      `${fmt(BACKLOG / seconds)} messages/s (published ${fmt(stats.published)}, acked ${fmt(stats.acked)})   target < 20 s`,
  );
  await drain.stop();
  await session.close();
  store.close();
}

async function benchEndToEnd(): Promise<void> {
  const store = freshStore();
  const { session, drain } = await connect(store);
  drain.start();
  const start = performance.now();
  let maxBacklog = 0;
  for (let done = 0; done < READINGS; done += READINGS_PER_CYCLE) {
    pollCycle(store);
    drain.notify();
    // Let PUBACKs in between commits, as the poller's cycles would.
    await nextTurn();
    if (done % 10_000 === 0) maxBacklog = Math.max(maxBacklog, store.outbox.counts().total);
  }
  const produced = (performance.now() - start) / 1000;
  await until(() => outboxEmpty(store));
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `  (b) end to end: ${fmt(READINGS)} readings (${POINTS_PER_READING} points each, ${READINGS_PER_CYCLE} per poll-cycle ` +
      `transaction with readings history) committed in ${fmt(produced, 2)} s, all PUBACKed after ${fmt(seconds, 2)} s → ` +
      `${fmt(READINGS / seconds)} readings/s = ${fmt((READINGS * POINTS_PER_READING) / seconds)} point values/s ` +
      `(largest backlog seen ${fmt(maxBacklog)})   target 15,000 point values/s`,
  );
  await drain.stop();
  await session.close();
  store.close();
}

function pollCycle(store: Store): void {
  const takenAt = systemClock.now();
  store.transaction((tx) => {
    const cycle: Reading[] = [];
    for (let m = 0; m < READINGS_PER_CYCLE; m++) cycle.push(reading(m, takenAt));
    insertReadings(tx, cycle);
    for (const r of cycle) enqueue(tx, readingMessage(r));
  });
}

async function benchPaced(): Promise<void> {
  const store = freshStore();
  const { session, drain } = await connect(store);
  drain.start();
  const cycles = PACED_CYCLES_PER_S * PACED_SECONDS;
  const start = performance.now();
  let maxBacklog = 0;
  for (let c = 0; c < cycles; c++) {
    const due = start + (c * 1000) / PACED_CYCLES_PER_S;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    pollCycle(store);
    drain.notify();
    maxBacklog = Math.max(maxBacklog, store.outbox.counts().total);
  }
  const lastCommit = performance.now();
  await until(() => outboxEmpty(store));
  const tailMs = performance.now() - lastCommit;
  const seconds = (performance.now() - start) / 1000;
  const readings = cycles * READINGS_PER_CYCLE;
  console.log(
    `  (c) paced at ${fmt(PACED_CYCLES_PER_S * READINGS_PER_CYCLE * POINTS_PER_READING)} point values/s for ${PACED_SECONDS} s: ` +
      `${fmt(readings)} readings PUBACKed in ${fmt(seconds, 2)} s (${fmt((readings * POINTS_PER_READING) / seconds)} point values/s); ` +
      `largest backlog right after a commit ${fmt(maxBacklog)} rows (one cycle is ${READINGS_PER_CYCLE}); ` +
      `last cycle acknowledged ${fmt(tailMs, 1)} ms after its commit`,
  );
  await drain.stop();
  await session.close();
  store.close();
}

console.log(
  `uplink benchmark: broker ${external ? `${external} (MQTT 5)` : `in-process aedes ${url} (MQTT 3.1.1)`}, in-flight window ${INFLIGHT}, node ${process.version}`,
);
try {
  await benchBacklog();
  await benchEndToEnd();
  await benchPaced();
} finally {
  await embedded?.close();
  rmSync(dir, { recursive: true, force: true });
}
