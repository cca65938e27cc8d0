import type { Connection } from './connection.js';
import type { OutboxClass } from './types.js';

/** A message the broker refused for ever, as it was queued, with how often and why it was refused. */
export interface DeadLetter {
  readonly id: number;
  /** Its id in the outbox, as the drain logged it. */
  readonly outboxId: number;
  /** Relative topic, as queued. */
  readonly topic: string;
  /** The absolute MQTT 5 response topic it was to go to instead, for a reply. */
  readonly responseTopic: string | null;
  readonly class: OutboxClass;
  readonly payload: string;
  readonly bytes: number;
  /** Epoch ms, when it was queued. */
  readonly createdAt: number;
  readonly attempts: number;
  /** The broker's reason the last time it refused. */
  readonly reason: string;
  /** Epoch ms, when it left the outbox. */
  readonly deadAt: number;
}

/** What became of a refused outbox row. */
export type RefusalOutcome =
  /** Refusals so far; it stays in the outbox and goes again after a pause. */
  | { readonly dead: false; readonly attempts: number }
  /** Moved to dead_letters; `total` is how many dead letters the store now holds. */
  | { readonly dead: true; readonly attempts: number; readonly total: number };

interface DeadLetterRow {
  id: number;
  outbox_id: number;
  topic: string;
  response_topic: string | null;
  class: OutboxClass;
  payload: string;
  bytes: number;
  created_at: number;
  attempts: number;
  last_error: string;
  dead_at: number;
}

const COUNT_REFUSAL = 'UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ? RETURNING attempts';
const MOVE = `INSERT INTO dead_letters (outbox_id, topic, class, qos, retain, payload, created_at, bytes, response_topic,
  correlation_data, attempts, last_error, dead_at)
  SELECT id, topic, class, qos, retain, payload, created_at, bytes, response_topic, correlation_data, attempts, last_error, ?
  FROM outbox WHERE id = ?`;

/**
 * Counts one refusal of outbox row `id` and, once it has been refused `deadAfter` times (or at once when `permanent`),
 * moves it to `dead_letters` in the same commit. Undefined when the row is gone already (acknowledged on another
 * connection, superseded, pruned). @internal The uplink calls it through `OutboxQueue.refused`.
 */
export function recordRefusal(
  connection: Connection,
  id: number,
  reason: string,
  options: { readonly deadAfter: number; readonly permanent?: boolean },
): RefusalOutcome | undefined {
  const step = connection.db.transaction((): RefusalOutcome | undefined => {
    const attempts = connection.statement<[string, number], number>(COUNT_REFUSAL).pluck().get(reason, id);
    if (attempts === undefined) return undefined;
    if (attempts < options.deadAfter && options.permanent !== true) return { dead: false, attempts };
    connection.statement<[number, number]>(MOVE).run(connection.clock.now(), id);
    connection.statement<[number]>('DELETE FROM outbox WHERE id = ?').run(id);
    return { dead: true, attempts, total: countDeadLetters(connection) };
  });
  return step.immediate();
}

function countDeadLetters(connection: Connection): number {
  return connection.statement<[], number>('SELECT count(*) FROM dead_letters').pluck().get() ?? 0;
}

/**
 * Messages the broker refused for ever (`mqtt.deadLetterAfter` refusals). They are out of the outbox, so they hold
 * nothing up; the gateway's retained status counts them (`health.deadLetters`) until an operator deals with them.
 *
 * ```ts
 * store.deadLetters.count();                 // 1
 * store.deadLetters.list()[0]?.reason;       // 'Publish error: Not authorized (reason code 135)'
 * store.deadLetters.requeue(id);             // after fixing the broker's ACL: into the outbox again
 * ```
 */
export class DeadLetters {
  constructor(private readonly connection: Connection) {}

  count(): number {
    return countDeadLetters(this.connection);
  }

  /** Newest first. */
  list(options: { readonly limit?: number } = {}): DeadLetter[] {
    return this.connection
      .statement<[number], DeadLetterRow>(
        `SELECT id, outbox_id, topic, response_topic, class, payload, bytes, created_at, attempts, last_error, dead_at
         FROM dead_letters ORDER BY id DESC LIMIT ?`,
      )
      .all(options.limit ?? 100)
      .map((row) => ({
        id: row.id,
        outboxId: row.outbox_id,
        topic: row.topic,
        responseTopic: row.response_topic,
        class: row.class,
        payload: row.payload,
        bytes: row.bytes,
        createdAt: row.created_at,
        attempts: row.attempts,
        reason: row.last_error,
        deadAt: row.dead_at,
      }));
  }

  /**
   * Queues a dead letter again, as a new outbox row (at the end: it goes after what was queued meanwhile) with its
   * refusals reset. False when there is no such dead letter.
   */
  requeue(id: number): boolean {
    const step = this.connection.db.transaction((): boolean => {
      const moved = this.connection
        .statement<[number, number]>(
          `INSERT INTO outbox (topic, class, qos, retain, payload, created_at, bytes, response_topic, correlation_data)
           SELECT topic, class, qos, retain, payload, ?, bytes, response_topic, correlation_data FROM dead_letters WHERE id = ?`,
        )
        .run(this.connection.clock.now(), id).changes;
      this.connection.statement<[number]>('DELETE FROM dead_letters WHERE id = ?').run(id);
      return moved === 1;
    });
    return step.immediate();
  }

  /** Deletes dead letters that left the outbox before `before` (epoch ms); returns how many. */
  pruneBefore(before: number): number {
    return this.connection.statement<[number]>('DELETE FROM dead_letters WHERE dead_at < ?').run(before).changes;
  }
}
