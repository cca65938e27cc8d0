import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { openLedgerEntry, openStore, transitionLedger, type Store } from '../../src/store/index.js';

let store: Store;
const clock = new ManualClock(Date.parse('2026-11-27T08:00:00Z'));
beforeEach(() => {
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-ledger-')), 'meterd.db'), clock });
});
afterEach(() => store.close());

const load = {
  requestId: 'req-1',
  channel: 'remote' as const,
  meterId: 'room-101',
  unit: 'energy' as const,
  amount: 1000,
  request: { energyKwh: 10 },
};

describe('credit ledger', () => {
  it('a repeated request id returns the first entry and creates nothing', () => {
    const first = store.transaction((tx) => openLedgerEntry(tx, load), { durable: true });
    const again = store.transaction((tx) => openLedgerEntry(tx, { ...load, amount: 5000 }), { durable: true });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.entry).toEqual(first.entry);
    expect(store.ledger.list()).toHaveLength(1);
  });

  it('records each state with what was learned, and the history of transitions', () => {
    const { entry } = store.transaction((tx) => openLedgerEntry(tx, load));
    store.transaction(
      (tx) =>
        transitionLedger(tx, entry.id, 'writing', { purchaseCount: 8, before: { count: 7, balance: 150, overdraft: 0 }, attempts: 1 }),
      { durable: true },
    );
    clock.advance(1000);
    const done = store.transaction(
      (tx) => transitionLedger(tx, entry.id, 'applied', { after: { count: 8, balance: 1150, overdraft: 0 }, detail: 'counter advanced' }),
      { durable: true },
    );
    expect(done).toMatchObject({
      state: 'applied',
      purchaseCount: 8,
      before: { count: 7, balance: 150 },
      after: { count: 8, balance: 1150 },
      finalAt: clock.now(),
    });
    expect(store.ledger.events(entry.id).map((e) => e.state)).toEqual(['received', 'writing', 'applied']);
    expect(store.ledger.open()).toEqual([]);
  });

  it('a final entry never moves again', () => {
    const { entry } = store.transaction((tx) => openLedgerEntry(tx, load));
    store.transaction((tx) => transitionLedger(tx, entry.id, 'rejected', { error: { code: 'REPEAT_RECHARGE', message: 'x' } }));
    expect(() => store.transaction((tx) => transitionLedger(tx, entry.id, 'applied'))).toThrow(/cannot go from rejected to applied/);
  });

  it('refuses amounts that are not whole fen or 0.01 kWh', () => {
    expect(() => store.transaction((tx) => openLedgerEntry(tx, { ...load, amount: 10.5 }))).toThrow(/whole positive/);
  });

  it('entries not final are listed for settlement after a restart', () => {
    const { entry } = store.transaction((tx) => openLedgerEntry(tx, load));
    store.transaction((tx) => transitionLedger(tx, entry.id, 'writing', { purchaseCount: 3 }));
    const path = store.path;
    store.close();
    store = openStore({ path, clock });
    expect(store.ledger.open().map((e) => [e.requestId, e.state, e.purchaseCount])).toEqual([['req-1', 'writing', 3]]);
  });
});
