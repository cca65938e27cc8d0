import type { Connection, Tx } from './connection.js';
import { recordRefusal, type RefusalOutcome } from './dead-letters.js';
import { StoreError } from './errors.js';
import { OUTBOX_CLASSES, type OutboxClass, type OutboxMessage, type Qos } from './types.js';

export interface OutboxEntry {
  /** Relative to the gateway's topic prefix, e.g. `meters/room-101/readings`. */
  readonly topic: string;
  readonly class: OutboxClass;
  /** A JSON object; it must not carry its own `seq`. */
  readonly payload: object;
  /**
   * Name of a per-gateway counter (e.g. `'readings'`). The next value goes into `payload.seq`, so the station can see
   * a gap (dropped telemetry) or a repeat (redelivery). Not allowed on `state`, whose superseded messages would look
   * like losses.
   */
  readonly seqStream?: string;
  /** Default 1. */
  readonly qos?: Qos;
  /** Default true for `state`, false otherwise. */
  readonly retain?: boolean;
  /**
   * Replies only: the MQTT 5 response topic the request named, absolute (it need not be under the gateway's prefix).
   * The drain publishes there instead of `topic`, which stays the relative default (`cmd/<command>/result`).
   */
  readonly responseTopic?: string;
  /** Replies only, with `responseTopic`: the request's MQTT 5 correlation data, echoed in the reply. */
  readonly correlationData?: Buffer;
}

/** An outbox row as the drain publishes it: a reply may carry where the request asked for it (MQTT 5). */
export interface OutboxDelivery extends OutboxMessage {
  /** Absolute topic to publish to instead of the relative `topic`. */
  readonly responseTopic?: string;
  /** MQTT 5 correlation data to publish with. */
  readonly correlationData?: Buffer;
}

export interface Enqueued {
  readonly id: number;
  /** The value put in `payload.seq`, or null without a `seqStream`. */
  readonly seq: number | null;
  /** Undelivered older `state` messages for the same topic that this one replaced. */
  readonly superseded: number;
}

export interface PeekOptions {
  readonly limit: number;
  /** Ids already in flight (published, waiting for PUBACK), so the same message is not handed out twice. */
  readonly excludeIds?: readonly number[];
  /** Relative topics whose messages wait (a message of the topic was refused and waits to go again). */
  readonly excludeTopics?: readonly string[];
  /** Response topics whose replies wait, likewise. */
  readonly excludeResponseTopics?: readonly string[];
}

export interface OutboxCounts {
  readonly byClass: Readonly<Record<OutboxClass, number>>;
  readonly total: number;
  /** Sum of payload bytes. */
  readonly bytes: number;
  /** created_at of the oldest message (backlog age), or null when empty. */
  readonly oldestCreatedAt: number | null;
}

interface MessageRow {
  id: number;
  topic: string;
  class: OutboxClass;
  qos: Qos;
  retain: 0 | 1;
  payload: string;
  created_at: number;
  bytes: number;
  response_topic: string | null;
  correlation_data: Buffer | null;
}

const NEXT_SEQ = 'INSERT INTO sequences (stream, value) VALUES (?, 1) ON CONFLICT (stream) DO UPDATE SET value = value + 1 RETURNING value';
const SUPERSEDE_STATE = "DELETE FROM outbox WHERE class = 'state' AND topic = ?";
const INSERT =
  'INSERT INTO outbox (topic, class, qos, retain, payload, created_at, bytes, response_topic, correlation_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id';
const COLUMNS = 'id, topic, class, qos, retain, payload, created_at, bytes, response_topic, correlation_data';

/**
 * Queues a message for the uplink in the caller's transaction: it exists exactly when the state that produced it does.
 *
 * ```ts
 * store.transaction((tx) => {
 *   insertReadings(tx, [reading]);
 *   enqueue(tx, { topic: `meters/${reading.meterId}/readings`, class: 'telemetry', payload: reading, seqStream: 'readings' });
 * });
 * ```
 */
export function enqueue(tx: Tx, entry: OutboxEntry): Enqueued {
  const connection = tx.connection;
  if (Array.isArray(entry.payload)) {
    throw new StoreError('STORE_INVALID_VALUE', `payload for ${entry.topic} is an array; wrap it in an object`);
  }
  let seq: number | null = null;
  let payload: object = entry.payload;
  if (entry.seqStream !== undefined) {
    if (entry.class === 'state') {
      throw new StoreError(
        'STORE_INVALID_VALUE',
        `state message for ${entry.topic} has seqStream '${entry.seqStream}'; state is superseded, which would show the station false gaps`,
      );
    }
    if ('seq' in payload) {
      throw new StoreError(
        'STORE_INVALID_VALUE',
        `payload for ${entry.topic} already has a seq; the store assigns it from '${entry.seqStream}'`,
      );
    }
    // Same transaction as the message: a rollback takes the number back, so the stream has no gaps and no repeats.
    seq = connection.statement<[string], number>(NEXT_SEQ).pluck().get(entry.seqStream) ?? null;
    if (seq === null) throw new Error('INSERT … RETURNING value returned no row');
    // Before the commit: a number the station may receive is covered by the high-water mark outside the WAL.
    connection.seqGuard.cover(entry.seqStream, seq);
    payload = { seq, ...payload };
  }
  checkReplyRoute(entry);
  let superseded = 0;
  if (entry.class === 'state') {
    superseded = connection.statement<[string]>(SUPERSEDE_STATE).run(entry.topic).changes;
  }
  const json = JSON.stringify(payload);
  const retain = entry.retain ?? entry.class === 'state';
  const id = connection
    .statement<[string, OutboxClass, Qos, 0 | 1, string, number, number, string | null, Buffer | null], number>(INSERT)
    .pluck()
    .get(
      entry.topic,
      entry.class,
      entry.qos ?? 1,
      retain ? 1 : 0,
      json,
      connection.clock.now(),
      Buffer.byteLength(json),
      entry.responseTopic ?? null,
      entry.correlationData ?? null,
    );
  if (id === undefined) throw new Error('INSERT … RETURNING id returned no row');
  return { id, seq, superseded };
}

/** The uplink's side of the outbox: read the oldest messages, delete each after its PUBACK. */
export class OutboxQueue {
  constructor(private readonly connection: Connection) {}

  /** The oldest messages (by id, which is enqueue order), skipping those in flight and those of waiting topics. */
  peek(options: PeekOptions): OutboxDelivery[] {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new TypeError('limit is not a positive integer');
    const ids = options.excludeIds ?? [];
    const topics = options.excludeTopics ?? [];
    const responseTopics = options.excludeResponseTopics ?? [];
    let rows: MessageRow[];
    if (topics.length === 0 && responseTopics.length === 0) {
      rows =
        ids.length === 0
          ? this.connection.statement<[number], MessageRow>(`SELECT ${COLUMNS} FROM outbox ORDER BY id LIMIT ?`).all(options.limit)
          : this.connection
              .statement<[string, number], MessageRow>(
                `SELECT ${COLUMNS} FROM outbox WHERE id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?`,
              )
              .all(JSON.stringify(ids), options.limit);
    } else {
      rows = this.connection
        .statement<[string, string, string, number], MessageRow>(
          `SELECT ${COLUMNS} FROM outbox WHERE id NOT IN (SELECT value FROM json_each(?))
             AND NOT (response_topic IS NULL AND topic IN (SELECT value FROM json_each(?)))
             AND NOT (response_topic IS NOT NULL AND response_topic IN (SELECT value FROM json_each(?)))
           ORDER BY id LIMIT ?`,
        )
        .all(JSON.stringify(ids), JSON.stringify(topics), JSON.stringify(responseTopics), options.limit);
    }
    return rows.map(toMessage);
  }

  /** One message by id, or undefined when it is gone (acknowledged, superseded, pruned, dead-lettered). */
  find(id: number): OutboxDelivery | undefined {
    const row = this.connection.statement<[number], MessageRow>(`SELECT ${COLUMNS} FROM outbox WHERE id = ?`).get(id);
    return row === undefined ? undefined : toMessage(row);
  }

  /**
   * The broker refused message `id` (`reason` says how): counts the refusal and, at the `deadAfter`-th (at once when
   * `permanent`), moves the message to the dead letters in the same commit. Undefined when the message is gone.
   */
  refused(id: number, reason: string, options: { readonly deadAfter: number; readonly permanent?: boolean }): RefusalOutcome | undefined {
    if (!Number.isSafeInteger(options.deadAfter) || options.deadAfter < 1) throw new TypeError('deadAfter is not a positive integer');
    return recordRefusal(this.connection, id, reason, options);
  }

  /**
   * Deletes a delivered message. Returns false when it was already gone (acknowledged before, superseded by a newer
   * state, or pruned by the disk cap), which is not an error.
   */
  ack(id: number): boolean {
    return this.connection.statement<[number]>('DELETE FROM outbox WHERE id = ?').run(id).changes === 1;
  }

  /** `ack` for several messages in one commit; returns how many were still there. */
  ackMany(ids: readonly number[]): number {
    if (ids.length === 0) return 0;
    return this.connection.statement<[string]>('DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))').run(JSON.stringify(ids))
      .changes;
  }

  counts(): OutboxCounts {
    const byClass = Object.fromEntries(OUTBOX_CLASSES.map((name) => [name, 0])) as Record<OutboxClass, number>;
    let total = 0;
    let bytes = 0;
    const rows = this.connection
      .statement<[], { class: OutboxClass; n: number; bytes: number }>(
        'SELECT class, count(*) AS n, sum(bytes) AS bytes FROM outbox GROUP BY class',
      )
      .all();
    for (const row of rows) {
      byClass[row.class] = row.n;
      total += row.n;
      bytes += row.bytes;
    }
    const oldestCreatedAt =
      this.connection.statement<[], number>('SELECT created_at FROM outbox ORDER BY id LIMIT 1').pluck().get() ?? null;
    return { byClass, total, bytes, oldestCreatedAt };
  }
}

function toMessage(row: MessageRow): OutboxDelivery {
  const message: OutboxMessage = {
    id: row.id,
    topic: row.topic,
    class: row.class,
    qos: row.qos,
    retain: row.retain === 1,
    payload: row.payload,
    createdAt: row.created_at,
    bytes: row.bytes,
  };
  if (row.response_topic === null) return message;
  return row.correlation_data === null
    ? { ...message, responseTopic: row.response_topic }
    : { ...message, responseTopic: row.response_topic, correlationData: row.correlation_data };
}

/** MQTT caps a topic at 65,535 bytes of UTF-8. */
const MAX_TOPIC_BYTES = 65_535;

/** A response topic is published to as is: it must be a topic (no wildcards), and only replies may have one. */
function checkReplyRoute(entry: OutboxEntry): void {
  if (entry.correlationData !== undefined && entry.responseTopic === undefined) {
    throw new StoreError('STORE_INVALID_VALUE', `message for ${entry.topic} has correlationData without a responseTopic to send it to`);
  }
  const topic = entry.responseTopic;
  if (topic === undefined) return;
  if (entry.class !== 'reply') {
    throw new StoreError(
      'STORE_INVALID_VALUE',
      `${entry.class} message for ${entry.topic} has a responseTopic; only replies are routed by the request`,
    );
  }
  if (topic.length === 0 || /[+#]/.test(topic) || topic.includes('\0') || Buffer.byteLength(topic) > MAX_TOPIC_BYTES) {
    throw new StoreError(
      'STORE_INVALID_VALUE',
      `response topic "${topic.slice(0, 80)}" is not a topic one can publish to (empty, over 65,535 bytes, or holding +, # or NUL)`,
    );
  }
}
