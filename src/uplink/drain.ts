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
  /** Pause before retrying after the broker refused a message. Default 1 s doubling to 60 s. */
  readonly retryBackoff?: BackoffOptions;
  readonly logger?: Logger;
  readonly clock?: Clock;
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
}

const DEFAULT_INFLIGHT = 32;
const DEFAULT_POLL_MS = 2_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/** Rows read per outbox read, in windows. */
const READ_AHEAD_WINDOWS = 4;
/** Deleting acknowledged rows is one commit; batch them, and flush whenever the drain catches up. */
const ACK_BATCH = 256;

/**
 * Publishes the outbox, oldest first, and deletes each row after its PUBACK: the only code that sends outbox rows.
 *
 * Up to `inflight` QoS 1 publishes are outstanding at once on one connection, so the broker receives them in id
 * order. When the connection drops, everything in flight is forgotten (the session rejects it) and, after the
 * reconnect, the drain reads the outbox again from its oldest row: unacknowledged messages go again in id order.
 * A message may arrive twice (the station de-duplicates by `seq`); none is lost or overtaken by a later one of its
 * topic.
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
  readonly #retry: ReconnectBackoff;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** Row id → the connection generation it was published on. */
  readonly #inFlight = new Map<number, number>();
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
  /** After a refusal: send nothing new until the window is empty and the retry delay is over. */
  #held = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #published = 0;
  #acked = 0;
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
    this.#retry = new ReconnectBackoff(options.retryBackoff);
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
    clearTimeout(this.#retryTimer);
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

  readonly #onDisconnected = (): void => {
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
    if (this.#state !== 'running' || this.#held || !this.#session.connected) return;
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
        this.#ahead = this.#outbox.peek({
          limit: window * READ_AHEAD_WINDOWS,
          excludeIds: this.#inFlight.size + this.#undeleted.size > 0 ? [...this.#inFlight.keys(), ...this.#undeleted] : undefined,
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
      this.#refused(row, error);
      return false;
    }
    const generation = this.#generation;
    this.#inFlight.set(row.id, generation);
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
    if (this.#inFlight.get(id) === generation) this.#inFlight.delete(id);
    if (!this.#held) this.#retry.reset();
    this.#settled();
    this.#schedule();
  }

  #onFail(row: OutboxDelivery, generation: number, error: unknown): void {
    if (this.#inFlight.get(row.id) === generation) this.#inFlight.delete(row.id);
    if (isUplinkError(error, 'UPLINK_CONNECTION_LOST') || isUplinkError(error, 'UPLINK_NOT_CONNECTED')) {
      // Not a verdict on the message: it goes again, in order, after the reconnect.
      this.#recordError(error);
    } else {
      this.#refused(row, error);
    }
    this.#settled();
  }

  /**
   * The broker (or our topic check) refused a message. Sending on past it would put later messages of its topic
   * ahead of it, so nothing new goes out until the window is empty; then, after a growing pause, the drain starts
   * again from the oldest row. A message refused for ever blocks the outbox, loudly, until a dead-letter table exists.
   */
  #refused(row: OutboxDelivery, error: unknown): void {
    this.#recordError(error);
    this.#log.error({ err: error, id: row.id, topic: row.topic }, 'the broker refused an outbox message; holding the outbox and retrying');
    this.#held = true;
    this.#dropReadAhead();
    this.#settled();
  }

  #settled(): void {
    if (this.#inFlight.size > 0) return;
    if (this.#state === 'stopping') {
      this.#onEmpty?.();
      return;
    }
    if (this.#held && this.#retryTimer === undefined && this.#state === 'running') {
      const delayMs = this.#retry.next();
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#held = false;
        this.notify();
      }, delayMs);
    }
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
