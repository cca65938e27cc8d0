import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { enqueue, openStore, type Store } from '../../src/store/index.js';

let dir: string;
let clock: ManualClock;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-dead-letters-'));
  clock = new ManualClock(Date.UTC(2025, 2, 1, 8, 0, 0));
  store = openStore({ path: join(dir, 'meterd.db'), clock });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const put = (topic: string, extra: { responseTopic?: string; correlationData?: Buffer } = {}) =>
  store.transaction((tx) => enqueue(tx, { topic, class: topic.startsWith('cmd/') ? 'reply' : 'alert', payload: { topic }, ...extra })).id;

describe('refusals and dead letters', () => {
  it('counts refusals on the outbox row, and moves it at the deadAfter-th with everything needed to send it again', () => {
    const id = put('cmd/read/result', { responseTopic: 'station/replies/1', correlationData: Buffer.from([1, 2]) });
    const other = put('alerts/x');
    expect(store.outbox.refused(id, 'Not authorized (reason code 135)', { deadAfter: 3 })).toEqual({ dead: false, attempts: 1 });
    expect(store.outbox.refused(id, 'Not authorized (reason code 135)', { deadAfter: 3 })).toEqual({ dead: false, attempts: 2 });
    clock.advance(5_000);
    expect(store.outbox.refused(id, 'Quota exceeded (reason code 151)', { deadAfter: 3 })).toEqual({ dead: true, attempts: 3, total: 1 });

    expect(store.outbox.find(id)).toBeUndefined();
    expect(store.outbox.peek({ limit: 10 }).map((m) => m.id)).toEqual([other]);
    expect(store.deadLetters.count()).toBe(1);
    expect(store.deadLetters.list()).toEqual([
      {
        id: 1,
        outboxId: id,
        topic: 'cmd/read/result',
        responseTopic: 'station/replies/1',
        class: 'reply',
        payload: '{"topic":"cmd/read/result"}',
        bytes: 27,
        createdAt: Date.UTC(2025, 2, 1, 8, 0, 0),
        attempts: 3,
        reason: 'Quota exceeded (reason code 151)',
        deadAt: Date.UTC(2025, 2, 1, 8, 0, 5),
      },
    ]);
  });

  it('moves a permanently refused row at once, and answers undefined for a row that is gone', () => {
    const id = put('alerts/x');
    expect(store.outbox.refused(id, 'invalid topic', { deadAfter: 5, permanent: true })).toEqual({ dead: true, attempts: 1, total: 1 });
    expect(store.outbox.refused(id, 'again', { deadAfter: 5 })).toBeUndefined();
    expect(store.outbox.refused(9_999, 'never queued', { deadAfter: 5 })).toBeUndefined();
  });

  it('requeues a dead letter at the end of the outbox with its route, refusals reset', () => {
    const first = put('cmd/read/result', { responseTopic: 'station/replies/1', correlationData: Buffer.from([7]) });
    store.outbox.refused(first, 'no', { deadAfter: 1 });
    const later = put('alerts/y');
    const [dead] = store.deadLetters.list();
    expect(store.deadLetters.requeue(dead!.id)).toBe(true);
    expect(store.deadLetters.requeue(dead!.id)).toBe(false);
    expect(store.deadLetters.count()).toBe(0);
    const queued = store.outbox.peek({ limit: 10 });
    expect(queued.map((m) => m.topic)).toEqual(['alerts/y', 'cmd/read/result']);
    expect(queued[0]?.id).toBe(later);
    expect(queued[1]).toMatchObject({ responseTopic: 'station/replies/1', correlationData: Buffer.from([7]) });
    // Refused once more, it starts counting from one again.
    expect(store.outbox.refused(queued[1]!.id, 'no', { deadAfter: 2 })).toEqual({ dead: false, attempts: 1 });
  });

  it('leaves the messages of waiting topics out of an outbox read', () => {
    put('alerts/a');
    put('cmd/read/result', { responseTopic: 'station/r' });
    put('cmd/read/result');
    put('alerts/b');
    const topics = (options: { excludeTopics?: string[]; excludeResponseTopics?: string[] }) =>
      store.outbox.peek({ limit: 10, ...options }).map((m) => m.responseTopic ?? m.topic);
    expect(topics({})).toEqual(['alerts/a', 'station/r', 'cmd/read/result', 'alerts/b']);
    expect(topics({ excludeTopics: ['alerts/a', 'cmd/read/result'] })).toEqual(['station/r', 'alerts/b']);
    expect(topics({ excludeResponseTopics: ['station/r'] })).toEqual(['alerts/a', 'cmd/read/result', 'alerts/b']);
  });
});
