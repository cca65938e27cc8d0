import type { Tx } from './connection.js';
import { StoreError } from './errors.js';

/**
 * Queries behind the cashier's books: the meters' purchase counters as the poller read them, what has been refunded of
 * a load, and which reports were published. They take a Tx so that a report reads the ledger and the readings as one
 * consistent snapshot (and a refund checks what is left inside the transaction that records it).
 *
 * ```ts
 * const report = store.transaction((tx) => {
 *   const opening = purchaseCounterBefore(tx, 'room-101', since);
 *   const day = purchaseCounterWindow(tx, 'room-101', since, until);
 *   return { opening, day };
 * });
 * ```
 */

/** One reading of a meter's purchase counter (`credit.purchase.count`). */
export interface CounterReading {
  readonly count: number;
  /** When the meter was read (epoch ms). */
  readonly at: number;
}

export interface CounterWindow {
  /** The earliest reading in the window. */
  readonly first: CounterReading;
  /** The latest reading in the window. */
  readonly last: CounterReading;
  /** The highest count read in the window (a counter only rises, unless the meter was replaced or reset). */
  readonly highest: CounterReading;
}

export type ReportKind = 'daily' | 'monthly';

// The point name has dots, so it is a quoted label in the JSON path. Only whole numbers count: a point the meter did
// not answer is stored as { error }, and has no `v`.
const COUNT = `json_extract(values_json, '$."credit.purchase.count".v')`;
const HAS_COUNT = `json_type(values_json, '$."credit.purchase.count".v') = 'integer'`;

/**
 * Which meter's readings count, for a point whose meter was replaced (docs/lifecycle.md): those taken from `notBefore`
 * on, and those of `address` (readings from before addresses were stored carry none and count).
 */
export interface CounterScope {
  readonly notBefore?: number;
  readonly address?: string;
}

const SCOPE = `taken_at >= ? AND (? IS NULL OR address IS NULL OR address = ?)`;
const scopeArgs = (s: CounterScope = {}): [number, string | null, string | null] => [
  s.notBefore ?? Number.MIN_SAFE_INTEGER,
  s.address ?? null,
  s.address ?? null,
];

/** The last purchase-counter reading of a meter strictly before `beforeMs` (within `scope`), or null if there is none. */
export function purchaseCounterBefore(tx: Tx, meterId: string, beforeMs: number, scope?: CounterScope): CounterReading | null {
  const row = tx.connection
    .statement<[string, number, number, string | null, string | null], { count: number; at: number }>(
      `SELECT ${COUNT} AS count, taken_at AS at FROM readings
       WHERE meter_id = ? AND taken_at < ? AND ${SCOPE} AND ${HAS_COUNT} ORDER BY taken_at DESC, id DESC LIMIT 1`,
    )
    .get(meterId, beforeMs, ...scopeArgs(scope));
  return row ?? null;
}

/** First, last and highest purchase-counter readings of a meter with `sinceMs <= taken_at < untilMs` (within `scope`); null if none. */
export function purchaseCounterWindow(
  tx: Tx,
  meterId: string,
  sinceMs: number,
  untilMs: number,
  scope?: CounterScope,
): CounterWindow | null {
  const c = tx.connection;
  const pick = (order: string) =>
    c
      .statement<[string, number, number, number, string | null, string | null], { count: number; at: number }>(
        `SELECT ${COUNT} AS count, taken_at AS at FROM readings
         WHERE meter_id = ? AND taken_at >= ? AND taken_at < ? AND ${SCOPE} AND ${HAS_COUNT} ORDER BY ${order} LIMIT 1`,
      )
      .get(meterId, sinceMs, untilMs, ...scopeArgs(scope));
  const first = pick('taken_at, id');
  if (first === undefined) return null;
  const last = pick('taken_at DESC, id DESC')!;
  const highest = pick('count DESC, taken_at, id')!;
  return { first, last, highest };
}

/** The sum of the refunds recorded against a ledger entry (by its id), in the entry's unit. */
export function refundedAmount(tx: Tx, originalId: number): number {
  return (
    tx.connection
      .statement<[number], number>(
        "SELECT coalesce(sum(amount), 0) FROM ledger WHERE refers_to = ? AND kind = 'refund' AND state NOT IN ('rejected', 'failed')",
      )
      .pluck()
      .get(originalId) ?? 0
  );
}

/**
 * Records that the report of a period went into the outbox (message `outboxId`). Returns false, and changes nothing,
 * when that period was published before: the caller rolls back its enqueue by throwing, or checks first.
 */
export function markReportPublished(tx: Tx, kind: ReportKind, period: string, outboxId: number): boolean {
  if (!/^\d{4}-\d{2}(-\d{2})?$/.test(period))
    throw new StoreError('STORE_INVALID_VALUE', `report period "${period}" is not YYYY-MM-DD or YYYY-MM`);
  const c = tx.connection;
  return (
    c
      .statement<[ReportKind, string, number, number]>(
        'INSERT INTO published_reports (kind, period, outbox_id, published_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      )
      .run(kind, period, outboxId, c.clock.now()).changes === 1
  );
}

/** When the report of a period was published, or null if it has not been. */
export function reportPublishedAt(tx: Tx, kind: ReportKind, period: string): number | null {
  return (
    tx.connection
      .statement<[ReportKind, string], number>('SELECT published_at FROM published_reports WHERE kind = ? AND period = ?')
      .pluck()
      .get(kind, period) ?? null
  );
}

/** The latest period published for a kind of report ('2026-11-27'), or null before the first. */
export function lastPublishedPeriod(tx: Tx, kind: ReportKind): string | null {
  return (
    tx.connection
      .statement<[ReportKind], string>('SELECT period FROM published_reports WHERE kind = ? ORDER BY period DESC LIMIT 1')
      .pluck()
      .get(kind) ?? null
  );
}
