import type { Connection, Tx } from './connection.js';

// The 停(送)电 record: notices of cuts with their approval, trip and restore (supply_notices), and every step of every
// cut and restore, plain relay commands included (supply_record, only appended to).

export type SupplyReason = 'arrears' | 'safety' | 'customer-request' | 'other';
export const SUPPLY_REASONS: readonly SupplyReason[] = ['arrears', 'safety', 'customer-request', 'other'];

/**
 * Where a notice stands: `notified` (waiting for a second person), `approved` (waiting for its time), `tripping` (the
 * trip is being sent; a restart confirms it from the meter), `cut`, `restoring` (a close queued or being sent),
 * `restored`, `cancelled`.
 */
export type SupplyNoticeState = 'notified' | 'approved' | 'tripping' | 'cut' | 'restoring' | 'restored' | 'cancelled';
export const OPEN_NOTICE_STATES: readonly SupplyNoticeState[] = ['notified', 'approved', 'tripping', 'cut', 'restoring'];

export interface SupplyNotice {
  readonly id: number;
  readonly meterId: string;
  readonly reason: SupplyReason;
  readonly requestedBy: string;
  readonly requestId: string;
  readonly note: string | null;
  readonly createdAt: number;
  readonly earliestAt: number;
  readonly state: SupplyNoticeState;
  readonly approvedBy: string | null;
  readonly approvedAt: number | null;
  readonly tripSentAt: number | null;
  readonly tripConfirmedAt: number | null;
  readonly nextTryAt: number | null;
  readonly lastError: string | null;
  readonly restoreRequestedAt: number | null;
  readonly restoredBy: string | null;
  readonly restoreReason: string | null;
  readonly restoreSentAt: number | null;
  readonly restoredAt: number | null;
  readonly cancelledAt: number | null;
  readonly cancelledBy: string | null;
  readonly updatedAt: number;
}

/**
 * A step of the record: `notice`, `approve`, `cancel`, `trip-deferred` (a protected window), `trip-sent`,
 * `trip-confirmed`, `trip-failed`, `trip-cancelled` (paid since the notice), `restore-queued`, `restore-sent`,
 * `restore-confirmed`, `restore-failed`, and a technician's plain `relay-trip` / `relay-close`.
 */
export type SupplyStep =
  | 'notice'
  | 'approve'
  | 'cancel'
  | 'trip-deferred'
  | 'trip-sent'
  | 'trip-confirmed'
  | 'trip-failed'
  | 'trip-cancelled'
  | 'restore-queued'
  | 'restore-sent'
  | 'restore-confirmed'
  | 'restore-failed'
  | 'relay-trip'
  | 'relay-close';

export interface SupplyRecordLine {
  readonly id: number;
  readonly noticeId: number | null;
  readonly meterId: string;
  readonly at: number;
  readonly step: SupplyStep;
  readonly operator: string | null;
  readonly reason: string | null;
  readonly requestId: string | null;
  readonly detail: Readonly<Record<string, unknown>> | null;
}

export interface NewSupplyNotice {
  readonly meterId: string;
  readonly reason: SupplyReason;
  readonly requestedBy: string;
  readonly requestId: string;
  readonly note?: string;
  readonly createdAt: number;
  readonly earliestAt: number;
}

/** Columns a step changes; the rest stay. */
export type SupplyNoticePatch = Partial<
  Pick<
    SupplyNotice,
    | 'state'
    | 'approvedBy'
    | 'approvedAt'
    | 'tripSentAt'
    | 'tripConfirmedAt'
    | 'nextTryAt'
    | 'lastError'
    | 'restoreRequestedAt'
    | 'restoredBy'
    | 'restoreReason'
    | 'restoreSentAt'
    | 'restoredAt'
    | 'cancelledAt'
    | 'cancelledBy'
  >
>;

interface NoticeRow {
  id: number;
  meter_id: string;
  reason: SupplyReason;
  requested_by: string;
  request_id: string;
  note: string | null;
  created_at: number;
  earliest_at: number;
  state: SupplyNoticeState;
  approved_by: string | null;
  approved_at: number | null;
  trip_sent_at: number | null;
  trip_confirmed_at: number | null;
  next_try_at: number | null;
  last_error: string | null;
  restore_requested_at: number | null;
  restored_by: string | null;
  restore_reason: string | null;
  restore_sent_at: number | null;
  restored_at: number | null;
  cancelled_at: number | null;
  cancelled_by: string | null;
  updated_at: number;
}

const COLUMN_OF: Record<keyof SupplyNoticePatch, string> = {
  state: 'state',
  approvedBy: 'approved_by',
  approvedAt: 'approved_at',
  tripSentAt: 'trip_sent_at',
  tripConfirmedAt: 'trip_confirmed_at',
  nextTryAt: 'next_try_at',
  lastError: 'last_error',
  restoreRequestedAt: 'restore_requested_at',
  restoredBy: 'restored_by',
  restoreReason: 'restore_reason',
  restoreSentAt: 'restore_sent_at',
  restoredAt: 'restored_at',
  cancelledAt: 'cancelled_at',
  cancelledBy: 'cancelled_by',
};

/** Records a new notice in state `notified`; returns it. The caller checks first that the meter has none open. */
export function insertSupplyNotice(tx: Tx, n: NewSupplyNotice): SupplyNotice {
  const c = tx.connection;
  const row = c
    .statement<[string, string, string, string, string | null, number, number, number], NoticeRow>(
      `INSERT INTO supply_notices (meter_id, reason, requested_by, request_id, note, created_at, earliest_at, state, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'notified', ?) RETURNING *`,
    )
    .get(n.meterId, n.reason, n.requestedBy, n.requestId, n.note ?? null, n.createdAt, n.earliestAt, n.createdAt)!;
  return toNotice(row);
}

/** Changes a notice; returns it as it now stands. */
export function updateSupplyNotice(tx: Tx, id: number, patch: SupplyNoticePatch): SupplyNotice {
  const c = tx.connection;
  const keys = Object.keys(patch) as (keyof SupplyNoticePatch)[];
  const sets = keys.map((k) => `${COLUMN_OF[k]} = ?`);
  const values = keys.map((k) => patch[k] ?? null);
  const row = c
    .statement<unknown[], NoticeRow>(`UPDATE supply_notices SET ${[...sets, 'updated_at = ?'].join(', ')} WHERE id = ? RETURNING *`)
    .get(...values, c.clock.now(), id)!;
  return toNotice(row);
}

/** Appends a line to the record. */
export function appendSupplyRecord(tx: Tx, line: Omit<SupplyRecordLine, 'id'>): SupplyRecordLine {
  const r = tx.connection
    .statement<[number | null, string, number, string, string | null, string | null, string | null, string | null]>(
      `INSERT INTO supply_record (notice_id, meter_id, at, step, operator, reason, request_id, detail_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      line.noticeId,
      line.meterId,
      line.at,
      line.step,
      line.operator,
      line.reason,
      line.requestId,
      line.detail === null ? null : JSON.stringify(line.detail),
    );
  return { ...line, id: Number(r.lastInsertRowid) };
}

export interface SupplyRecordQuery {
  readonly meterId?: string;
  readonly noticeId?: number;
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  readonly steps?: readonly SupplyStep[];
  readonly limit?: number;
}

/** Reads of the notices and the record (writes go through the functions above inside a transaction). */
export class SupplyBook {
  constructor(private readonly connection: Connection) {}

  notice(id: number): SupplyNotice | null {
    const row = this.connection.statement<[number], NoticeRow>('SELECT * FROM supply_notices WHERE id = ?').get(id);
    return row === undefined ? null : toNotice(row);
  }

  /** The notice a station request created (a request resumed after a restart finds its own notice). */
  noticeByRequestId(requestId: string): SupplyNotice | null {
    const row = this.connection.statement<[string], NoticeRow>('SELECT * FROM supply_notices WHERE request_id = ?').get(requestId);
    return row === undefined ? null : toNotice(row);
  }

  /** The meter's notice in progress (notified … restoring), if any. */
  openNotice(meterId: string): SupplyNotice | null {
    const row = this.connection
      .statement<[string], NoticeRow>(
        "SELECT * FROM supply_notices WHERE meter_id = ? AND state IN ('notified', 'approved', 'tripping', 'cut', 'restoring')",
      )
      .get(meterId);
    return row === undefined ? null : toNotice(row);
  }

  /** Notices in the given states, oldest first. */
  inStates(states: readonly SupplyNoticeState[]): SupplyNotice[] {
    return this.connection
      .statement<[string], NoticeRow>('SELECT * FROM supply_notices WHERE state IN (SELECT value FROM json_each(?)) ORDER BY id')
      .all(JSON.stringify(states))
      .map(toNotice);
  }

  /** Notices newest first; of one meter, or in given states, when asked. */
  list(q: { meterId?: string; states?: readonly SupplyNoticeState[]; limit?: number } = {}): SupplyNotice[] {
    return this.connection
      .statement<[string | null, string | null, string | null, string | null, number], NoticeRow>(
        `SELECT * FROM supply_notices WHERE (? IS NULL OR meter_id = ?)
           AND (? IS NULL OR state IN (SELECT value FROM json_each(?))) ORDER BY id DESC LIMIT ?`,
      )
      .all(
        q.meterId ?? null,
        q.meterId ?? null,
        q.states ? JSON.stringify(q.states) : null,
        q.states ? JSON.stringify(q.states) : null,
        q.limit ?? 1000,
      )
      .map(toNotice);
  }

  /** Lines of the record, oldest first. */
  record(q: SupplyRecordQuery = {}): SupplyRecordLine[] {
    const steps = q.steps ? JSON.stringify(q.steps) : null;
    return this.connection
      .statement<
        [string | null, string | null, number | null, number | null, number, number, string | null, string | null, number],
        {
          id: number;
          notice_id: number | null;
          meter_id: string;
          at: number;
          step: SupplyStep;
          operator: string | null;
          reason: string | null;
          request_id: string | null;
          detail_json: string | null;
        }
      >(
        `SELECT * FROM supply_record WHERE (? IS NULL OR meter_id = ?) AND (? IS NULL OR notice_id = ?)
           AND at >= ? AND at < ? AND (? IS NULL OR step IN (SELECT value FROM json_each(?))) ORDER BY id LIMIT ?`,
      )
      .all(
        q.meterId ?? null,
        q.meterId ?? null,
        q.noticeId ?? null,
        q.noticeId ?? null,
        q.since ?? 0,
        q.until ?? Number.MAX_SAFE_INTEGER,
        steps,
        steps,
        q.limit ?? 100_000,
      )
      .map((r) => ({
        id: r.id,
        noticeId: r.notice_id,
        meterId: r.meter_id,
        at: r.at,
        step: r.step,
        operator: r.operator,
        reason: r.reason,
        requestId: r.request_id,
        detail: r.detail_json === null ? null : (JSON.parse(r.detail_json) as Record<string, unknown>),
      }));
  }
}

function toNotice(r: NoticeRow): SupplyNotice {
  return {
    id: r.id,
    meterId: r.meter_id,
    reason: r.reason,
    requestedBy: r.requested_by,
    requestId: r.request_id,
    note: r.note,
    createdAt: r.created_at,
    earliestAt: r.earliest_at,
    state: r.state,
    approvedBy: r.approved_by,
    approvedAt: r.approved_at,
    tripSentAt: r.trip_sent_at,
    tripConfirmedAt: r.trip_confirmed_at,
    nextTryAt: r.next_try_at,
    lastError: r.last_error,
    restoreRequestedAt: r.restore_requested_at,
    restoredBy: r.restored_by,
    restoreReason: r.restore_reason,
    restoreSentAt: r.restore_sent_at,
    restoredAt: r.restored_at,
    cancelledAt: r.cancelled_at,
    cancelledBy: r.cancelled_by,
    updatedAt: r.updated_at,
  };
}
