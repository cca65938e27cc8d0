import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { RecallService } from '../../src/services/recall.js';
import { enqueue, insertReadings, openStore, type Store } from '../../src/store/index.js';
import { recallSchema } from '../../src/uplink/commands/schema.js';
import { ManualTimers } from '../helpers/manual-timers.js';

let dir: string;
let store: Store;
let clock: ManualClock;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-recall-'));
  clock = new ManualClock(Date.UTC(2026, 11, 4, 6, 0));
  store = openStore({ path: join(dir, 'meterd.db'), clock });
  // 50 readings published with seq 1..50, as the poller stores them; the outbox already delivered (emptied).
  store.transaction((tx) => {
    for (let i = 0; i < 50; i++) {
      const { seq } = enqueue(tx, {
        topic: `meters/m${i % 3}/readings`,
        class: 'telemetry',
        payload: { meter: `m${i % 3}` },
        seqStream: 'readings',
      });
      insertReadings(tx, [
        {
          meterId: `m${i % 3}`,
          takenAt: clock.now() + i * 1000,
          values: { 'energy.active.import': { v: 100 + i, unit: 'kWh' } },
          seq: seq!,
        },
      ]);
    }
  });
  const ids = store.outbox.peek({ limit: 100 }).map((m) => m.id);
  for (const id of ids) store.outbox.ack(id);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('recall of readings by seq', () => {
  it('names the ranges it no longer holds', () => {
    const recall = new RecallService({ store, chunk: 10 });
    expect(recall.plan(1, 50)).toEqual({ found: 50, missing: [] });
    expect(recall.plan(45, 60)).toEqual({ found: 6, missing: [[51, 60]] });
  });

  it('queues the readings a chunk at a time, only while the outbox is nearly empty, exactly as first published but marked recalled', async () => {
    const timers = new ManualTimers();
    const recall = new RecallService({ store, chunk: 10, timers, tickMs: 100 });
    const plan = recall.recall('r1', 5, 34);
    expect(plan.found).toBe(30);
    await timers.advance(0);
    expect(store.outbox.counts().total).toBe(10);
    // The uplink has not sent them: the next chunk waits.
    await timers.advance(500);
    expect(store.outbox.counts().total).toBe(10);
    const sent: { seq: number; recalled: boolean; meter: string; ts: string; values: object }[] = [];
    for (let round = 0; round < 5 && (recall.inProgress() > 0 || store.outbox.counts().total > 0); round++) {
      for (const m of store.outbox.peek({ limit: 100 })) {
        sent.push(JSON.parse(m.payload));
        store.outbox.ack(m.id);
      }
      await timers.advance(100);
    }
    expect(sent.map((s) => s.seq)).toEqual(Array.from({ length: 30 }, (_, i) => 5 + i));
    expect(sent[0]).toEqual({
      seq: 5,
      meter: 'm1',
      ts: new Date(clock.now() + 4000).toISOString(),
      values: { 'energy.active.import': { v: 104, unit: 'kWh' } },
      recalled: true,
    });
    expect(recall.inProgress()).toBe(0);
  });
});

describe('the recall request', () => {
  const parse = (v: object) => recallSchema.safeParse({ requestId: 'r', ...v });
  it('takes a seq range or a report range, not both and not neither', () => {
    expect(parse({ fromSeq: 1, toSeq: 5 }).success).toBe(true);
    expect(parse({ reports: { from: '2026-12-01', to: '2026-12-03' } }).success).toBe(true);
    expect(parse({}).error?.issues[0]?.message).toMatch(/either fromSeq and toSeq .* or reports/);
    expect(parse({ fromSeq: 1, toSeq: 2, reports: { from: '2026-12-01', to: '2026-12-01' } }).success).toBe(false);
    expect(parse({ fromSeq: 9, toSeq: 2 }).error?.issues[0]).toMatchObject({ path: ['toSeq'], message: 'must be at least fromSeq' });
    expect(parse({ fromSeq: 0, toSeq: 2 }).error?.issues[0]).toMatchObject({ path: ['fromSeq'], message: 'must be at least 1' });
    expect(parse({ fromSeq: 1 }).error?.issues[0]?.message).toBe('give both fromSeq and toSeq');
    expect(parse({ reports: { from: '2026-10-01', to: '2026-12-31' } }).error?.issues[0]?.message).toMatch(/at most 62 days/);
  });
});

describe('recall of daily reports by date', () => {
  it('publishes each closed day again, marked recalled, and names the days that are not closed yet', async () => {
    const { BooksPublisher } = await import('../../src/services/books/index.js');
    clock.set(Date.UTC(2026, 11, 3, 10, 0));
    const publisher = new BooksPublisher({ store, clock, gateway: { id: 'gw-r', timeZone: 'UTC' }, meters: [{ id: 'm0' }] });
    expect(publisher.recallDays('2026-12-01', '2026-12-03')).toEqual({
      republished: ['2026-12-01', '2026-12-02'],
      missing: ['2026-12-03'],
    });
    const reports = store.outbox
      .peek({ limit: 100 })
      .filter((m) => m.topic === 'reports/daily')
      .map((m) => JSON.parse(m.payload) as { period: string; recalled?: boolean });
    expect(reports.map((r) => [r.period, r.recalled])).toEqual([
      ['2026-12-01', true],
      ['2026-12-02', true],
    ]);
  });
});
