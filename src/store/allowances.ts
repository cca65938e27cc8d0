import type { Tx } from './connection.js';
import { StoreError } from './errors.js';

// The allowance plan: one row per (allowance, term, round, meter), written before any meter is touched, so a round
// planned twice, run twice or cut by a crash never gives a room its allowance twice (docs/allowances.md).

export type AllowanceRowState = 'planned' | 'pending' | 'applied' | 'needs-attention' | 'expired' | 'cancelled';

export const ALLOWANCE_ROW_STATES: readonly AllowanceRowState[] = [
  'planned',
  'pending',
  'applied',
  'needs-attention',
  'expired',
  'cancelled',
];

/** Rows a batch still has to work on; a round is complete when it has none. */
export const OPEN_ALLOWANCE_STATES: readonly AllowanceRowState[] = ['planned', 'pending'];

export interface AllowanceRoundKey {
  readonly allowance: string;
  readonly term: string;
  readonly round: string;
}

export interface AllowanceRound extends AllowanceRoundKey {
  /** When the round was due (its date at its local time), epoch ms. */
  readonly dueAt: number;
  readonly deadlineAt: number;
  readonly plannedAt: number;
  /** True when it was first seen after its deadline: planned as expired, nothing loaded unless forced. */
  readonly lateOnPlan: boolean;
  readonly completedAt: number | null;
}

export interface AllowanceRow extends AllowanceRoundKey {
  readonly id: number;
  readonly meterId: string;
  readonly busId: string;
  /** The meter's identity when the plan was made: a meter replaced since is parked, not loaded. */
  readonly address: string | null;
  readonly customerNo: string | null;
  readonly unit: 'money' | 'energy';
  /** Fen or 0.01 kWh, as the config said when the plan was made. */
  readonly amount: number;
  readonly state: AllowanceRowState;
  /** Which load of the ledger this row is on: a new attempt only after the previous one ended without loading. */
  readonly attempt: number;
  /** Tries since the row last moved forward (the backoff doubles with it). */
  readonly tries: number;
  readonly nextAttemptAt: number | null;
  readonly deadlineAt: number;
  readonly reasonCode: string | null;
  readonly reason: string | null;
  readonly createdBy: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finalAt: number | null;
}

export interface NewAllowanceRow {
  readonly meterId: string;
  readonly busId: string;
  readonly address?: string;
  readonly customerNo?: string;
  readonly unit: 'money' | 'energy';
  readonly amount: number;
}

export interface AllowanceRowPatch {
  readonly attempt?: number;
  readonly tries?: number;
  readonly nextAttemptAt?: number | null;
  readonly deadlineAt?: number;
  readonly reasonCode?: string | null;
  readonly reason?: string | null;
}

export type AllowanceCounts = Record<AllowanceRowState, number>;

/** The moves a row may make; anything else is a bug, refused rather than recorded. */
const ALLOWED: Readonly<Record<AllowanceRowState, readonly AllowanceRowState[]>> = {
  planned: ['pending', 'applied', 'needs-attention', 'expired', 'cancelled'],
  pending: ['pending', 'applied', 'needs-attention', 'expired', 'cancelled'],
  // A person's decision reopens a parked or expired row (retry, carry-over) or closes it (cancel).
  'needs-attention': ['pending', 'cancelled', 'needs-attention'],
  expired: ['pending', 'cancelled'],
  applied: [],
  cancelled: [],
};

const FINAL: readonly AllowanceRowState[] = ['applied', 'cancelled'];

interface RowRow {
  id: number;
  allowance: string;
  term: string;
  round: string;
  meter_id: string;
  bus_id: string;
  address: string | null;
  customer_no: string | null;
  unit: 'money' | 'energy';
  amount: number;
  state: AllowanceRowState;
  attempt: number;
  tries: number;
  next_attempt_at: number | null;
  deadline_at: number;
  reason_code: string | null;
  reason: string | null;
  created_by: string;
  created_at: number;
  updated_at: number;
  final_at: number | null;
}

interface RoundRow {
  allowance: string;
  term: string;
  round: string;
  due_at: number;
  deadline_at: number;
  planned_at: number;
  late_on_plan: number;
  completed_at: number | null;
}

/** The round's record, or null when it was never planned. */
export function allowanceRound(tx: Tx, key: AllowanceRoundKey): AllowanceRound | null {
  const r = tx.connection
    .statement<[string, string, string], RoundRow>('SELECT * FROM allowance_rounds WHERE allowance = ? AND term = ? AND round = ?')
    .get(key.allowance, key.term, key.round);
  return r ? toRound(r) : null;
}

export function allowanceRounds(tx: Tx, allowance?: string): AllowanceRound[] {
  return tx.connection
    .statement<[string | null, string | null], RoundRow>(
      'SELECT * FROM allowance_rounds WHERE (? IS NULL OR allowance = ?) ORDER BY due_at, allowance, term, round',
    )
    .all(allowance ?? null, allowance ?? null)
    .map(toRound);
}

/**
 * Writes a round's plan: its record and one row per meter, each under its unique key. A round planned before is left
 * as it is (`created: false`), whatever the meters now are: a meter added since is not in that round.
 */
export function planAllowanceRound(
  tx: Tx,
  round: AllowanceRoundKey & { dueAt: number; deadlineAt: number; lateOnPlan: boolean; createdBy: string },
  rows: readonly NewAllowanceRow[],
): { created: boolean; rows: number } {
  const c = tx.connection;
  const now = c.clock.now();
  const inserted = c
    .statement(
      `INSERT OR IGNORE INTO allowance_rounds (allowance, term, round, due_at, deadline_at, planned_at, late_on_plan)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(round.allowance, round.term, round.round, round.dueAt, round.deadlineAt, now, round.lateOnPlan ? 1 : 0).changes;
  if (inserted === 0) return { created: false, rows: countRows(tx, round) };
  const state: AllowanceRowState = round.lateOnPlan ? 'expired' : 'planned';
  const insert = c.statement(
    `INSERT OR IGNORE INTO allowance_rows (allowance, term, round, meter_id, bus_id, address, customer_no, unit, amount, state,
       attempt, deadline_at, reason_code, reason, created_by, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)`,
  );
  const event = c.statement('INSERT INTO allowance_events (row_id, at, state, detail) VALUES (?, ?, ?, ?)');
  const lateReason = round.lateOnPlan ? 'the round was first seen after its deadline; nothing is loaded unless a person forces it' : null;
  for (const r of rows) {
    if (!Number.isSafeInteger(r.amount) || r.amount <= 0)
      throw new StoreError('STORE_INVALID_VALUE', `allowance amount must be a whole positive number of ledger units, got ${r.amount}`);
    const info = insert.run(
      round.allowance,
      round.term,
      round.round,
      r.meterId,
      r.busId,
      r.address ?? null,
      r.customerNo ?? null,
      r.unit,
      r.amount,
      state,
      round.deadlineAt,
      round.lateOnPlan ? 'LATE' : null,
      lateReason,
      round.createdBy,
      now,
      now,
    );
    if (info.changes > 0) event.run(Number(info.lastInsertRowid), now, state, `planned by ${round.createdBy}`);
  }
  applyCarries(tx, round, state);
  return { created: true, rows: countRows(tx, round) };
}

/**
 * Carries a row's allowance over to the meter's row of a later round: added to that row now when it is planned and
 * not yet loaded, else kept until that round is planned. The caller has checked the later row has not started.
 */
export function carryAllowanceRow(tx: Tx, from: AllowanceRow, into: AllowanceRoundKey): void {
  const c = tx.connection;
  c.statement(
    `INSERT INTO allowance_carry (allowance, term, round, meter_id, from_row_id, amount, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ).run(into.allowance, into.term, into.round, from.meterId, from.id, from.amount, c.clock.now());
  if (allowanceRound(tx, into) !== null) applyCarries(tx, into, 'planned');
}

/** Carries into a planned round: added to the meter's row, or a row of their own made from the original snapshot. */
function applyCarries(tx: Tx, round: AllowanceRoundKey, state: AllowanceRowState): void {
  const c = tx.connection;
  const now = c.clock.now();
  const carries = c
    .statement<[string, string, string], { rowid: number; meter_id: string; from_row_id: number; amount: number }>(
      'SELECT rowid, meter_id, from_row_id, amount FROM allowance_carry WHERE allowance = ? AND term = ? AND round = ? AND applied = 0',
    )
    .all(round.allowance, round.term, round.round);
  for (const carry of carries) {
    const from = rowById(tx, carry.from_row_id)!;
    const there = allowanceRow(tx, round, carry.meter_id);
    if (there) {
      c.statement('UPDATE allowance_rows SET amount = amount + ?, updated_at = ? WHERE id = ?').run(carry.amount, now, there.id);
      c.statement('INSERT INTO allowance_events (row_id, at, state, detail) VALUES (?, ?, ?, ?)').run(
        there.id,
        now,
        there.state,
        `+${carry.amount} carried over from ${from.term}/${from.round}`,
      );
    } else {
      const round0 = allowanceRound(tx, round)!;
      const info = c
        .statement(
          `INSERT INTO allowance_rows (allowance, term, round, meter_id, bus_id, address, customer_no, unit, amount, state,
             attempt, deadline_at, created_by, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
        )
        .run(
          round.allowance,
          round.term,
          round.round,
          carry.meter_id,
          from.busId,
          from.address,
          from.customerNo,
          from.unit,
          carry.amount,
          state,
          round0.deadlineAt,
          `carry-over from ${from.term}/${from.round}`,
          now,
          now,
        );
      c.statement('INSERT INTO allowance_events (row_id, at, state, detail) VALUES (?, ?, ?, ?)').run(
        Number(info.lastInsertRowid),
        now,
        state,
        `carried over from ${from.term}/${from.round}`,
      );
    }
    c.statement('UPDATE allowance_carry SET applied = 1 WHERE rowid = ?').run(carry.rowid);
  }
}

/** A person retried a parked row: the meter as the config describes it now is the one to load. */
export function refreshAllowanceIdentity(tx: Tx, id: number, address: string | null, customerNo: string | null): void {
  tx.connection.statement('UPDATE allowance_rows SET address = ?, customer_no = ? WHERE id = ?').run(address, customerNo, id);
}

/** A replaced meter: the point's rows not applied yet (planned, pending) name the new meter's address from now on. */
export function retargetAllowanceRows(tx: Tx, meterId: string, address: string): number {
  return tx.connection
    .statement("UPDATE allowance_rows SET address = ? WHERE meter_id = ? AND state IN ('planned', 'pending')")
    .run(address, meterId).changes;
}

/** Moves a row, with an audit event; refuses a move its state does not allow. */
export function moveAllowanceRow(
  tx: Tx,
  id: number,
  state: AllowanceRowState,
  patch: AllowanceRowPatch = {},
  detail?: string,
): AllowanceRow {
  const c = tx.connection;
  const current = rowById(tx, id);
  if (!current) throw new StoreError('STORE_INVALID_VALUE', `no allowance row ${id}`);
  if (!ALLOWED[current.state].includes(state))
    throw new StoreError('STORE_INVALID_VALUE', `allowance row ${id} (${current.meterId}) cannot go from ${current.state} to ${state}`);
  const now = c.clock.now();
  c.statement(
    `UPDATE allowance_rows SET state = ?, attempt = ?, tries = ?, next_attempt_at = ?, deadline_at = ?, reason_code = ?, reason = ?,
       updated_at = ?, final_at = ? WHERE id = ?`,
  ).run(
    state,
    patch.attempt ?? current.attempt,
    patch.tries ?? current.tries,
    patch.nextAttemptAt === undefined ? current.nextAttemptAt : patch.nextAttemptAt,
    patch.deadlineAt ?? current.deadlineAt,
    patch.reasonCode === undefined ? current.reasonCode : patch.reasonCode,
    patch.reason === undefined ? current.reason : patch.reason,
    now,
    FINAL.includes(state) ? now : null,
    id,
  );
  c.statement('INSERT INTO allowance_events (row_id, at, state, detail) VALUES (?, ?, ?, ?)').run(id, now, state, detail ?? null);
  return rowById(tx, id)!;
}

/** Marks a round complete (nothing planned or pending); once. Returns false when it already was. */
export function completeAllowanceRound(tx: Tx, key: AllowanceRoundKey): boolean {
  const c = tx.connection;
  return (
    c
      .statement('UPDATE allowance_rounds SET completed_at = ? WHERE allowance = ? AND term = ? AND round = ? AND completed_at IS NULL')
      .run(c.clock.now(), key.allowance, key.term, key.round).changes > 0
  );
}

/** A round reopened by a person (retry, force): it will complete, and report, again. */
export function reopenAllowanceRound(tx: Tx, key: AllowanceRoundKey): void {
  tx.connection
    .statement('UPDATE allowance_rounds SET completed_at = NULL WHERE allowance = ? AND term = ? AND round = ?')
    .run(key.allowance, key.term, key.round);
}

export function allowanceRowById(tx: Tx, id: number): AllowanceRow | null {
  return rowById(tx, id);
}

export function allowanceRow(tx: Tx, key: AllowanceRoundKey, meterId: string): AllowanceRow | null {
  const r = tx.connection
    .statement<[string, string, string, string], RowRow>(
      'SELECT * FROM allowance_rows WHERE allowance = ? AND term = ? AND round = ? AND meter_id = ?',
    )
    .get(key.allowance, key.term, key.round, meterId);
  return r ? toRow(r) : null;
}

export interface AllowanceRowQuery {
  readonly allowance?: string;
  readonly term?: string;
  readonly round?: string;
  readonly states?: readonly AllowanceRowState[];
  readonly busId?: string;
  readonly limit?: number;
}

export function allowanceRows(tx: Tx, q: AllowanceRowQuery = {}): AllowanceRow[] {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (q.allowance !== undefined) where.push('allowance = ?') && args.push(q.allowance);
  if (q.term !== undefined) where.push('term = ?') && args.push(q.term);
  if (q.round !== undefined) where.push('round = ?') && args.push(q.round);
  if (q.busId !== undefined) where.push('bus_id = ?') && args.push(q.busId);
  if (q.states !== undefined) {
    if (q.states.length === 0) return [];
    where.push(`state IN (${q.states.map(() => '?').join(', ')})`);
    args.push(...q.states);
  }
  const sql = `SELECT * FROM allowance_rows ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
  return tx.connection
    .statement<(string | number)[], RowRow>(sql)
    .all(...args, q.limit ?? 1_000_000)
    .map(toRow);
}

/**
 * The next row of a bus to work on: planned rows first, then pending rows whose retry time has come (all pending
 * rows when `ignoreBackoff`), oldest first. Rows of a round a person has not forced stay expired.
 */
export function nextAllowanceRow(tx: Tx, busId: string, now: number, skip: ReadonlySet<number> = new Set()): AllowanceRow | null {
  const rows = tx.connection
    .statement<[string, number, number], RowRow>(
      `SELECT * FROM allowance_rows WHERE bus_id = ? AND (state = 'planned' OR (state = 'pending' AND coalesce(next_attempt_at, 0) <= ?))
       ORDER BY CASE state WHEN 'planned' THEN 0 ELSE 1 END, coalesce(next_attempt_at, 0), id LIMIT ?`,
    )
    .all(busId, now, skip.size + 1);
  const r = rows.find((row) => !skip.has(row.id));
  return r ? toRow(r) : null;
}

/** The earliest retry time of a bus's pending rows, or null when it has none. */
export function nextAllowanceRetryAt(tx: Tx, busId: string): number | null {
  const r = tx.connection
    .statement<[string], { at: number | null }>(
      "SELECT min(coalesce(next_attempt_at, 0)) AS at FROM allowance_rows WHERE bus_id = ? AND state IN ('planned', 'pending')",
    )
    .get(busId);
  return r?.at ?? null;
}

/** Rows per state of one round. */
export function allowanceCounts(tx: Tx, key: AllowanceRoundKey): AllowanceCounts {
  const counts = Object.fromEntries(ALLOWANCE_ROW_STATES.map((s) => [s, 0])) as AllowanceCounts;
  const rows = tx.connection
    .statement<[string, string, string], { state: AllowanceRowState; n: number }>(
      'SELECT state, count(*) AS n FROM allowance_rows WHERE allowance = ? AND term = ? AND round = ? GROUP BY state',
    )
    .all(key.allowance, key.term, key.round);
  for (const r of rows) counts[r.state] = r.n;
  return counts;
}

/** Rounds that still have planned or pending rows. */
export function openAllowanceRounds(tx: Tx): AllowanceRoundKey[] {
  return tx.connection
    .statement<[], AllowanceRoundKey>(
      "SELECT DISTINCT allowance, term, round FROM allowance_rows WHERE state IN ('planned', 'pending') ORDER BY allowance, term, round",
    )
    .all();
}

/** Pending rows whose deadline has passed. */
export function overdueAllowanceRows(tx: Tx, now: number): AllowanceRow[] {
  return tx.connection
    .statement<[number], RowRow>("SELECT * FROM allowance_rows WHERE state IN ('planned', 'pending') AND deadline_at <= ? ORDER BY id")
    .all(now)
    .map(toRow);
}

/** The audit trail of a row, oldest first. */
export function allowanceEvents(tx: Tx, rowId: number): { at: number; state: AllowanceRowState; detail: string | null }[] {
  return tx.connection
    .statement<[number], { at: number; state: AllowanceRowState; detail: string | null }>(
      'SELECT at, state, detail FROM allowance_events WHERE row_id = ? ORDER BY id',
    )
    .all(rowId);
}

function countRows(tx: Tx, key: AllowanceRoundKey): number {
  return tx.connection
    .statement<[string, string, string], { n: number }>(
      'SELECT count(*) AS n FROM allowance_rows WHERE allowance = ? AND term = ? AND round = ?',
    )
    .get(key.allowance, key.term, key.round)!.n;
}

function rowById(tx: Tx, id: number): AllowanceRow | null {
  const r = tx.connection.statement<[number], RowRow>('SELECT * FROM allowance_rows WHERE id = ?').get(id);
  return r ? toRow(r) : null;
}

function toRound(r: RoundRow): AllowanceRound {
  return {
    allowance: r.allowance,
    term: r.term,
    round: r.round,
    dueAt: r.due_at,
    deadlineAt: r.deadline_at,
    plannedAt: r.planned_at,
    lateOnPlan: r.late_on_plan === 1,
    completedAt: r.completed_at,
  };
}

function toRow(r: RowRow): AllowanceRow {
  return {
    id: r.id,
    allowance: r.allowance,
    term: r.term,
    round: r.round,
    meterId: r.meter_id,
    busId: r.bus_id,
    address: r.address,
    customerNo: r.customer_no,
    unit: r.unit,
    amount: r.amount,
    state: r.state,
    attempt: r.attempt,
    tries: r.tries,
    nextAttemptAt: r.next_attempt_at,
    deadlineAt: r.deadline_at,
    reasonCode: r.reason_code,
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finalAt: r.final_at,
  };
}
