import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { recordRefund, RefundError } from '../../src/services/refunds.js';
import { openLedgerEntry, openStore, transitionLedger, type LedgerEntry, type Store } from '../../src/store/index.js';

let store: Store;
const clock = new ManualClock(Date.parse('2026-11-27T02:00:00Z'));

beforeEach(() => {
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-refunds-')), 'meterd.db'), clock });
});
afterEach(() => store.close());

/** A load as the credit service or the card counter leaves it: final, in the given state. */
function load(
  requestId: string,
  state: 'applied' | 'rejected' | 'verifying',
  extra: { channel?: 'remote' | 'card' | 'allowance'; amount?: number } = {},
): LedgerEntry {
  return store.transaction((tx) => {
    const { entry } = openLedgerEntry(tx, {
      requestId,
      channel: extra.channel ?? 'remote',
      meterId: 'room-101',
      unit: 'money',
      amount: extra.amount ?? 10_000,
      operator: 'alice',
      customerNo: '000000000042',
      request: {},
    });
    return transitionLedger(tx, entry.id, state, {
      purchaseCount: 8,
      ...(state === 'applied' ? { after: { count: 8, balance: 10_000, overdraft: 0 } } : {}),
    });
  });
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RefundError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('refunds are new, immutable ledger entries', () => {
  it('a refund is a new applied entry referring to the original, same meter, unit and channel; the original is untouched', () => {
    const original = load('sale-1', 'applied');
    const { entry, created } = recordRefund(store, {
      requestId: 'refund-1',
      originalRequestId: 'sale-1',
      amount: 3_000,
      operator: 'bob',
      reason: 'customer moved out',
    });
    expect(created).toBe(true);
    expect(entry).toMatchObject({
      kind: 'refund',
      refersTo: original.id,
      meterId: 'room-101',
      unit: 'money',
      channel: 'remote',
      amount: 3_000,
      state: 'applied',
      operator: 'bob',
      customerNo: '000000000042',
      purchaseCount: null,
    });
    expect(entry.request).toMatchObject({ originalRequestId: 'sale-1', reason: 'customer moved out' });
    expect(store.ledger.get('sale-1')).toEqual(original);
    // Nothing for the credit service to write to a meter.
    expect(store.ledger.open()).toEqual([]);
  });

  it('without an amount, refunds everything still left of the original', () => {
    load('sale-1', 'applied', { amount: 10_000 });
    recordRefund(store, { requestId: 'refund-1', originalRequestId: 'sale-1', amount: 2_500, operator: 'bob', reason: 'partial' });
    expect(
      recordRefund(store, { requestId: 'refund-2', originalRequestId: 'sale-1', operator: 'bob', reason: 'the rest' }).entry.amount,
    ).toBe(7_500);
  });

  it('refuses more than the original, and more than what is left after earlier refunds', () => {
    load('sale-1', 'applied', { amount: 10_000 });
    expect(
      refusal(() =>
        recordRefund(store, { requestId: 'refund-1', originalRequestId: 'sale-1', amount: 10_001, operator: 'bob', reason: 'x' }),
      ),
    ).toBe('REFUND_EXCEEDS_ORIGINAL');
    recordRefund(store, { requestId: 'refund-2', originalRequestId: 'sale-1', amount: 6_000, operator: 'bob', reason: 'x' });
    expect(() =>
      recordRefund(store, { requestId: 'refund-3', originalRequestId: 'sale-1', amount: 4_001, operator: 'bob', reason: 'x' }),
    ).toThrow(/was 100\.00 CNY, of which 40\.00 CNY is left after earlier refunds; cannot refund 40\.01 CNY/);
    recordRefund(store, { requestId: 'refund-4', originalRequestId: 'sale-1', amount: 4_000, operator: 'bob', reason: 'x' });
    expect(refusal(() => recordRefund(store, { requestId: 'refund-5', originalRequestId: 'sale-1', operator: 'bob', reason: 'x' }))).toBe(
      'REFUND_EXCEEDS_ORIGINAL',
    );
    expect(
      store.ledger
        .list()
        .filter((e) => e.kind === 'refund')
        .map((e) => e.amount),
    ).toEqual([6_000, 4_000]);
  });

  it('the same refund request id returns the first refund and records nothing more', () => {
    load('sale-1', 'applied');
    const first = recordRefund(store, { requestId: 'refund-1', originalRequestId: 'sale-1', amount: 1_000, operator: 'bob', reason: 'x' });
    const again = recordRefund(store, {
      requestId: 'refund-1',
      originalRequestId: 'sale-1',
      amount: 9_000,
      operator: 'carol',
      reason: 'y',
    });
    expect(again).toEqual({ entry: first.entry, created: false });
    expect(store.ledger.list()).toHaveLength(2);
  });

  it("refuses a refund of a load that is not applied, of a refund, of an allowance, or under a load's request id", () => {
    load('rejected-1', 'rejected');
    load('open-1', 'verifying');
    load('allowance-1', 'applied', { channel: 'allowance' });
    load('sale-1', 'applied');
    recordRefund(store, { requestId: 'refund-1', originalRequestId: 'sale-1', amount: 1_000, operator: 'bob', reason: 'x' });
    const refund = (originalRequestId: string, requestId = `r-${originalRequestId}`) =>
      refusal(() => recordRefund(store, { requestId, originalRequestId, operator: 'bob', reason: 'x' }));
    expect(refund('rejected-1')).toBe('REFUND_NOT_APPLIED');
    expect(refund('open-1')).toBe('REFUND_NOT_APPLIED');
    expect(refund('refund-1')).toBe('REFUND_NOT_REFUNDABLE');
    expect(refund('allowance-1')).toBe('REFUND_NOT_REFUNDABLE');
    expect(refund('no-such-sale')).toBe('REFUND_ORIGINAL_UNKNOWN');
    expect(refund('sale-1', 'sale-1')).toBe('REFUND_REQUEST_ID_IN_USE');
    expect(
      refusal(() => recordRefund(store, { requestId: 'r', originalRequestId: 'sale-1', amount: 10.5, operator: 'bob', reason: 'x' })),
    ).toBe('REFUND_INVALID');
    expect(refusal(() => recordRefund(store, { requestId: 'r', originalRequestId: 'sale-1', operator: 'bob', reason: ' ' }))).toBe(
      'REFUND_INVALID',
    );
  });
});
