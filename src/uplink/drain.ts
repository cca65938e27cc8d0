import { systemClock, type Clock } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import type { OutboxDelivery, OutboxQueue } from '../store/index.js';
import { ReconnectBackoff, type BackoffOptions } from './backoff.js';
import { isUplinkError, UplinkError } from './errors.js';
import type { MqttSession } from './session.js';
import { withTimeout } from './timeout.js';

export interface OutboxDrainOptions {
  /** `store.outbox`: the only copy of what is still to be sent. */
  readonly outbox: OutboxQueue;
  readonly session: MqttSession;
  /** Publishes awaiting their PUBACK at once (`config.mqtt.inflight`). Default 32. */
  readonly inflight?: number;
  /** How often to look for rows nobody notified about (e.g. written by the CLI). Default 2000 ms. */
  readonly pollIntervalMs?: number;
  /**
   * Pause before a refused message goes again (only its topic waits): the first after one refusal, doubling with each
   * further one. Default 1 s doubling to 60 s, ±20 %.
   */
  readonly retryBackoff?: BackoffOptions;
  /** Refusals after which a message moves to the dead letters (`config.mqtt.deadLetterAfter`). Default 5. */
  readonly deadLetterAfter?: number;
  /** Told after a message moved to the dead letters, with how many the store now holds (gateway health). */
  readonly onDeadLetter?: (event: DeadLetterEvent) => void;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

export interface DeadLetterEvent {
  /** The message's outbox id and relative topic (or the response topic it was to go to). */
  readonly id: number;
  readonly topic: string;
  readonly reason: string;
  /** Dead letters the store holds now. */
  readonly total: number;
}

export interface DrainError {
  readonly code: string;
  readonly message: string;
  /** Epoch ms. */
  readonly at: number;
}

export interface DrainStats {
  /** PUBLISH packets sent since start, resends included. */
  readonly published: number;
  /** PUBACKs received since start. */
  readonly acked: number;
  /** Rows in the outbox: in flight, and acknowledged but not yet deleted (a batch at most), included. */
  readonly pending: number;
  readonly inFlight: number;
  readonly connected: boolean;
  readonly lastError: DrainError | null;
  /** Messages moved to the dead letters since start. */
  readonly deadLettered: number;
  /** Topics whose messages wait for a refused one to go again. */
  readonly waitingTopics: number;
}

const DEFAULT_INFLIGHT = 32;
const DEFAULT_DEAD_LETTER_AFTER = 5;
const DEFAULT_POLL_MS = 2_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/** Rows read per outbox read, in windows. */
const READ_AHEAD_WINDOWS = 4;
/** Deleting acknowledged rows is one commit; batch them, and flush whenever the drain catches up. */
const ACK_BATCH = 256;

/** Where a row goes: its relative topic, or the absolute response topic of a reply; the unit a refusal holds back. */
type Destination = { readonly kind: 'topic' | 'response'; readonly topic: string };

interface InFlight {
  readonly generation: number;
  readonly row: OutboxDelivery;
}

/**
 * Publishes the outbox, oldest first, and deletes each row after its PUBACK: the only code that sends outbox rows.
 *
 * Up to `inflight` QoS 1 publishes are outstanding at once on one connection, so the broker receives them in id
 * order. When the connection drops, everything in flight is forgotten (the session rejects it) and, after the
 * reconnect, the drain reads the outbox again from its oldest row: unacknowledged messages go again in id order.
 * A message may arrive twice (the station de-duplicates by `seq`); none is lost or overtaken by a later one of its
 * topic that was not already in flight.
 *
 * A message the broker refuses (an MQTT 5 PUBACK reason code of 0x80 or more: not authorised, too large, …) holds
 * back only its own topic: the topic's later messages wait while it pauses (1 s, 2 s, 4 s …) and goes again, and every
 * other topic keeps flowing. After `deadLetterAfter` refusals it moves to the store's dead letters and its topic flows
 * again. MQTT 3.1.1 has no refusal: a broker that objects closes the connection (Mosquitto acknowledges and drops the
 * message instead, which nobody can see). So after a connection loss with messages in flight, the oldest of them goes
 * alone on the next connection; a loss while it is alone counts as one refusal of it, and its acknowledgement clears it.
 *
 * ```ts
 * const drain = new OutboxDrain({ outbox: store.outbox, session, inflight: config.mqtt.inflight, logger });
 * drain.start();
 * store.transaction((tx) => enqueue(tx, entry));
 * drain.notify();                 // after the commit: publish now rather than at the next poll
 * await drain.stop();             // waits (bounded) for the PUBACKs in flight
 * ```
 */
export class OutboxDrain {
  readonly #outbox: OutboxQueue;
  readonly #session: MqttSession;
  readonly #window: number;
  readonly #pollIntervalMs: number;
  readonly #retryOptions: BackoffOptions;
  readonly #deadLetterAfter: number;
  readonly #onDeadLetter: ((event: DeadLetterEvent) => void) | undefined;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** Row id → the row and the connection generation it was published on. */
  readonly #inFlight = new Map<number, InFlight>();
  /** Destinations held back after a refusal (key from destinationKey) → the timer that lets them go again. */
  readonly #waiting = new Map<string, { readonly destination: Destination; readonly timer: NodeJS.Timeout }>();
  /** After a connection loss with messages in flight: the oldest of them, sent alone before anything else. */
  #suspect: number | undefined;
  /** Acknowledged ids not yet deleted; deleted in one statement per batch. */
  #acks: number[] = [];
  /**
   * Acknowledged ids whose delete the store refused (a full disk): never handed out again, deleted at a later pump.
   * Sending them again would loop the same rows through the broker as long as the disk stays full.
   */
  #undeleted = new Set<number>();
  /** Rows read ahead of the window, oldest first, from `#next` on: one outbox read per several windows' worth. */
  #ahead: OutboxDelivery[] = [];
  #next = 0;
  /** The last read found nothing beyond the window; read again only once notify() says rows were added. */
  #exhausted = false;
  #generation = 0;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #pumpQueued = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #published = 0;
  #acked = 0;
  #deadLettered = 0;
  #lastError: DrainError | null = null;
  #onEmpty: (() => void) | undefined;

  constructor(options: OutboxDrainOptions) {
    const window = options.inflight ?? DEFAULT_INFLIGHT;
    if (!Number.isSafeInteger(window) || window < 1) throw new TypeError('inflight is not a positive integer');
    const poll = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    if (!(poll > 0)) throw new TypeError('pollIntervalMs is not greater than 0');
    this.#outbox = options.outbox;
    this.#session = options.session;
    this.#window = window;
    this.#pollIntervalMs = poll;
    // Checked here, so a bad option fails at construction rather than at the first refusal.
    new ReconnectBackoff(options.retryBackoff);
    this.#retryOptions = options.retryBackoff ?? {};
    const deadAfter = options.deadLetterAfter ?? DEFAULT_DEAD_LETTER_AFTER;
    if (!Number.isSafeInteger(deadAfter) || deadAfter < 1) throw new TypeError('deadLetterAfter is not a positive integer');
    this.#deadLetterAfter = deadAfter;
    this.#onDeadLetter = options.onDeadLetter;
    this.#log = (options.logger ?? silentLogger).child({ component: 'uplink', part: 'drain' });
    this.#clock = options.clock ?? systemClock;
  }

  start(): void {
    if (this.#state !== 'new') throw new UplinkError('UPLINK_CLOSED', 'an outbox drain starts once; make a new one');
    this.#state = 'running';
    this.#session.on('connected', this.#onConnected);
    this.#session.on('disconnected', this.#onDisconnected);
    this.#pollTimer = setInterval(() => this.notify(), this.#pollIntervalMs);
    this.notify();
  }

  /** New rows were committed: look at the outbox at the next turn of the event loop. Cheap; call it after every commit. */
  notify(): void {
    this.#exhausted = false;
    this.#schedule();
  }

  /** One pump per turn of the event loop, however many PUBACKs and notifications arrived in it. */
  #schedule(): void {
    if (this.#pumpQueued || this.#state !== 'running') return;
    this.#pumpQueued = true;
    setImmediate(this.#pump);
  }

  stats(): DrainStats {
    let pending: number;
    try {
      pending = this.#outbox.counts().total;
    } catch {
      pending = Number.NaN;
    }
    return {
      published: this.#published,
      acked: this.#acked,
      pending,
      inFlight: this.#inFlight.size,
      connected: this.#session.connected,
      lastError: this.#lastError,
      deadLettered: this.#deadLettered,
      waitingTopics: this.#waiting.size,
    };
  }

  /**
   * Stops sending, waits up to `timeoutMs` for the PUBACKs of what is in flight and deletes those rows. Anything
   * still unacknowledged stays in the outbox and is sent again after the next start.
   */
  async stop(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    clearInterval(this.#pollTimer);
    for (const { timer } of this.#waiting.values()) clearTimeout(timer);
    this.#waiting.clear();
    if (this.#inFlight.size > 0) {
      const empty = new Promise<void>((resolve) => (this.#onEmpty = resolve));
      try {
        await withTimeout(empty, options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS, 'waiting for PUBACKs');
      } catch {
        this.#log.warn({ inFlight: this.#inFlight.size }, 'stopped with messages unacknowledged; they stay in the outbox and go again');
      }
    }
    this.#session.off('connected', this.#onConnected);
    this.#session.off('disconnected', this.#onDisconnected);
    this.#flushAcks();
    this.#state = 'stopped';
  }

  readonly #onConnected = (): void => {
    this.notify();
  };

  readonly #onDisconnected = (event: { readonly reason: string }): void => {
    this.#blameLoss(event.reason);
    // The session has rejected everything sent on that connection; from now on those rows are simply unsent.
    this.#generation++;
    this.#inFlight.clear();
    // The outbox, not this buffer, says what comes next after the reconnect: read again from the oldest row.
    this.#dropReadAhead();
    this.#settled();
  };

  readonly #pump = (): void => {
    this.#pumpQueued = false;
    if (this.#acks.length >= ACK_BATCH || this.#inFlight.size === 0) this.#flushAcks();
    if (this.#state !== 'running' || !this.#session.connected) return;
    if (this.#suspect !== undefined) {
      // Alone, so that a connection loss now can be laid at its door, and nothing else is lost with it.
      if (this.#inFlight.size > 0) return;
      const row = this.#findRow(this.#suspect);
      if (row !== undefined) {
        this.#send(row);
        return;
      }
      this.#suspect = undefined;
    }
    const window = Math.min(this.#window, this.#session.receiveMaximum);
    // Refill on every PUBACK rather than in chunks: a broker that delays its PUBACKs (Nagle) until our next packet
    // acknowledges its TCP segment would otherwise stall for the peer's delayed-ACK timer each window.
    while (this.#inFlight.size < window) {
      const row = this.#nextRow(window);
      if (row === undefined || !this.#send(row)) return;
    }
  };

  #nextRow(window: number): OutboxDelivery | undefined {
    if (this.#next >= this.#ahead.length) {
      if (this.#exhausted) return undefined;
      // Rows acknowledged but not deleted would be read again as unsent.
      this.#flushAcks();
      try {
        const waiting = [...this.#waiting.values()].map((w) => w.destination);
        this.#ahead = this.#outbox.peek({
          limit: window * READ_AHEAD_WINDOWS,
          excludeIds: this.#inFlight.size + this.#undeleted.size > 0 ? [...this.#inFlight.keys(), ...this.#undeleted] : undefined,
          excludeTopics: waiting.filter((d) => d.kind === 'topic').map((d) => d.topic),
          excludeResponseTopics: waiting.filter((d) => d.kind === 'response').map((d) => d.topic),
        });
      } catch (error) {
        this.#ahead = [];
        this.#recordError(error);
        this.#log.error({ err: error }, 'cannot read the outbox');
      }
      this.#next = 0;
      this.#exhausted = this.#ahead.length < window * READ_AHEAD_WINDOWS;
    }
    return this.#ahead[this.#next++];
  }

  #findRow(id: number): OutboxDelivery | undefined {
    try {
      return this.#outbox.find(id);
    } catch (error) {
      this.#recordError(error);
      this.#log.error({ err: error, id }, 'cannot read the outbox');
      return undefined;
    }
  }

  #dropReadAhead(): void {
    this.#ahead = [];
    this.#next = 0;
    this.#exhausted = false;
  }

  #send(row: OutboxDelivery): boolean {
    let topic: string;
    try {
      // A reply the request asked for on its MQTT 5 response topic goes there, with its correlation data.
      topic = row.responseTopic ?? this.#session.topics.absolute(row.topic);
    } catch (error) {
      // No broker will ever take a topic our own check refuses.
      this.#refused(row, error, true);
      return true;
    }
    const generation = this.#generation;
    this.#inFlight.set(row.id, { generation, row });
    this.#published++;
    this.#session.publish(topic, row.payload, { qos: row.qos, retain: row.retain, correlationData: row.correlationData }).then(
      () => this.#onAck(row.id, generation),
      (error: unknown) => this.#onFail(row, generation, error),
    );
    return true;
  }

  #onAck(id: number, generation: number): void {
    this.#acked++;
    // A PUBACK means the broker has it, whichever connection it came on: the row can go.
    this.#acks.push(id);
    if (this.#inFlight.get(id)?.generation === generation) this.#inFlight.delete(id);
    if (this.#suspect === id) {
      this.#suspect = undefined;
      this.#dropReadAhead();
    }
    this.#settled();
    this.#schedule();
  }

  #onFail(row: OutboxDelivery, generation: number, error: unknown): void {
    if (this.#inFlight.get(row.id)?.generation === generation) this.#inFlight.delete(row.id);
    if (isUplinkError(error, 'UPLINK_CONNECTION_LOST') || isUplinkError(error, 'UPLINK_NOT_CONNECTED')) {
      // Not a verdict on the message: it goes again, in order, after the reconnect.
      this.#recordError(error);
    } else {
      this.#refused(row, error);
    }
    this.#settled();
  }

  /**
   * The connection closed with messages in flight. Alone in flight, the suspect is charged with one refusal: a broker
   * that cannot refuse on MQTT 3.1.1 closes the connection instead. With several in flight nobody is charged; the
   * oldest goes alone on the next connection, so that a loss can be laid at one message's door.
   */
  #blameLoss(reason: string): void {
    if (this.#inFlight.size === 0 || this.#state !== 'running') return;
    const suspect = this.#suspect;
    if (suspect !== undefined && this.#inFlight.size === 1 && this.#inFlight.has(suspect)) {
      const { row } = this.#inFlight.get(suspect)!;
      const outcome = this.#countRefusal(row, `the broker closed the connection while this message alone was in flight (${reason})`);
      if (outcome === undefined || outcome.dead) this.#suspect = undefined;
      return;
    }
    this.#suspect = Math.min(...this.#inFlight.keys());
  }

  /**
   * The broker (or our topic check) refused a message. Its topic waits: sending its later messages past it would put
   * them ahead of it. Every other topic goes on. After a pause that grows with each refusal it goes again; refused
   * `deadLetterAfter` times (at once when the topic itself is invalid), it moves to the dead letters.
   */
  #refused(row: OutboxDelivery, error: unknown, permanent = false): void {
    this.#recordError(error);
    // The broker answered on this connection: whatever closed the last one, it was not this message.
    if (this.#suspect === row.id) this.#suspect = undefined;
    const reason = (error as Error).message ?? String(error);
    const outcome = this.#countRefusal(row, reason, permanent);
    if (outcome?.dead === true) return;
    const attempts = outcome?.attempts ?? 1;
    const delayMs = this.#retryDelay(attempts);
    this.#log.warn(
      { id: row.id, topic: row.responseTopic ?? row.topic, reason, attempts, deadLetterAfter: this.#deadLetterAfter, retryInMs: delayMs },
      'the broker refused an outbox message; its topic waits and the message goes again',
    );
    this.#hold(destinationOf(row), delayMs);
  }

  /** Counts one refusal in the store; moves the row to the dead letters when it has had enough. */
  #countRefusal(row: OutboxDelivery, reason: string, permanent = false) {
    let outcome: ReturnType<OutboxQueue['refused']>;
    try {
      outcome = this.#outbox.refused(row.id, reason, { deadAfter: this.#deadLetterAfter, permanent });
    } catch (error) {
      this.#recordError(error);
      this.#log.error({ err: error, id: row.id }, 'cannot record a refusal in the outbox; the message goes again');
      return undefined;
    }
    if (outcome?.dead === true) {
      this.#deadLettered++;
      const topic = row.responseTopic ?? row.topic;
      this.#log.warn(
        { id: row.id, topic, class: row.class, reason, attempts: outcome.attempts, deadLetters: outcome.total },
        'the broker refused an outbox message for good: moved to the dead letters, its topic flows again',
      );
      this.#dropReadAhead();
      try {
        this.#onDeadLetter?.({ id: row.id, topic, reason, total: outcome.total });
      } catch (error) {
        this.#log.error({ err: error }, 'the dead-letter listener failed');
      }
      this.#schedule();
    }
    return outcome;
  }

  /** Holds back one destination for `delayMs`; its messages are left out of outbox reads meanwhile. */
  #hold(destination: Destination, delayMs: number): void {
    const key = destinationKey(destination);
    if (this.#waiting.has(key) || this.#state !== 'running') return;
    const timer = setTimeout(() => {
      this.#waiting.delete(key);
      // From the oldest row again, so the topic's waiting messages go before its later ones.
      this.#dropReadAhead();
      this.notify();
    }, delayMs);
    this.#waiting.set(key, { destination, timer });
    this.#dropReadAhead();
    this.#schedule();
  }

  #retryDelay(attempts: number): number {
    const initialMs = this.#retryOptions.initialMs ?? 1_000;
    const maxMs = this.#retryOptions.maxMs ?? 60_000;
    const jitter = this.#retryOptions.jitter ?? 0.2;
    const random = this.#retryOptions.random ?? Math.random;
    const base = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempts - 1, 0), 52));
    return Math.round(base * (1 + jitter * (2 * random() - 1)));
  }

  #settled(): void {
    if (this.#inFlight.size > 0) return;
    if (this.#state === 'stopping') this.#onEmpty?.();
  }

  #flushAcks(): void {
    if (this.#acks.length === 0 && this.#undeleted.size === 0) return;
    const ids = [...this.#undeleted, ...this.#acks];
    this.#acks = [];
    try {
      this.#outbox.ackMany(ids);
    } catch (error) {
      // Kept and retried at each pump; after a restart they would go again (a duplicate), which the station
      // tolerates; losing them it would not.
      this.#recordError(error);
      if (this.#undeleted.size === 0) {
        this.#log.error({ err: error, count: ids.length }, 'cannot delete acknowledged outbox rows; retrying at each pump');
      }
      this.#undeleted = new Set(ids);
      return;
    }
    if (this.#undeleted.size > 0) {
      this.#log.warn({ count: this.#undeleted.size }, 'acknowledged outbox rows deleted after all');
      this.#undeleted.clear();
    }
  }

  #recordError(error: unknown): void {
    const code = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'UNKNOWN';
    this.#lastError = { code, message: (error as Error).message ?? String(error), at: this.#clock.now() };
  }
}

function destinationOf(row: OutboxDelivery): Destination {
  return row.responseTopic === undefined ? { kind: 'topic', topic: row.topic } : { kind: 'response', topic: row.responseTopic };
}

function destinationKey(destination: Destination): string {
  return `${destination.kind}:${destination.topic}`;
}
