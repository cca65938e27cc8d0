import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger, type Logger } from '../log.js';
import { BusArbiter, type ArbiterStats } from './arbiter.js';
import { BusError } from './errors.js';
import { openedReason, reopenWithBackoff } from './reopen.js';
import type { ByteTransport } from './transport.js';
import type { Priority, StreamDecoder } from './types.js';

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

export type BusState = 'up' | 'down' | 'closed';

export interface BusStateEvent {
  state: BusState;
  reason: string;
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
  /** Default 5000 ms. */
  reconnectMaxMs?: number;
  /** How long `close()` lets the job in flight finish before aborting it. Default 5000 ms. */
  closeTimeoutMs?: number;
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
 * it, retries on silence, and keeps every other frame away from the caller. When the port is lost it fails
 * everything at once with BUS_DOWN and reopens the port in the background.
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
  readonly #reconnectMinMs: number;
  readonly #reconnectMaxMs: number;
  readonly #closeTimeoutMs: number;
  /** Stops the reconnect loop and any open in progress. */
  readonly #stop = new AbortController();
  #state: BusState = 'down';
  #downReason = 'not opened yet';
  #downSince = new Date();
  #pending: Pending<F> | undefined;
  #lastExchangeEnd: number | undefined;
  #reconnecting = false;
  #transportClosing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #requests = 0;
  #retries = 0;
  #timeouts = 0;
  #stray = 0;
  #late = 0;
  #discardedBytes = 0;
  #reconnects = 0;
  #everUp = false;

  constructor(opts: FrameBusOptions<F>) {
    super();
    this.id = opts.id;
    this.#transport = opts.transport;
    this.#decoder = opts.decoder;
    this.#log = (opts.logger ?? silentLogger).child({ bus: opts.id });
    this.arbiter =
      opts.arbiter ?? new BusArbiter({ name: opts.id, gapMs: opts.gapMs, maxQueuedPolls: opts.maxQueuedPolls, logger: this.#log });
    this.#reconnectMinMs = opts.reconnectMinMs ?? 200;
    this.#reconnectMaxMs = opts.reconnectMaxMs ?? 5000;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    if (!(this.#reconnectMinMs > 0) || !(this.#reconnectMaxMs >= this.#reconnectMinMs)) {
      throw new TypeError(
        `reconnectMinMs (${this.#reconnectMinMs}) is not greater than 0 and at most reconnectMaxMs (${this.#reconnectMaxMs})`,
      );
    }
    this.#transport.on('data', this.#onData);
    this.#transport.on('lost', this.#onLost);
  }

  get state(): BusState {
    return this.#state;
  }

  get port(): string {
    return this.#transport.description;
  }

  /** Opens the port once; rejects with PORT_OPEN_FAILED if it cannot (for commands run by hand). */
  async open(signal?: AbortSignal): Promise<void> {
    if (this.#state === 'closed') throw this.#closedError();
    if (this.#state === 'up' || this.#reconnecting) throw new Error(`${this.id} is already open or opening`);
    await this.#transport.open(signal);
    this.#setUp('opened');
  }

  /** Opens the port in the background and keeps trying until it opens (for the daemon: a missing adapter may be plugged in later). */
  start(): void {
    if (this.#state !== 'down') return;
    void this.#reconnect(0);
  }

  /** Sends one request when the bus is free and resolves with its reply (undefined for a broadcast). */
  request(priority: Priority, req: FrameRequest<F>): Promise<F | undefined> {
    const refused = this.#refusal() ?? invalidRequest(req);
    if (refused) return Promise.reject(refused);
    return this.arbiter.run(priority, (signal) => this.#exchange(req, [signal]), { signal: req.signal, label: req.label });
  }

  /** Holds the bus for several frames (follow-up reads, a multi-step credit job) so no other job comes between them. */
  session<T>(priority: Priority, fn: (tx: FrameTx<F>) => Promise<T>, opts: { signal?: AbortSignal; label?: string } = {}): Promise<T> {
    const refused = this.#refusal();
    if (refused) return Promise.reject(refused);
    return this.arbiter.run(
      priority,
      async (signal) => {
        let open = true;
        const tx: FrameTx<F> = {
          request: (req) => {
            if (!open) return Promise.reject(new Error(`a session on ${this.id} was used after it ended ("${opts.label ?? 'session'}")`));
            const invalid = invalidRequest(req);
            if (invalid) return Promise.reject(invalid);
            return this.#exchange(req, req.signal ? [signal, req.signal] : [signal]);
          },
        };
        try {
          return await fn(tx);
        } finally {
          open = false;
        }
      },
      opts,
    );
  }

  stats(): FrameBusStats {
    return {
      ...this.arbiter.stats(),
      id: this.id,
      port: this.#transport.description,
      state: this.#state,
      requests: this.#requests,
      retries: this.#retries,
      timeouts: this.#timeouts,
      stray: this.#stray,
      late: this.#late,
      discardedBytes: this.#discardedBytes,
      reconnects: this.#reconnects,
    };
  }

  /** Stops reconnecting, refuses queued jobs, lets the job in flight finish (bounded), then closes the port. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#setState('closed', 'closed by meterd');
    this.#stop.abort();
    this.arbiter.failAll(this.#closedError());
    if (!(await settlesWithin(this.arbiter.idle(), this.#closeTimeoutMs))) {
      this.#log.warn({ event: 'close-abort', running: this.arbiter.stats().running?.label }, 'job still running at close; aborting it');
      this.arbiter.abortRunning(
        new BusError(
          'BUS_CLOSED',
          `${this.id} was closed while a job was on the wire (${this.#transport.description}); the meter may or may not have received it`,
        ),
      );
      await settlesWithin(this.arbiter.idle(), 1000);
    }
    this.#transport.off('data', this.#onData);
    this.#transport.off('lost', this.#onLost);
    await this.#transportClosing;
    await this.#transport.close();
  }

  async #exchange(req: FrameRequest<F>, signals: AbortSignal[]): Promise<F | undefined> {
    const label = req.label ?? (req.match ? 'request' : 'broadcast');
    for (const s of signals) if (s.aborted) throw this.#abortError(s.reason, label);
    if (this.#state === 'down' || !this.#transport.isOpen) throw this.#downError(this.#downReason);
    this.#requests++;
    const attempts = req.match ? req.retries + 1 : 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) {
        this.#retries++;
        this.#log.debug({ event: 'retry', label, attempt, of: attempts }, 'no reply; sending again');
      }
      await this.#turnaround(signals, label);
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
  }

  /** Inside a session the arbiter's gap does not apply between frames, so keep it here too. */
  async #turnaround(signals: AbortSignal[], label: string): Promise<void> {
    if (this.#lastExchangeEnd === undefined) return;
    const wait = this.arbiter.gapMs - (performance.now() - this.#lastExchangeEnd);
    if (wait <= 0) return;
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    try {
      await sleep(wait, undefined, { signal: stop.signal });
    } catch {
      const aborted = signals.find((s) => s.aborted);
      throw this.#abortError(aborted?.reason, label);
    } finally {
      for (const s of signals) s.removeEventListener('abort', onAbort);
    }
  }

  #attempt(req: FrameRequest<F>, signals: AbortSignal[], label: string): Promise<Attempt<F>> {
    if (this.#pending) {
      // Only reachable from a session that starts a second request without awaiting the first.
      return Promise.reject(
        new Error(
          `"${label}" was sent on ${this.id} while another request of the same session was still waiting for its reply; await each tx.request`,
        ),
      );
    }
    return new Promise<Attempt<F>>((resolve, reject) => {
      const t0 = performance.now();
      const timeoutMs = req.timeoutMs;
      const cap = t0 + 3 * timeoutMs;
      let deadline = t0 + timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      let settled = false;

      const finish = (settle: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        for (const s of signals) s.removeEventListener('abort', onAbort);
        if (this.#pending === pending) this.#pending = undefined;
        this.#lastExchangeEnd = performance.now();
        settle();
      };
      const onAbort = (): void => {
        const aborted = signals.find((s) => s.aborted);
        finish(() => reject(this.#abortError(aborted?.reason, label)));
      };
      // One timer per attempt; bytes only move the deadline, and the timer re-arms itself if it fires early.
      const checkDeadline = (): void => {
        const left = deadline - performance.now();
        if (left > 0) timer = setTimeout(checkDeadline, left);
        else finish(() => resolve(TIMED_OUT));
      };
      const pending: Pending<F> = {
        match: req.match,
        onFrame: (frame) => finish(() => resolve({ frame })),
        onBytes: () => {
          // A slow meter still sending: give it another full timeout, but never beyond 3× the first deadline.
          if (req.match) deadline = Math.min(cap, performance.now() + timeoutMs);
        },
      };

      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      this.#decoder.reset();
      this.#pending = pending;
      // Armed before the write completes: the reply can arrive before the drain is reported.
      if (req.match) timer = setTimeout(checkDeadline, timeoutMs);
      this.#transport.write(req.bytes).then(
        () => {
          if (!req.match && !settled) timer = setTimeout(() => finish(() => resolve({ frame: undefined })), req.settleMs ?? 500);
        },
        (err: unknown) => {
          const down = this.#goDown(err instanceof Error ? err : new Error(String(err)));
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
    this.#goDown(err);
  };

  #matches(match: (frame: F) => boolean, frame: F): boolean {
    try {
      return match(frame);
    } catch (err) {
      this.#log.warn({ event: 'match-threw', err }, 'reply matcher threw; treating the frame as not the reply');
      return false;
    }
  }

  /** The port is gone: fail everything that waits for it, and start reopening. Returns the error jobs get. */
  #goDown(cause: Error): BusError {
    const error = this.#downError(cause.message, cause);
    if (this.#state !== 'up') return error;
    this.#downSince = new Date();
    this.#downReason = cause.message;
    this.#setState('down', cause.message, cause);
    this.arbiter.failAll(error);
    this.arbiter.abortRunning(error);
    this.#decoder.reset();
    this.#transportClosing = this.#transport.close();
    void this.#reconnect(this.#reconnectMinMs);
    return error;
  }

  async #reconnect(firstDelayMs: number): Promise<void> {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    try {
      const r = await reopenWithBackoff({
        signal: this.#stop.signal,
        firstDelayMs,
        minMs: this.#reconnectMinMs,
        maxMs: this.#reconnectMaxMs,
        settle: () => this.#transportClosing,
        open: async (signal) => {
          await this.#transport.open(signal);
          return this.#transport;
        },
        discard: (t) => t.close(),
        onFailure: (message) => (this.#downReason = message),
        log: this.#log,
      });
      if (!r) return;
      if (this.#everUp) this.#reconnects++;
      this.#setUp(openedReason(r.failures));
    } finally {
      this.#reconnecting = false;
    }
  }

  #setUp(reason: string): void {
    this.#decoder.reset();
    this.#lastExchangeEnd = undefined;
    this.#everUp = true;
    this.#setState('up', reason);
  }

  #setState(state: BusState, reason: string, err?: Error): void {
    this.#state = state;
    const fields = { event: 'bus-state', state, reason, port: this.#transport.description };
    if (state === 'down') this.#log.warn({ ...fields, err }, `bus down: ${reason}`);
    else this.#log.info(fields, `bus ${state}`);
    this.emit('state', { state, reason });
  }

  #refusal(): BusError | undefined {
    if (this.#state === 'closed') return this.#closedError();
    if (this.#state === 'down') return this.#downError(this.#downReason);
    return undefined;
  }

  #downError(reason: string, cause?: Error): BusError {
    const since = this.#state === 'up' ? '' : ` since ${this.#downSince.toISOString()}`;
    return new BusError(
      'BUS_DOWN',
      `${this.id} lost its port ${this.#transport.description}${since} (${reason}); a request on the wire may or may not have reached the meter. ` +
        `meterd keeps reopening the port (every ≤ ${Math.round(this.#reconnectMaxMs / 1000)} s): check the USB adapter, cable or converter`,
      { cause },
    );
  }

  #closedError(): BusError {
    return new BusError(
      'BUS_CLOSED',
      `${this.id} (${this.#transport.description}) is closed: meterd is shutting down or the bus was removed from the config`,
    );
  }

  #abortError(reason: unknown, label: string): BusError {
    if (reason instanceof BusError) return reason;
    return new BusError('ABORTED', `"${label}" on ${this.id} was cancelled while on the wire; the meter may or may not have received it`, {
      cause: reason,
    });
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

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const stop = new AbortController();
  try {
    return await Promise.race([promise.then(() => true), sleep(ms, false, { signal: stop.signal })]);
  } finally {
    stop.abort();
  }
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
