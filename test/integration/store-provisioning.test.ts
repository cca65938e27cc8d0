import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import {
  MIGRATIONS,
  openLedgerEntry,
  openStore,
  recordLostCard,
  recordOpening,
  saveCustomer,
  transitionLedger,
} from '../../src/store/index.js';
import { migrate } from '../../src/store/migrations.js';

// Migration 10 on a store that already holds a ledger: the rows stay, the ledger takes opening entries from then on,
// and a load of nothing is still refused by the table itself.

describe('the provisioning migration', () => {
  it('widens the ledger of an existing store for openings and keeps its rows and its other rules', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'meterd-mig10-')), 'meterd.db');
    const clock = new ManualClock(Date.parse('2026-12-01T08:00:00Z'));
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    migrate(old, MIGRATIONS.slice(0, 9), clock, silentLogger);
    old.close();
    let store = openStore({ path, clock });
    // A sale made before the upgrade would have been recorded with version 9's rules; write one the same way.
    store.transaction((tx) => {
      const { entry } = openLedgerEntry(tx, {
        requestId: 'r-1',
        channel: 'remote',
        meterId: 'room-1',
        unit: 'energy',
        amount: 500,
        request: {},
      });
      transitionLedger(tx, entry.id, 'applied', { purchaseCount: 4, after: { count: 4, balance: 900, overdraft: 0 } });
    });
    expect(store.schemaVersion).toBe(MIGRATIONS.length);
    store.close();

    store = openStore({ path, clock });
    const first = store.transaction((tx) =>
      recordOpening(tx, {
        meterId: 'room-2',
        unit: 'energy',
        wallet: { count: 3, balance: 1200, overdraft: 0 },
        lastAmount: 0,
        operator: 'zhang',
        source: 'remote-read',
      }),
    );
    expect(first.created).toBe(true);
    expect(first.entry).toMatchObject({ requestId: 'opening-room-2-3', channel: 'opening', kind: 'opening', amount: 0, state: 'applied' });
    const again = store.transaction((tx) =>
      recordOpening(tx, {
        meterId: 'room-2',
        unit: 'energy',
        wallet: { count: 3, balance: 1200, overdraft: 0 },
        lastAmount: 0,
        operator: 'li',
        source: 'remote-read',
      }),
    );
    expect(again).toMatchObject({ created: false, entry: { id: first.entry.id, operator: 'zhang' } });
    expect(store.ledger.get('r-1')).toMatchObject({ state: 'applied', amount: 500 });
    expect(store.integrityCheck().ok).toBe(true);
    store.close();

    // The table itself still refuses a load of nothing: only an opening may carry 0.
    const raw = new Database(path);
    expect(() =>
      raw
        .prepare(
          "INSERT INTO ledger (request_id, channel, kind, meter_id, unit, amount, state, request_json, created_at, updated_at) VALUES ('z', 'card', 'load', 'm', 'energy', 0, 'applied', '{}', 0, 0)",
        )
        .run(),
    ).toThrow(/CHECK constraint failed/);
    raw.close();
  });

  it('keeps one active customer per meter and a history line per change; a lost card is recorded once', () => {
    const clock = new ManualClock(Date.parse('2026-12-01T08:00:00Z'));
    const store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-arch-')), 'meterd.db'), clock });
    store.transaction((tx) =>
      saveCustomer(tx, '1001', { name: 'Wang', room: '3-201', meterAddress: '000000000101' }, { operator: 'zhang', action: 'import' }),
    );
    expect(() =>
      store.transaction((tx) =>
        saveCustomer(tx, '1002', { name: 'Li', room: '3-202', meterAddress: '000000000101' }, { operator: 'zhang', action: 'import' }),
      ),
    ).toThrow('meter 000000000101 is bound to active customer 1001; move that customer out first (meterd archive move-out 1001)');
    clock.advance(60_000);
    store.transaction((tx) => saveCustomer(tx, '1001', { state: 'moved-out' }, { operator: 'li', action: 'moved-out' }));
    store.transaction((tx) =>
      saveCustomer(tx, '1002', { name: 'Li', room: '3-202', meterAddress: '000000000101' }, { operator: 'zhang', action: 'import' }),
    );
    expect(store.archive.byMeter('000000000101')?.customerNo).toBe('1002');
    expect(store.archive.history('1001').map((h) => [h.operator, h.action, h.changes])).toEqual([
      ['zhang', 'import', { name: [null, 'Wang'], room: [null, '3-201'], meterAddress: [null, '000000000101'], state: [null, 'active'] }],
      ['li', 'moved-out', { state: ['active', 'moved-out'] }],
    ]);
    const lost = {
      cardSerial: 'C-77',
      customerNo: '1002',
      meterAddress: '000000000101',
      reason: 'lost' as const,
      replacedBy: 'C-78',
      operator: 'li',
    };
    store.transaction((tx) => recordLostCard(tx, lost));
    clock.advance(1000);
    store.transaction((tx) => recordLostCard(tx, { ...lost, operator: 'other' }));
    expect(store.archive.lostCard('C-77')).toMatchObject({ operator: 'li', replacedBy: 'C-78' });
    store.close();
  });
});
