import { EventEmitter } from 'node:events';
import { realTimers, type Clock, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { BusArbiter, type ArbiterStats } from './arbiter.js';
import { BusLifecycle, type BusState, type BusStateEvent } from './bus-lifecycle.js';
import { BusError } from './errors.js';
import type { ByteTransport } from './transport.js';
import type { Priority, StreamDecoder } from './types.js';

export type { BusState, BusStateChange, BusStateEvent } from './bus-lifecycle.js';

export interface FrameRequest<F> {
  bytes: Uint8Array;
  /** Which frame is the reply. Absent: nobody answers (broadcast); the bus is held for `settleMs` after sending. */
  match?: (frame: F) => boolean;
  /** Reply deadline per attempt, from the start of the write; see `responseTimeoutMs`. */
  timeoutMs: number;
  /** Re-sends after a timeout. Use 0 for anything that must not happen twice (relay, credit). */
  retries: number;
  /** Broadcasts only: how long meters may take to act on it before the next frame. Default 500 ms. */
  settleMs?: number;
  label?: string;
  signal?: AbortSignal;
}

/** The bus as seen from inside a session: requests go straight to the wire, no other job can come between them. */
export interface FrameTx<F> {
  request(req: FrameRequest<F>): Promise<F | undefined>;
}

export interface FrameBusStats extends ArbiterStats {
  id: string;
  port: string;
  state: BusState;
  /** Requests that reached the wire (each counted once, however many attempts). */
  requests: number;
  /** Re-sends after an attempt got no reply. */
  retries: number;
  /** Requests that failed with BUS_TIMEOUT after every attempt. */
  timeouts: number;
  /** Frames that arrived during a request but were not its reply (another meter, a duplicate). */
  stray: number;
  /** Frames that arrived while no request was outstanding (usually a reply after its timeout). */
  late: number;
  /** Bytes the decoder threw away: line noise, broken frames. */
  discardedBytes: number;
  /** Times the port came back after being lost. */
  reconnects: number;
}

export interface FrameBusOptions<F> {
  /** Names the bus in every log line and error: `bus1`. */
  id: string;
  transport: ByteTransport;
  decoder: StreamDecoder<F>;
  /** Share one arbiter when another protocol's client drives the same wire. */
  arbiter?: BusArbiter;
  gapMs?: number;
  maxQueuedPolls?: number;
  logger?: Logger;
  /** First delay before reopening a lost port; doubles up to `reconnectMaxMs`. Default 200 ms. */
  reconnectMinMs?: number;
  /** Default 2000 ms. */
  reconnectMaxMs?: number;
  /** How long `close()` lets the job in flight finish before aborting it. Default 5000 ms. */
  closeTimeoutMs?: number;
  /** Reply deadlines, the turnaround gap and reopen backoff run on these. Default: Node's timers. */
  timers?: Timers;
  /** Stamps `downSince` in state events. Default: the system clock. */
  clock?: Clock;
}

interface Pending<F> {
  match: ((frame: F) => boolean) | undefined;
  onFrame(frame: F): void;
  onBytes(): void;
}

const TIMED_OUT = Symbol('timed out');
type Attempt<F> = { frame: F | undefined } | typeof TIMED_OUT;

/**
 * One physical bus: a transport, a frame decoder and an arbiter. Writes a request, waits for the frame that answers
 * it, retries on silence, and keeps every other frame away from the caller. Opening, losing and reopening the port
 * is the `BusLifecycle`'s: when the port is lost everything fails at once with BUS_DOWN and the port reopens in the
 * background.
 *
 * @example
 * const bus = new FrameBus({ id: 'bus1', transport, decoder: new Dlt645Decoder(), logger });
 * await bus.open();
 * const reply = await bus.request('poll', { bytes, match: (f) => isReplyTo(req, f), timeoutMs: 1590, retries: 2 });
 * bus.on('state', (e) => e.state === 'down' && alert(e.reason));
 */
export class FrameBus<F> extends EventEmitter<{ state: [BusStateEvent] }> {
  readonly id: string;
  readonly arbiter: BusArbiter;
  readonly #transport: ByteTransport;
  readonly #decoder: StreamDecoder<F>;
  readonly #log: Logger;
  readonly #timers: Timers;
  readonly #life: BusLifecycle<ByteTransport>;
  #pending: Pending<F> | undefined;
  #requests = 0;
  #retries = 0;
  #timeouts = 0;
  #stray = 0;
  #late = 0;
  #discardedBytes = 0;

  constructor(opts: FrameBusOptions<F>) {
    super();
    this.id = opts.id;
    this.#transport = opts.transport;
    this.#decoder = opts.decoder;
    this.#timers = opts.timers ?? realTimers;
    this.#log = (opts.logger ?? silentLogger).child({ bus: opts.id });
    this.arbiter =
      opts.arbiter ??
      new BusArbiter({ name: opts.id, gapMs: opts.gapMs, maxQueuedPolls: opts.maxQueuedPolls, logger: this.#log, timers: this.#timers });
    const transport = this.#transport;
    this.#life = new BusLifecycle<ByteTransport>({
      id: opts.id,
      description: transport.description,
      lostWhat: `its port ${transport.description}`,
      checkHint: 'the USB adapter, cable or converter',
      arbiter: this.arbiter,
      log: this.#log,
      timers: this.#timers,
      clock: opts.clock,
      reconnectMinMs: opts.reconnectMinMs,
      reconnectMaxMs: opts.reconnectMaxMs,
      closeTimeoutMs: opts.closeTimeoutMs,
      connect: async (signal) => {
        await transport.open(signal);
        return transport;
      },
      disconnect: (t) => t.close(),
      isOpen: (t) => t.isOpen,
      onUp: () => this.#decoder.reset(),
      onState: (e) => {
        if (e.change === 'lost') this.#decoder.reset();
        this.emit('state', e);
      },
    });
    this.#transport.on('data', this.#onData);
    this.#transport.on('lost', this.#onLost);
  }

  get state(): BusState {
    return this.#life.state;
  }

  get port(): string {
    return this.#transport.description;
  }

  /** Opens the port once; rejects with PORT_OPEN_FAILED if it cannot (for commands run by hand). */
  open(signal?: AbortSignal): Promise<void> {
    return this.#life.open(signal);
  }

  /** Opens the port in the background and keeps trying until it opens (for the daemon: a missing adapter may be plugged in later). */
  start(): void {
    this.#life.start();
  }

  /** Sends one request when the bus is free and resolves with its reply (undefined for a broadcast). */
  request(priority: Priority, req: FrameRequest<F>): Promise<F | undefined> {
    const refused = this.#life.refusal() ?? invalidRequest(req);
    if (refused) return Promise.reject(refused);
    return this.#life.run(priority, (signal) => this.#exchange(req, [signal]), { signal: req.signal, label: req.label });
  }

  /** Holds the bus for several frames (follow-up reads, a multi-step credit job) so no other job comes between them. */
  session<T>(priority: Priority, fn: (tx: FrameTx<F>) => Promise<T>, opts: { signal?: AbortSignal; label?: string } = {}): Promise<T> {
    return this.#life.session(priority, opts, (signal, ended) =>
      fn({
        request: (req) => {
          const refused = ended() ?? invalidRequest(req);
          if (refused) return Promise.reject(refused);
          return this.#exchange(req, req.signal ? [signal, req.signal] : [signal]);
        },
      }),
    );
  }

  stats(): FrameBusStats {
    return {
      ...this.arbiter.stats(),
      id: this.id,
      port: this.#transport.description,
      state: this.#life.state,
      requests: this.#requests,
      retries: this.#retries,
      timeouts: this.#timeouts,
      stray: this.#stray,
      late: this.#late,
      discardedBytes: this.#discardedBytes,
      reconnects: this.#life.reconnects,
    };
  }

  /** Stops reconnecting, refuses queued jobs, lets the job in flight finish (bounded), then closes the port. */
  async close(): Promise<void> {
    await this.#life.close();
    this.#transport.off('data', this.#onData);
    this.#transport.off('lost', this.#onLost);
    // Also when the port was never up: an open still in progress at close leaves nothing behind.
    await this.#transport.close();
  }

  #exchange(req: FrameRequest<F>, signals: AbortSignal[]): Promise<F | undefined> {
    const label = req.label ?? (req.match ? 'request' : 'broadcast');
    return this.#life.exchange(label, signals, async () => {
      this.#requests++;
      const attempts = req.match ? req.retries + 1 : 1;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1) {
          this.#retries++;
          this.#log.debug({ event: 'retry', label, attempt, of: attempts }, 'no reply; sending again');
        }
        await this.#life.turnaround(signals, label);
        const outcome = await this.#attempt(req, signals, label);
        if (outcome !== TIMED_OUT) return outcome.frame;
      }
      this.#timeouts++;
      const err = new BusError(
        'BUS_TIMEOUT',
        `no reply to "${label}" within ${req.timeoutMs} ms on ${this.id} (${this.#transport.description}) after ${attempts} attempt${attempts === 1 ? '' : 's'}; check the meter's address, its power and the A/B wiring`,
      );
      this.#log.info({ event: 'timeout', code: err.code, label, attempts, timeoutMs: req.timeoutMs }, 'no reply');
      throw err;
    });
  }

  #attempt(req: FrameRequest<F>, signals: AbortSignal[], label: string): Promise<Attempt<F>> {
    const timers = this.#timers;
    return new Promise<Attempt<F>>((resolve, reject) => {
      const t0 = timers.now();
      const timeoutMs = req.timeoutMs;
      const cap = t0 + 3 * timeoutMs;
      let deadline = t0 + timeoutMs;
      let timer: unknown;
      let settled = false;

      const finish = (settle: () => void): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) timers.clearTimeout(timer);
        for (const s of signals) s.removeEventListener('abort', onAbort);
        if (this.#pending === pending) this.#pending = undefined;
        this.#life.exchangeEnded();
        settle();
      };
      const onAbort = (): void => {
        const aborted = signals.find((s) => s.aborted);
        finish(() => reject(this.#life.abortError(aborted?.reason, label)));
      };
      // One timer per attempt; bytes only move the deadline, and the timer re-arms itself if it fires early.
      const checkDeadline = (): void => {
        const left = deadline - timers.now();
        if (left > 0) timer = timers.setTimeout(checkDeadline, left);
        else finish(() => resolve(TIMED_OUT));
      };
      const pending: Pending<F> = {
        match: req.match,
        onFrame: (frame) => finish(() => resolve({ frame })),
        onBytes: () => {
          // A slow meter still sending: give it another full timeout, but never beyond 3× the first deadline.
          if (req.match) deadline = Math.min(cap, timers.now() + timeoutMs);
        },
      };

      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      this.#decoder.reset();
      this.#pending = pending;
      // Armed before the write completes: the reply can arrive before the drain is reported.
      if (req.match) timer = timers.setTimeout(checkDeadline, timeoutMs);
      this.#transport.write(req.bytes).then(
        () => {
          if (!req.match && !settled) timer = timers.setTimeout(() => finish(() => resolve({ frame: undefined })), req.settleMs ?? 500);
        },
        (err: unknown) => {
          const down = this.#life.goDown(err instanceof Error ? err : new Error(String(err)));
          finish(() => reject(down));
        },
      );
    });
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#pending?.onBytes();
    let events: ReturnType<StreamDecoder<F>['push']>;
    try {
      events = this.#decoder.push(chunk);
    } catch (err) {
      // The decoder contract says it never throws; if one does, do not let it take the process down from an event.
      this.#log.error({ event: 'decoder-threw', err }, 'frame decoder threw; resetting it');
      this.#decoder.reset();
      return;
    }
    for (const ev of events) {
      if (ev.kind === 'discard') {
        this.#discardedBytes += ev.bytes.length;
        this.#log.debug({ event: 'discard', bytes: ev.bytes.length, reason: ev.reason }, 'bytes discarded');
        continue;
      }
      const pending = this.#pending;
      if (!pending) {
        this.#late++;
        if (this.#log.isLevelEnabled('debug'))
          this.#log.debug({ event: 'late', raw: hex(ev.raw) }, 'frame with no request outstanding dropped');
      } else if (pending.match && this.#matches(pending.match, ev.frame)) {
        pending.onFrame(ev.frame);
      } else {
        this.#stray++;
        if (this.#log.isLevelEnabled('debug')) this.#log.debug({ event: 'stray', raw: hex(ev.raw) }, 'frame that is not the reply ignored');
      }
    }
  };

  readonly #onLost = (err: Error): void => {
    this.#life.goDown(err);
  };

  #matches(match: (frame: F) => boolean, frame: F): boolean {
    try {
      return match(frame);
    } catch (err) {
      this.#log.warn({ event: 'match-threw', err }, 'reply matcher threw; treating the frame as not the reply');
      return false;
    }
  }
}

function invalidRequest<F>(req: FrameRequest<F>): TypeError | undefined {
  if (!(req.bytes instanceof Uint8Array) || req.bytes.length === 0) return new TypeError('request bytes are empty');
  if (req.match && !(Number.isFinite(req.timeoutMs) && req.timeoutMs > 0))
    return new TypeError(`timeoutMs is not greater than 0: ${req.timeoutMs}`);
  if (!Number.isInteger(req.retries) || req.retries < 0) return new TypeError(`retries is not a whole number ≥ 0: ${req.retries}`);
  if (req.settleMs !== undefined && !(Number.isFinite(req.settleMs) && req.settleMs >= 0))
    return new TypeError(`settleMs is not a number of milliseconds ≥ 0: ${req.settleMs}`);
  return undefined;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
