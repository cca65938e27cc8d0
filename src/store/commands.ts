import type { Connection, Tx } from './connection.js';
import { StoreError } from './errors.js';

const DAY_MS = 86_400_000;

/**
 * How long a finished command's record must stay at least, so that a request seen again is answered from it and never
 * runs twice: the broker keeps QoS 1 commands for an offline gateway up to a day (MQTT 5 session expiry), a signed
 * request is valid ±5 minutes around its `ts`, and a station retries for a while. No prune ever reaches inside it,
 * whatever `commands.keepFor` says.
 */
export const COMMAND_REPLAY_WINDOW_MS = 2 * DAY_MS;

/** `accepted` while the handler runs (or until a restart resumes it); the other three are final. */
export const COMMAND_STATUSES = ['accepted', 'done', 'rejected', 'failed'] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

/** A station command as the gateway recorded it, keyed by the station's request id. */
export interface CommandRecord {
  readonly requestId: string;
  /** `topup`, `relay`, `read`, `time-sync`. */
  readonly command: string;
  /** The meter it addresses, `all`, or null for a command without one. */
  readonly meterId: string | null;
  readonly status: CommandStatus;
  /** The validated request, canonical JSON without `signature` and `ts`: what a duplicate must equal. */
  readonly requestJson: string;
  readonly result: Readonly<Record<string, unknown>> | null;
  readonly error: { readonly code: string; readonly message: string } | null;
  /** Where the first request asked for its replies (MQTT 5); null for `cmd/<command>/result`. */
  readonly responseTopic: string | null;
  readonly correlationData: Buffer | null;
  /** `mqtt` for the station's requests; `socket` for the local CLI's, whose replies never go to the broker. */
  readonly origin: CommandOrigin;
  /** Who sent it through the control socket (the OS user or `--operator`); null for MQTT requests. */
  readonly operator: string | null;
  /** Epoch ms. */
  readonly receivedAt: number;
  /** Epoch ms when it became final; null while accepted. */
  readonly finishedAt: number | null;
}

export type CommandOrigin = 'mqtt' | 'socket';

export interface NewCommandRecord {
  readonly requestId: string;
  readonly command: string;
  readonly meterId: string | null;
  readonly requestJson: string;
  readonly responseTopic?: string;
  readonly correlationData?: Buffer;
  /** Default `mqtt`. */
  readonly origin?: CommandOrigin;
  readonly operator?: string;
  readonly receivedAt: number;
}

export type CommandFinish =
  | { readonly status: 'done'; readonly result: Readonly<Record<string, unknown>> }
  | {
      readonly status: 'failed' | 'rejected';
      readonly error: { readonly code: string; readonly message: string };
      readonly result?: Readonly<Record<string, unknown>>;
    };

export interface CommandQuery {
  readonly meterId?: string;
  /** Epoch ms, inclusive. */
  readonly since?: number;
  readonly limit?: number;
}

interface CommandRow {
  request_id: string;
  command: string;
  meter_id: string | null;
  status: CommandStatus;
  request_json: string;
  result_json: string | null;
  error_code: string | null;
  error_message: string | null;
  response_topic: string | null;
  correlation_data: Buffer | null;
  origin: CommandOrigin;
  operator: string | null;
  received_at: number;
  finished_at: number | null;
}

/**
 * Records a command that passed validation, as `accepted`. A request id seen before is not overwritten: the first
 * record comes back with `created: false`, so the caller answers the duplicate from it and runs nothing.
 *
 * ```ts
 * const { record, created } = store.transaction((tx) => {
 *   const r = recordAcceptedCommand(tx, { requestId, command: 'topup', meterId, requestJson, receivedAt: clock.now() });
 *   if (r.created) enqueue(tx, { topic: 'cmd/topup/result', class: 'reply', payload: { requestId, status: 'accepted' } });
 *   return r;
 * }, { durable: true });
 * ```
 */
export function recordAcceptedCommand(tx: Tx, input: NewCommandRecord): { record: CommandRecord; created: boolean } {
  const c = tx.connection;
  if (input.requestId.length === 0) throw new StoreError('STORE_INVALID_VALUE', 'a command needs a non-empty request id');
  if (input.correlationData !== undefined && input.responseTopic === undefined) {
    throw new StoreError('STORE_INVALID_VALUE', `command ${input.requestId} has correlation data without a response topic`);
  }
  const existing = byRequestId(c, input.requestId);
  if (existing !== null) return { record: existing, created: false };
  c.statement(
    `INSERT INTO commands (request_id, command, meter_id, status, request_json, response_topic, correlation_data,
                           origin, operator, received_at)
     VALUES (?, ?, ?, 'accepted', ?, ?, ?, ?, ?, ?)`,
  ).run(
    input.requestId,
    input.command,
    input.meterId,
    input.requestJson,
    input.responseTopic ?? null,
    input.correlationData ?? null,
    input.origin ?? 'mqtt',
    input.operator ?? null,
    input.receivedAt,
  );
  return { record: byRequestId(c, input.requestId)!, created: true };
}

/** Makes an accepted command final with its outcome. Refuses a command that is unknown or already final. */
export function finishCommand(tx: Tx, requestId: string, outcome: CommandFinish): CommandRecord {
  const c = tx.connection;
  const current = byRequestId(c, requestId);
  if (current === null) throw new StoreError('STORE_INVALID_VALUE', `no command with request id ${requestId}`);
  if (current.status !== 'accepted') {
    throw new StoreError('STORE_INVALID_VALUE', `command ${requestId} is already ${current.status}; a final outcome is never replaced`);
  }
  const result = outcome.result === undefined ? null : JSON.stringify(outcome.result);
  const error = outcome.status === 'done' ? null : outcome.error;
  c.statement(
    'UPDATE commands SET status = ?, result_json = ?, error_code = ?, error_message = ?, finished_at = ? WHERE request_id = ?',
  ).run(outcome.status, result, error?.code ?? null, error?.message ?? null, c.clock.now(), requestId);
  return byRequestId(c, requestId)!;
}

export function findCommand(tx: Tx, requestId: string): CommandRecord | null {
  return byRequestId(tx.connection, requestId);
}

/** Commands still `accepted`, oldest first: what a restart resumes. */
export function openCommands(tx: Tx): CommandRecord[] {
  return tx.connection
    .statement<[], CommandRow>("SELECT * FROM commands WHERE status = 'accepted' ORDER BY received_at, rowid")
    .all()
    .map(toRecord);
}

/** Newest first. */
export function listCommands(tx: Tx, query: CommandQuery = {}): CommandRecord[] {
  return tx.connection
    .statement<[string | null, string | null, number, number], CommandRow>(
      'SELECT * FROM commands WHERE (? IS NULL OR meter_id = ?) AND received_at >= ? ORDER BY received_at DESC, rowid DESC LIMIT ?',
    )
    .all(query.meterId ?? null, query.meterId ?? null, query.since ?? 0, query.limit ?? 1_000)
    .map(toRecord);
}

function byRequestId(c: Connection, requestId: string): CommandRecord | null {
  const row = c.statement<[string], CommandRow>('SELECT * FROM commands WHERE request_id = ?').get(requestId);
  return row === undefined ? null : toRecord(row);
}

function toRecord(row: CommandRow): CommandRecord {
  return {
    requestId: row.request_id,
    command: row.command,
    meterId: row.meter_id,
    status: row.status,
    requestJson: row.request_json,
    result: row.result_json === null ? null : (JSON.parse(row.result_json) as Record<string, unknown>),
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    responseTopic: row.response_topic,
    correlationData: row.correlation_data,
    origin: row.origin,
    operator: row.operator,
    receivedAt: row.received_at,
    finishedAt: row.finished_at,
  };
}

/**
 * Deletes the records of finished commands received before `before` (epoch ms), keeping every one still inside the
 * replay window (`COMMAND_REPLAY_WINDOW_MS`, whatever `before` says), every command still `accepted` (a restart resumes
 * it), and every request whose `expiresAt` has not passed `before` (until then the station may still send it, and it
 * must be answered from the record). A request id seen again after its record went is a new request: the station keeps
 * to `commands.keepFor` or sets `expiresAt` (docs/mqtt-api.md). Returns how many went.
 */
export function pruneCommands(connection: Connection, before: number): number {
  const cutoff = Math.min(before, connection.clock.now() - COMMAND_REPLAY_WINDOW_MS);
  return connection
    .statement<[number, number]>(
      `DELETE FROM commands WHERE status <> 'accepted' AND received_at < ?
         AND coalesce(unixepoch(json_extract(request_json, '$.expiresAt'), 'subsec') * 1000, 0) < ?`,
    )
    .run(cutoff, cutoff).changes;
}

/** How many command records there are by command and status (for /metrics). */
export function commandCounts(tx: Tx): { command: string; status: CommandStatus; count: number }[] {
  return tx.connection
    .statement<[], { command: string; status: CommandStatus; count: number }>(
      'SELECT command, status, count(*) AS count FROM commands GROUP BY command, status ORDER BY command, status',
    )
    .all();
}
