import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import {
  enqueue,
  findCommand,
  finishCommand,
  listCommands,
  openCommands,
  openStore,
  recordAcceptedCommand,
  StoreError,
  type NewCommandRecord,
  type Store,
} from '../../src/store/index.js';

let dir: string;
let clock: ManualClock;
const opened: Store[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-commands-store-'));
  clock = new ManualClock(Date.UTC(2025, 2, 1, 8, 0, 0));
});

afterEach(() => {
  for (const store of opened.splice(0)) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(): Store {
  const store = openStore({ path: join(dir, 'meterd.db'), clock });
  opened.push(store);
  return store;
}

function expectStoreError(fn: () => unknown, code: string): StoreError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    return error as StoreError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

const topup = (requestId: string, extra: Partial<NewCommandRecord> = {}): NewCommandRecord => ({
  requestId,
  command: 'topup',
  meterId: 'room-101',
  requestJson: `{"energyKwh":12.5,"meter":"room-101","requestId":"${requestId}"}`,
  receivedAt: clock.now(),
  ...extra,
});

describe('reply routing in the outbox', () => {
  it('keeps a reply’s MQTT 5 response topic and correlation data beside its relative default topic', () => {
    const store = open();
    store.transaction((tx) => {
      enqueue(tx, { topic: 'meters/room-101/readings', class: 'telemetry', payload: { kwh: 1 } });
      enqueue(tx, {
        topic: 'cmd/topup/result',
        class: 'reply',
        payload: { requestId: 'r-1', status: 'accepted' },
        responseTopic: 'station/replies/7',
        correlationData: Buffer.from([0, 1, 2, 255]),
      });
      enqueue(tx, { topic: 'cmd/relay/result', class: 'reply', payload: { requestId: 'r-2', status: 'accepted' } });
    });
    const [reading, routed, plain] = store.outbox.peek({ limit: 10 });
    expect(reading?.responseTopic).toBeUndefined();
    expect(routed).toMatchObject({ topic: 'cmd/topup/result', responseTopic: 'station/replies/7' });
    expect(routed?.correlationData).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(plain?.topic).toBe('cmd/relay/result');
    expect(plain?.responseTopic).toBeUndefined();
    expect(plain?.correlationData).toBeUndefined();
  });

  it('refuses a response topic on anything but a reply, one with wildcards, and correlation data with nowhere to go', () => {
    const store = open();
    expectStoreError(
      () => store.transaction((tx) => enqueue(tx, { topic: 'meters/a/readings', class: 'telemetry', payload: {}, responseTopic: 'x/y' })),
      'STORE_INVALID_VALUE',
    );
    expectStoreError(
      () =>
        store.transaction((tx) =>
          enqueue(tx, { topic: 'cmd/topup/result', class: 'reply', payload: {}, responseTopic: 'station/+/replies' }),
        ),
      'STORE_INVALID_VALUE',
    );
    expectStoreError(
      () =>
        store.transaction((tx) =>
          enqueue(tx, { topic: 'cmd/topup/result', class: 'reply', payload: {}, correlationData: Buffer.from('c') }),
        ),
      'STORE_INVALID_VALUE',
    );
    expect(store.outbox.counts().total).toBe(0);
  });
});

describe('the commands table', () => {
  it('records a request id once: a second record with the same id returns the first, untouched', () => {
    const store = open();
    const first = store.transaction((tx) =>
      recordAcceptedCommand(tx, topup('r-1', { responseTopic: 'station/r', correlationData: Buffer.from('c1') })),
    );
    expect(first.created).toBe(true);
    expect(first.record).toMatchObject({
      requestId: 'r-1',
      command: 'topup',
      meterId: 'room-101',
      status: 'accepted',
      finishedAt: null,
      responseTopic: 'station/r',
    });
    clock.advance(1_000);
    const again = store.transaction((tx) => recordAcceptedCommand(tx, topup('r-1', { meterId: 'room-999' })));
    expect(again.created).toBe(false);
    expect(again.record).toEqual(first.record);
  });

  it('makes a command final once, with its result or error, and remembers it after the store is reopened', () => {
    let store = open();
    store.transaction((tx) => recordAcceptedCommand(tx, topup('r-1')));
    store.transaction((tx) => recordAcceptedCommand(tx, topup('r-2')));
    clock.advance(2_000);
    store.transaction((tx) => finishCommand(tx, 'r-1', { status: 'done', result: { purchaseCount: 8, balanceKwh: 49.7 } }));
    store.transaction((tx) =>
      finishCommand(tx, 'r-2', { status: 'failed', error: { code: 'METER_TIMEOUT', message: 'no answer' }, result: { applied: false } }),
    );
    expectStoreError(() => store.transaction((tx) => finishCommand(tx, 'r-1', { status: 'done', result: {} })), 'STORE_INVALID_VALUE');
    expectStoreError(() => store.transaction((tx) => finishCommand(tx, 'nope', { status: 'done', result: {} })), 'STORE_INVALID_VALUE');
    store.close();

    store = open();
    const [done, failed] = store.transaction((tx) => [findCommand(tx, 'r-1'), findCommand(tx, 'r-2')]);
    expect(done).toMatchObject({ status: 'done', result: { purchaseCount: 8, balanceKwh: 49.7 }, error: null, finishedAt: clock.now() });
    expect(failed).toMatchObject({ status: 'failed', result: { applied: false }, error: { code: 'METER_TIMEOUT', message: 'no answer' } });
  });

  it('lists the commands still accepted, oldest first, for a restart to resume', () => {
    const store = open();
    for (const id of ['r-1', 'r-2', 'r-3']) {
      store.transaction((tx) => recordAcceptedCommand(tx, topup(id)));
      clock.advance(10);
    }
    store.transaction((tx) => finishCommand(tx, 'r-2', { status: 'rejected', error: { code: 'REPEAT_RECHARGE', message: 'x' } }));
    expect(store.transaction((tx) => openCommands(tx)).map((c) => c.requestId)).toEqual(['r-1', 'r-3']);
    expect(store.transaction((tx) => listCommands(tx, { meterId: 'room-101' })).map((c) => c.requestId)).toEqual(['r-3', 'r-2', 'r-1']);
  });
});
