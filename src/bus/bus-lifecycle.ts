import { realTimers, systemClock, type Clock, type Timers } from '../clock.js';
import type { Logger } from '../log.js';
import type { BusArbiter, RunOptions } from './arbiter.js';
import { BusError } from './errors.js';
import type { Priority } from './types.js';

export type BusState = 'up' | 'down' | 'closed';

/**
 * What just happened to the bus. `reopening` comes when the reopen loop starts and again whenever an attempt fails
 * for a reason not reported yet, so an adapter that stays missing for an hour is one event, not 1,800.
 */
export type BusStateChange = 'opened' | 'lost' | 'reopening' | 'closed';

export interface BusStateEvent {
  state: BusState;
  /** In words: the error that took the port, why the last attempt failed, "opened after 3 failed attempts". */
  reason: string;
  change: BusStateChange;
  /** The system error behind a loss or a failed attempt (EIO, ENOENT, ECONNREFUSED), when one is known. */
  errno?: string;
  /** Open attempts so far in this outage (0 when lost or closed). */
  attempt: number;
  /** Times the port came back after a loss, since the bus was made. */
  reconnects: number;
  /** While down: when the bus went down (ISO 8601, wall clock). */
  downSince?: string;
  /** On `opened` after a loss: how long the bus was down, on the monotonic clock. */
  downMs?: number;
}

export interface BusLifecycleOptions<C> {
  /** Names the bus in every message: `bus1`. */
  id: string;
  /** What a technician would look for: `/dev/ttyUSB0 2400 8E1`. */
  description: string;
  /** How a BUS_DOWN message names what was lost: `its port /dev/ttyUSB0 2400 8E1`. Default: the description. */
  lostWhat?: string;
  /** What to check when the port is lost: `the USB adapter, cable or converter`. */
  checkHint: string;
  arbiter: BusArbiter;
  log: Logger;
  /** One attempt to open the port; throws (PORT_OPEN_FAILED, ABORTED, …) when it cannot. */
  connect(signal: AbortSignal): Promise<C>;
  /** Releases a connection whatever its state; never rejects. */
  disconnect(conn: C): Promise<void>;
  isOpen(conn: C): boolean;
  /** Told when the bus comes up, before anyone else hears of it (reset a decoder, drop stale bytes). */
  onUp?(conn: C): void;
  /** Told of every change, after the bus has acted on it. */
  onState(event: BusStateEvent): void;
  timers?: Timers;
  clock?: Clock;
  /** First delay before reopening a lost port; doubles up to `reconnectMaxMs`. Default 200 ms. */
  reconnectMinMs?: number;
  /** Default 2000 ms: a re-plugged adapter is in use again within about 2 s. */
  reconnectMaxMs?: number;
  /** How long `close()` lets the job in flight finish before aborting it. Default 5000 ms. */
  closeTimeoutMs?: number;
}

/**
 * The life of one bus connection, shared by the DL/T 645 FrameBus and the Modbus link: open once or keep opening in
 * the background, refuse jobs while down or closed, keep the turnaround gap between frames, and when the port is
 * lost fail every job at once with BUS_DOWN, release the port and reopen it with capped exponential backoff. Every
 * change is logged once and reported through `onState`. What a "connection" is (a transport, a Modbus client) is
 * the owner's business.
 *
 * @example
 * const life = new BusLifecycle({ id, description, checkHint, arbiter, log, connect, disconnect, isOpen, onState });
 * life.start();
 * const reply = await life.run('poll', (signal) => life.exchange('read', [signal], (conn) => send(conn)));
 */
export class BusLifecycle<C> {
  readonly id: string;
  readonly description: string;
  readonly arbiter: BusArbiter;
  readonly reconnectMaxMs: number;
  readonly #o: BusLifecycleOptions<C>;
  readonly #log: Logger;
  readonly #timers: Timers;
  readonly #clock: Clock;
  readonly #reconnectMinMs: number;
  readonly #closeTimeoutMs: number;
  /** Stops the reopen loop and any open in progress. */
  readonly #stop = new AbortController();
  #state: BusState = 'down';
  #conn: C | undefined;
  #downReason = 'not opened yet';
  #downErrno: string | undefined;
  #downSince: number;
  #downAt: number | undefined;
  #opening = false;
  #disconnecting: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #inFlight = false;
  #lastExchangeEnd: number | undefined;
  #everUp = false;
  #reconnects = 0;

  constructor(opts: BusLifecycleOptions<C>) {
    this.#o = opts;
    this.id = opts.id;
    this.description = opts.description;
    this.arbiter = opts.arbiter;
    this.#log = opts.log;
    this.#timers = opts.timers ?? realTimers;
    this.#clock = opts.clock ?? systemClock;
    this.#reconnectMinMs = opts.reconnectMinMs ?? 200;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 2000;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    if (!(this.#reconnectMinMs > 0) || !(this.reconnectMaxMs >= this.#reconnectMinMs)) {
      throw new TypeError(
        `reconnectMinMs (${this.#reconnectMinMs}) is not greater than 0 and at most reconnectMaxMs (${this.reconnectMaxMs})`,
      );
    }
    if (!(Number.isFinite(this.#closeTimeoutMs) && this.#closeTimeoutMs >= 0))
      throw new TypeError(`closeTimeoutMs is not a number of milliseconds ≥ 0: ${this.#closeTimeoutMs}`);
    this.#downSince = this.#clock.now();
  }

  get state(): BusState {
    return this.#state;
  }

  /** The open connection, while the bus is up. */
  get connection(): C | undefined {
    return this.#state === 'up' ? this.#conn : undefined;
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  /** Opens the port once; rejects (PORT_OPEN_FAILED, …) if it cannot. For commands run by hand. */
  async open(signal?: AbortSignal): Promise<void> {
    if (this.#state === 'closed') throw this.closedError();
    if (this.#state === 'up' || this.#opening) throw new Error(`${this.id} is already open or opening`);
    this.#opening = true;
    let conn: C;
    try {
      conn = await this.#o.connect(signal ? AbortSignal.any([signal, this.#stop.signal]) : this.#stop.signal);
    } finally {
      this.#opening = false;
    }
    if (this.#stop.signal.aborted) {
      await this.#o.disconnect(conn);
      throw this.closedError();
    }
    this.#setUp(conn, 'opened', 1);
  }

  /** Opens the port in the background and keeps trying until it opens. For the daemon: an adapter may come later. */
  start(): void {
    if (this.#state !== 'down') return;
    void this.#reopen(0);
  }

  /** Why a job would be refused right now (BUS_DOWN, BUS_CLOSED), or undefined when the bus takes jobs. */
  refusal(): BusError | undefined {
    if (this.#state === 'closed') return this.closedError();
    if (this.#state === 'down') return this.downError(this.#downReason);
    return undefined;
  }

  /** Queues one job on the arbiter, or refuses it at once while the bus is down or closed. */
  run<T>(priority: Priority, job: (signal: AbortSignal) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    return this.arbiter.run(priority, job, opts);
  }

  /**
   * Holds the bus for several requests. `body` gets the job's signal and `ended`, which returns the error to reject
   * with when a request comes after the session returned.
   */
  session<T>(priority: Priority, opts: RunOptions, body: (signal: AbortSignal, ended: () => Error | undefined) => Promise<T>): Promise<T> {
    return this.run(
      priority,
      async (signal) => {
        let open = true;
        const ended = (): Error | undefined =>
          open ? undefined : new Error(`a session on ${this.id} was used after it ended ("${opts.label ?? 'session'}")`);
        try {
          return await body(signal, ended);
        } finally {
          open = false;
        }
      },
      opts,
    );
  }

  /**
   * One request on the wire, from inside a job: refuses it if a signal fired, another request of the same session
   * is still out, or the port is gone; otherwise hands `send` the open connection.
   */
  async exchange<T>(label: string, signals: readonly AbortSignal[], send: (conn: C) => Promise<T>): Promise<T> {
    for (const s of signals) if (s.aborted) throw this.abortError(s.reason, label);
    if (this.#inFlight) {
      throw new Error(
        `"${label}" was sent on ${this.id} while another request of the same session was still waiting for its reply; await each request of a session`,
      );
    }
    const conn = this.connection;
    if (conn === undefined || !this.#o.isOpen(conn)) throw this.downError(this.#downReason);
    this.#inFlight = true;
    try {
      return await send(conn);
    } finally {
      this.#inFlight = false;
    }
  }

  /** Waits out the quiet gap since the last frame: inside a session, and between retries, the arbiter's gap does not apply. */
  async turnaround(signals: readonly AbortSignal[], label: string): Promise<void> {
    if (this.#lastExchangeEnd === undefined) return;
    const wait = this.arbiter.gapMs - (this.#timers.now() - this.#lastExchangeEnd);
    if (wait <= 0) return;
    if (!(await this.sleep(wait, signals))) {
      const aborted = signals.find((s) => s.aborted);
      throw this.abortError(aborted?.reason, label);
    }
  }

  /** Marks the end of one attempt on the wire: the next one waits the turnaround gap from here. */
  exchangeEnded(): void {
    this.#lastExchangeEnd = this.#timers.now();
  }

  /** Sleeps on the injected timers; resolves false at once when any signal fires. */
  sleep(ms: number, signals: readonly AbortSignal[]): Promise<boolean> {
    if (signals.some((s) => s.aborted)) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const finish = (slept: boolean): void => {
        this.#timers.clearTimeout(timer);
        for (const s of signals) s.removeEventListener('abort', onAbort);
        resolve(slept);
      };
      const onAbort = (): void => finish(false);
      const timer = this.#timers.setTimeout(() => finish(true), ms);
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * The port is gone: fail the job on the wire and every queued one, release the port, and start reopening it.
   * Returns the error jobs get. Does nothing more when the bus is already down or closed.
   */
  goDown(cause: Error): BusError {
    const error = this.downError(cause.message, cause);
    if (this.#state !== 'up') return error;
    this.#downSince = this.#clock.now();
    this.#downAt = this.#timers.now();
    this.#downReason = cause.message;
    this.#downErrno = errnoOf(cause);
    const conn = this.#conn;
    this.#conn = undefined;
    this.#setState('down', { change: 'lost', reason: cause.message, errno: this.#downErrno, attempt: 0 }, cause);
    this.arbiter.failAll(error);
    this.arbiter.abortRunning(error);
    if (conn !== undefined) this.#disconnecting = this.#o.disconnect(conn);
    void this.#reopen(this.#reconnectMinMs);
    return error;
  }

  /** Stops reopening, refuses queued jobs, lets the job in flight finish (bounded), then releases the port. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#setState('closed', { change: 'closed', reason: 'closed by meterd', attempt: 0 });
    this.#stop.abort();
    this.arbiter.failAll(this.closedError());
    if (!(await settlesWithin(this.#timers, this.arbiter.idle(), this.#closeTimeoutMs))) {
      this.#log.warn({ event: 'close-abort', running: this.arbiter.stats().running?.label }, 'job still running at close; aborting it');
      this.arbiter.abortRunning(
        new BusError(
          'BUS_CLOSED',
          `${this.id} was closed while a job was on the wire (${this.description}); the meter may or may not have received it`,
        ),
      );
      await settlesWithin(this.#timers, this.arbiter.idle(), 1000);
    }
    const conn = this.#conn;
    this.#conn = undefined;
    await this.#disconnecting;
    if (conn !== undefined) await this.#o.disconnect(conn);
  }

  async #reopen(firstDelayMs: number): Promise<void> {
    if (this.#opening) return;
    this.#opening = true;
    const stop = this.#stop.signal;
    let delay = firstDelayMs;
    let attempt = 0;
    let reported = '';
    try {
      while (!stop.aborted) {
        await this.#disconnecting;
        if (delay > 0 && !(await this.sleep(delay, [stop]))) return;
        delay = Math.min(this.reconnectMaxMs, Math.max(this.#reconnectMinMs, delay * 2));
        attempt++;
        if (attempt === 1)
          this.#setState('down', { change: 'reopening', reason: this.#downReason, errno: this.#downErrno, attempt }, undefined, 'info');
        let conn: C;
        try {
          conn = await this.#o.connect(stop);
        } catch (err) {
          if (stop.aborted) return;
          const cause = err instanceof Error ? err : new Error(String(err));
          this.#downReason = cause.message;
          this.#downErrno = errnoOf(cause);
          if (cause.message !== reported) {
            // The same failure every 2 s for hours is one event; the attempt count is in the debug lines.
            reported = cause.message;
            this.#setState('down', { change: 'reopening', reason: cause.message, errno: this.#downErrno, attempt }, cause);
          } else {
            this.#log.debug({ event: 'reopen-failed', attempt, errno: this.#downErrno }, 'port still unavailable');
          }
          continue;
        }
        if (stop.aborted) {
          await this.#o.disconnect(conn);
          return;
        }
        if (this.#everUp) this.#reconnects++;
        const failures = attempt - 1;
        this.#setUp(conn, failures === 0 ? 'opened' : `opened after ${failures} failed attempt${failures === 1 ? '' : 's'}`, attempt);
        return;
      }
    } finally {
      this.#opening = false;
    }
  }

  #setUp(conn: C, reason: string, attempt: number): void {
    this.#conn = conn;
    this.#lastExchangeEnd = undefined;
    this.#o.onUp?.(conn);
    const downMs = this.#everUp && this.#downAt !== undefined ? Math.round(this.#timers.now() - this.#downAt) : undefined;
    this.#everUp = true;
    this.#downAt = undefined;
    this.#downErrno = undefined;
    this.#setState('up', { change: 'opened', reason, attempt, ...(downMs !== undefined ? { downMs } : {}) });
  }

  #setState(
    state: BusState,
    e: Omit<BusStateEvent, 'state' | 'reconnects' | 'downSince'>,
    err?: Error,
    level: 'info' | 'warn' = state === 'down' ? 'warn' : 'info',
  ): void {
    this.#state = state;
    const event: BusStateEvent = {
      state,
      reason: e.reason,
      change: e.change,
      ...(e.errno !== undefined ? { errno: e.errno } : {}),
      attempt: e.attempt,
      reconnects: this.#reconnects,
      ...(state === 'down' ? { downSince: new Date(this.#downSince).toISOString() } : {}),
      ...(e.downMs !== undefined ? { downMs: e.downMs } : {}),
    };
    const fields = { event: 'bus-state', ...event, port: this.description, ...(err ? { err } : {}) };
    const text =
      e.change === 'lost'
        ? `bus down: ${e.reason}`
        : e.change === 'reopening'
          ? `bus reopening (attempt ${e.attempt}): ${e.reason}`
          : `bus ${state}: ${e.reason}`;
    this.#log[level](fields, text);
    try {
      this.#o.onState(event);
    } catch (listenerErr) {
      // A listener's bug must not leave the bus half-way through a change.
      this.#log.error({ event: 'state-listener-threw', err: listenerErr }, 'a bus state listener threw');
    }
  }

  downError(reason: string, cause?: Error): BusError {
    const since = this.#state === 'up' ? '' : ` since ${new Date(this.#downSince).toISOString()}`;
    return new BusError(
      'BUS_DOWN',
      `${this.id} lost ${this.#o.lostWhat ?? this.description}${since} (${reason}); a request on the wire may or may not have reached the meter. ` +
        `meterd keeps reopening it (every ≤ ${formatSeconds(this.reconnectMaxMs)} s): check ${this.#o.checkHint}`,
      { cause },
    );
  }

  closedError(): BusError {
    return new BusError(
      'BUS_CLOSED',
      `${this.id} (${this.description}) is closed: meterd is shutting down or the bus was removed from the config`,
    );
  }

  abortError(reason: unknown, label: string): BusError {
    if (reason instanceof BusError) return reason;
    return new BusError('ABORTED', `"${label}" on ${this.id} was cancelled while on the wire; the meter may or may not have received it`, {
      cause: reason,
    });
  }
}

/** Whether `promise` settles within `ms` on `timers`; never rejects, and leaves no timer behind. */
export async function settlesWithin(timers: Timers, promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: unknown;
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = timers.setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    timers.clearTimeout(timer);
  }
}

const ERRNO_IN_TEXT: ReadonlyArray<[RegExp, string]> = [
  [/\b(E[A-Z]{2,}[A-Z0-9]*)\b/, ''],
  [/no such file or directory/i, 'ENOENT'],
  [/permission denied/i, 'EACCES'],
  [/bad file descriptor/i, 'EBADF'],
  [/input\/output error|i\/o error/i, 'EIO'],
  [/no such device/i, 'ENXIO'],
  [/resource temporarily unavailable|cannot lock port/i, 'EAGAIN'],
];

/**
 * The system error code behind a failure, from the error or its causes. serialport passes some errors on as text
 * only ("Error: No such file or directory, cannot open …"), so the message is read too.
 */
export function errnoOf(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e: unknown = err; e instanceof Error && !seen.has(e); e = e.cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  const text = err instanceof Error ? err.message : String(err);
  for (const [pattern, code] of ERRNO_IN_TEXT) {
    const m = pattern.exec(text);
    if (m) return code || m[1];
  }
  return undefined;
}

const formatSeconds = (ms: number): string => String(Math.round(ms / 100) / 10);
