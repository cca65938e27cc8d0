import type { Connection, Tx } from './connection.js';
import type { MeterBalance, MeterState, RelayState } from './types.js';

/** Fields to change; those left out keep their stored value (or their default for a meter seen the first time). */
export type MeterStatePatch = Partial<Omit<MeterState, 'meterId' | 'updatedAt'>>;

interface MeterStateRow {
  meter_id: string;
  online: 0 | 1;
  consecutive_failures: number;
  last_good_read_at: number | null;
  last_attempt_at: number | null;
  relay_state: RelayState | null;
  balance_json: string | null;
  updated_at: number;
}

const SELECT = 'SELECT * FROM meter_state';
const UPSERT = `INSERT INTO meter_state
  (meter_id, online, consecutive_failures, last_good_read_at, last_attempt_at, relay_state, balance_json, updated_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (meter_id) DO UPDATE SET
    online = excluded.online,
    consecutive_failures = excluded.consecutive_failures,
    last_good_read_at = excluded.last_good_read_at,
    last_attempt_at = excluded.last_attempt_at,
    relay_state = excluded.relay_state,
    balance_json = excluded.balance_json,
    updated_at = excluded.updated_at`;

/** Records what is now known about a meter, in the same transaction as the reading or command result that taught it. */
export function upsertMeterState(tx: Tx, meterId: string, patch: MeterStatePatch): MeterState {
  const connection = tx.connection;
  const before = getMeterState(connection, meterId);
  const next: MeterState = {
    meterId,
    online: patch.online ?? before?.online ?? false,
    consecutiveFailures: patch.consecutiveFailures ?? before?.consecutiveFailures ?? 0,
    lastGoodReadAt: pick(patch, 'lastGoodReadAt', before),
    lastAttemptAt: pick(patch, 'lastAttemptAt', before),
    relayState: pick(patch, 'relayState', before),
    balance: pick(patch, 'balance', before),
    updatedAt: connection.clock.now(),
  };
  connection
    .statement<[string, 0 | 1, number, number | null, number | null, RelayState | null, string | null, number]>(UPSERT)
    .run(
      next.meterId,
      next.online ? 1 : 0,
      next.consecutiveFailures,
      next.lastGoodReadAt,
      next.lastAttemptAt,
      next.relayState,
      next.balance === null ? null : JSON.stringify(next.balance),
      next.updatedAt,
    );
  return next;
}

/** The last known state of each meter. */
export class MeterStates {
  constructor(private readonly connection: Connection) {}

  get(meterId: string): MeterState | null {
    return getMeterState(this.connection, meterId);
  }

  /** All meters, by id. */
  list(): MeterState[] {
    return this.connection.statement<[], MeterStateRow>(`${SELECT} ORDER BY meter_id`).all().map(toMeterState);
  }
}

function getMeterState(connection: Connection, meterId: string): MeterState | null {
  const row = connection.statement<[string], MeterStateRow>(`${SELECT} WHERE meter_id = ?`).get(meterId);
  return row === undefined ? null : toMeterState(row);
}

/** A nullable field: an explicit null in the patch clears it, an absent key keeps it. */
function pick<K extends 'lastGoodReadAt' | 'lastAttemptAt' | 'relayState' | 'balance'>(
  patch: MeterStatePatch,
  key: K,
  before: MeterState | null,
): MeterState[K] | null {
  const value = patch[key];
  if (value !== undefined) return value as MeterState[K];
  return before?.[key] ?? null;
}

function toMeterState(row: MeterStateRow): MeterState {
  return {
    meterId: row.meter_id,
    online: row.online === 1,
    consecutiveFailures: row.consecutive_failures,
    lastGoodReadAt: row.last_good_read_at,
    lastAttemptAt: row.last_attempt_at,
    relayState: row.relay_state,
    balance: row.balance_json === null ? null : (JSON.parse(row.balance_json) as MeterBalance),
    updatedAt: row.updated_at,
  };
}
