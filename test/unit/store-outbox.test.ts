import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { enqueue, openStore, StoreError, type OutboxClass, type OutboxEntry, type Store } from '../../src/store/index.js';

let dir: string;
let clock: ManualClock;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-outbox-'));
  clock = new ManualClock(Date.UTC(2025, 2, 1, 8, 0, 0));
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(name = 'meterd.db'): Store {
  const store = openStore({ path: join(dir, name), clock });
  opened.push(store);
  return store;
}

const put = (store: Store, entry: OutboxEntry) => store.transaction((tx) => enqueue(tx, entry));
const readings = (meterId: string, kwh: number): OutboxEntry => ({
  topic: `meters/${meterId}/readings`,
  class: 'telemetry',
  payload: { meterId, kwh },
  seqStream: 'readings',
});
const seqs = (store: Store) => store.outbox.peek({ limit: 1_000 }).map((m) => (JSON.parse(m.payload) as { seq?: number }).seq);

describe('seq', () => {
  it('rises by exactly one per message and carries on after the store is reopened', () => {
    let store = open();
    put(store, readings('room-101', 1));
    put(store, readings('room-102', 2));
    store.close();
    store = open();
    expect(put(store, readings('room-101', 3)).seq).toBe(3);
    expect(seqs(store)).toEqual([1, 2, 3]);
  });

  it('counts each stream on its own, and leaves messages without a stream unnumbered', () => {
    const store = open();
    put(store, readings('room-101', 1));
    put(store, { topic: 'meters/room-101/events', class: 'alert', payload: { kind: 'cover-open' }, seqStream: 'alerts' });
    put(store, { topic: 'gateway/health', class: 'telemetry', payload: { cpu: 3 } });
    put(store, readings('room-101', 2));
    expect(seqs(store)).toEqual([1, 1, undefined, 2]);
  });

  it('has no gaps and no repeats whatever mix of commits and rollbacks happens', () => {
    let run = 0;
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 40 }), (commits) => {
        const store = open(`run-${++run}.db`);
        for (const commit of commits) {
          try {
            store.transaction((tx) => {
              enqueue(tx, readings('room-101', 1));
              if (!commit) throw new Error('poll cycle aborted');
            });
          } catch {
            // the aborted cycle is the point of the test
          }
        }
        const committed = commits.filter(Boolean).length;
        expect(seqs(store)).toEqual(Array.from({ length: committed }, (_, i) => i + 1));
      }),
      { numRuns: 30 },
    );
  });

  it('is refused on state messages, whose superseded ones would look like losses', () => {
    const store = open();
    expect(() => put(store, { topic: 'meters/room-101/status', class: 'state', payload: { online: true }, seqStream: 'status' })).toThrow(
      StoreError,
    );
  });

  it('is refused when the payload already has a seq of its own', () => {
    const store = open();
    expect(() => put(store, { ...readings('room-101', 1), payload: { seq: 7 } })).toThrow(/already has a seq/);
    expect(put(store, readings('room-101', 1)).seq).toBe(1);
  });
});

describe('draining', () => {
  it('hands out the oldest messages first and skips the ones in flight', () => {
    const store = open();
    const ids = [1, 2, 3, 4, 5].map((kwh) => put(store, readings('room-101', kwh)).id);
    const [first, second, third, fourth] = ids;
    expect(store.outbox.peek({ limit: 2 }).map((m) => m.id)).toEqual([first, second]);
    expect(store.outbox.peek({ limit: 2, excludeIds: [first!, third!] }).map((m) => m.id)).toEqual([second, fourth]);
  });

  it('deletes a message only when it is acknowledged, and a second ack finds nothing', () => {
    const store = open();
    const a = put(store, readings('room-101', 1)).id;
    const b = put(store, readings('room-101', 2)).id;
    expect(store.outbox.ack(a)).toBe(true);
    expect(store.outbox.ack(a)).toBe(false);
    expect(store.outbox.peek({ limit: 10 }).map((m) => m.id)).toEqual([b]);
  });

  it('acknowledges several messages in one commit', () => {
    const store = open();
    const ids = [1, 2, 3].map((kwh) => put(store, readings('room-101', kwh)).id);
    expect(store.outbox.ackMany([ids[0]!, ids[2]!, 999])).toBe(2);
    expect(store.outbox.peek({ limit: 10 }).map((m) => m.id)).toEqual([ids[1]]);
  });

  it('never reuses an id, even after the newest message is acknowledged and the store reopened', () => {
    let store = open();
    const last = put(store, readings('room-101', 1)).id;
    store.outbox.ack(last);
    store.close();
    store = open();
    expect(put(store, readings('room-101', 2)).id).toBeGreaterThan(last);
  });

  it('returns the message as it will be published, with defaults qos 1 and retain only for state', () => {
    const store = open();
    clock.set(Date.UTC(2025, 2, 1, 9, 0, 0));
    put(store, readings('room-101', 1234.5));
    put(store, { topic: 'meters/room-101/status', class: 'state', payload: { online: true } });
    put(store, { topic: 'meters/room-101/reply', class: 'reply', payload: { requestId: 'r-9' }, qos: 2, retain: false });
    const payload = '{"seq":1,"meterId":"room-101","kwh":1234.5}';
    expect(store.outbox.peek({ limit: 10 })).toEqual([
      {
        id: 1,
        topic: 'meters/room-101/readings',
        class: 'telemetry',
        qos: 1,
        retain: false,
        payload,
        createdAt: clock.now(),
        bytes: payload.length,
      },
      expect.objectContaining({ class: 'state', qos: 1, retain: true }),
      expect.objectContaining({ class: 'reply', qos: 2, retain: false }),
    ]);
  });
});

describe('retained state', () => {
  it('replaces the undelivered state of the same topic and leaves other topics alone', () => {
    const store = open();
    put(store, { topic: 'meters/room-101/status', class: 'state', payload: { online: true } });
    put(store, { topic: 'meters/room-102/status', class: 'state', payload: { online: true } });
    const latest = put(store, { topic: 'meters/room-101/status', class: 'state', payload: { online: false, reason: 'timeout' } });
    expect(latest.superseded).toBe(1);
    expect(store.outbox.peek({ limit: 10 }).map((m) => [m.topic, JSON.parse(m.payload)])).toEqual([
      ['meters/room-102/status', { online: true }],
      ['meters/room-101/status', { online: false, reason: 'timeout' }],
    ]);
  });

  it('never replaces messages of any other class, even on the same topic', () => {
    const store = open();
    const classes: OutboxClass[] = ['telemetry', 'credit', 'alert', 'report', 'reply'];
    for (const cls of classes) {
      put(store, { topic: 'meters/room-101/x', class: cls, payload: { n: 1 } });
      expect(put(store, { topic: 'meters/room-101/x', class: cls, payload: { n: 2 } }).superseded).toBe(0);
    }
    put(store, { topic: 'meters/room-101/x', class: 'state', payload: { n: 3 } });
    expect(store.outbox.counts().byClass).toEqual({ telemetry: 2, state: 1, credit: 2, alert: 2, report: 2, reply: 2 });
  });
});

describe('counts', () => {
  it('gives pending messages per class, their payload bytes and the age of the oldest', () => {
    const store = open();
    expect(store.outbox.counts()).toEqual({
      byClass: { telemetry: 0, state: 0, credit: 0, alert: 0, report: 0, reply: 0 },
      total: 0,
      bytes: 0,
      oldestCreatedAt: null,
    });
    const start = clock.now();
    put(store, { topic: 'meters/room-101/credit', class: 'credit', payload: { amount: 50 } });
    clock.advance(1_000);
    put(store, readings('room-101', 1));
    put(store, readings('room-101', 2));
    const all = store.outbox.peek({ limit: 10 });
    expect(store.outbox.counts()).toEqual({
      byClass: { telemetry: 2, state: 0, credit: 1, alert: 0, report: 0, reply: 0 },
      total: 3,
      bytes: all.reduce((sum, m) => sum + Buffer.byteLength(m.payload), 0),
      oldestCreatedAt: start,
    });
  });
});
