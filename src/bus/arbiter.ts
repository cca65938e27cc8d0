import { realTimers, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { BusError } from './errors.js';
import { PRIORITIES, type Priority } from './types.js';

export interface BusArbiterOptions {
  /** Names the bus in errors and logs, e.g. `bus1`. */
  name?: string;
  /** Quiet time between the end of one job and the start of the next: RS-485 transceivers need it to turn around. */
  gapMs?: number;
  /** Polls waiting beyond this are refused with BUS_BUSY_SKIPPED instead of piling up behind a slow bus. */
  maxQueuedPolls?: number;
  /** Window over which `utilisation` is measured. */
  utilisationWindowMs?: number;
  timers?: Timers;
  logger?: Logger;
}

export interface RunOptions {
  /** Aborting removes a queued job (ABORTED) or aborts the running job's signal. */
  signal?: AbortSignal;
  /** Shown in stats and logs: `000000123456 read 00900200`. */
  label?: string;
}

export interface ArbiterStats {
  queued: Record<Priority, number>;
  running: { label: string; priority: Priority; forMs: number } | undefined;
  /** Jobs that ran and resolved. */
  completed: number;
  /** Jobs that ran and rejected. */
  failed: number;
  /** Polls refused because the poll queue was full. */
  skipped: number;
  /** Queued jobs removed before they ran: by their caller's signal or by `failAll`. */
  cancelled: number;
  /** Total time a job held the bus since the arbiter was created. */
  busyMs: number;
  /** Busy ms / elapsed ms over the last `windowMs` (or since creation, if younger): 0..1. */
  utilisation: number;
  windowMs: number;
}

type Job = (signal: AbortSignal) => Promise<unknown>;

interface Entry {
  priority: Priority;
  label: string;
  job: Job;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Running {
  entry: Entry;
  controller: AbortController;
  startedAt: number;
}

/**
 * Decides which job has the bus: exactly one at a time, operator > credit > alarm > batch > poll, first come first served
 * within a priority, with `gapMs` of quiet between jobs. Owns nothing but order: a job is any async function, so
 * DL/T 645 exchanges and Modbus client calls can share one arbiter when they share one wire.
 *
 * A job must not call `run` on its own arbiter and wait for it (it would wait for itself); hold the bus for
 * several exchanges by doing them all inside one job.
 *
 * @example
 * const arbiter = new BusArbiter({ name: 'bus1', gapMs: 50, maxQueuedPolls: 32 });
 * const reply = await arbiter.run('credit', (signal) => client.writeRegisters(0x100, words, signal), { label: 'top-up 42' });
 */
export class BusArbiter {
  readonly name: string;
  readonly gapMs: number;
  readonly maxQueuedPolls: number;
  readonly windowMs: number;

  readonly #timers: Timers;
  readonly #log: Logger;
  readonly #queues: Record<Priority, Entry[]> = { operator: [], credit: [], alarm: [], batch: [], poll: [] };
  readonly #createdAt: number;
  #running: Running | undefined;
  #lastEnd: number | undefined;
  #waitingForGap = false;
  #idleWaiters: Array<() => void> = [];
  /** Busy intervals that end inside the utilisation window, oldest first. */
  #intervals: Array<[start: number, end: number]> = [];
  /** Sum of the lengths of #intervals, kept as they come and go, so utilisation is O(1) on the busy path. */
  #intervalsMs = 0;
  #completed = 0;
  #failed = 0;
  #skipped = 0;
  #cancelled = 0;
  #busyMs = 0;

  constructor(opts: BusArbiterOptions = {}) {
    this.name = opts.name ?? 'bus';
    this.gapMs = opts.gapMs ?? 20;
    this.maxQueuedPolls = opts.maxQueuedPolls ?? 32;
    this.windowMs = opts.utilisationWindowMs ?? 60_000;
    if (!Number.isFinite(this.gapMs) || this.gapMs < 0) throw new TypeError(`gapMs is not a number of milliseconds ≥ 0: ${this.gapMs}`);
    if (!Number.isInteger(this.maxQueuedPolls) || this.maxQueuedPolls < 1)
      throw new TypeError(`maxQueuedPolls is not a whole number ≥ 1: ${this.maxQueuedPolls}`);
    if (!Number.isFinite(this.windowMs) || this.windowMs <= 0)
      throw new TypeError(`utilisationWindowMs is not greater than 0: ${this.windowMs}`);
    this.#timers = opts.timers ?? realTimers;
    this.#log = opts.logger ?? silentLogger;
    this.#createdAt = this.#timers.now();
  }

  /**
   * Runs `job` when the bus is its turn, and settles with what the job returns. The job's signal aborts when the
   * caller's signal does, or when the owner of the bus gives up on it (`abortRunning`).
   */
  run<T>(priority: Priority, job: (signal: AbortSignal) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    const queue = this.#queues[priority];
    if (!Array.isArray(queue)) return Promise.reject(new TypeError(`priority is not one of ${PRIORITIES.join(', ')}: ${String(priority)}`));
    const label = opts.label ?? `${priority} job`;
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(this.#abortedBeforeStart(label, signal));
    if (priority === 'poll' && queue.length >= this.maxQueuedPolls) {
      this.#skipped++;
      this.#log.debug({ event: 'poll-skipped', label, queuedPolls: queue.length }, 'poll skipped: poll queue full');
      const pct = Math.round(this.#utilisation(this.#timers.now()) * 100);
      return Promise.reject(
        BusError.skipped(
          `${this.name}: poll "${label}" skipped because ${queue.length} polls are already waiting (bus busy ${pct}% of the last ${Math.round(this.windowMs / 1000)} s); poll fewer points or less often on this bus, or split its meters over two buses`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = { priority, label, job, resolve: resolve as (value: unknown) => void, reject, signal, onAbort: undefined };
      if (signal) {
        entry.onAbort = () => {
          const i = queue.indexOf(entry);
          if (i < 0) return;
          queue.splice(i, 1);
          this.#cancelled++;
          reject(this.#abortedBeforeStart(label, signal));
          this.#notifyIdle();
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      queue.push(entry);
      this.#pump();
    });
  }

  /** Rejects every queued job with `error` (the port is gone, or the bus is closing). The running job is left alone. */
  failAll(error: Error): void {
    for (const priority of PRIORITIES) {
      const queue = this.#queues[priority];
      const entries = queue.splice(0, queue.length);
      for (const entry of entries) {
        if (entry.signal && entry.onAbort) entry.signal.removeEventListener('abort', entry.onAbort);
        this.#cancelled++;
        entry.reject(error);
      }
    }
    this.#notifyIdle();
  }

  /** Aborts the running job's signal with `reason`; the job decides how quickly it stops. */
  abortRunning(reason: Error): void {
    this.#running?.controller.abort(reason);
  }

  /** Resolves when no job is running or queued. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  stats(): ArbiterStats {
    const now = this.#timers.now();
    const running = this.#running;
    return {
      queued: {
        operator: this.#queues.operator.length,
        credit: this.#queues.credit.length,
        alarm: this.#queues.alarm.length,
        batch: this.#queues.batch.length,
        poll: this.#queues.poll.length,
      },
      running: running && { label: running.entry.label, priority: running.entry.priority, forMs: Math.round(now - running.startedAt) },
      completed: this.#completed,
      failed: this.#failed,
      skipped: this.#skipped,
      cancelled: this.#cancelled,
      busyMs: Math.round(this.#busyMs + (running ? now - running.startedAt : 0)),
      utilisation: this.#utilisation(now),
      windowMs: this.windowMs,
    };
  }

  #pump(): void {
    if (this.#running || this.#waitingForGap) return;
    const next = this.#next();
    if (!next) return;
    if (this.#lastEnd !== undefined) {
      // Only the part of the gap the line has not already been quiet for.
      const wait = this.gapMs - (this.#timers.now() - this.#lastEnd);
      if (wait > 0) {
        this.#waitingForGap = true;
        this.#timers.setTimeout(() => {
          this.#waitingForGap = false;
          this.#pump();
        }, wait);
        return;
      }
    }
    // Chosen only now, after the gap, so a job that arrived during the gap with a higher priority goes first.
    next.queue.shift();
    this.#start(next.entry);
  }

  #next(): { queue: Entry[]; entry: Entry } | undefined {
    for (const priority of PRIORITIES) {
      const queue = this.#queues[priority];
      const entry = queue[0];
      if (entry) return { queue, entry };
    }
    return undefined;
  }

  #start(entry: Entry): void {
    const controller = new AbortController();
    // A hand-made link instead of AbortSignal.any: callers may pass one long-lived signal for thousands of jobs.
    const callerSignal = entry.signal;
    if (callerSignal && entry.onAbort) callerSignal.removeEventListener('abort', entry.onAbort);
    const forward = (): void => controller.abort(callerSignal?.reason);
    callerSignal?.addEventListener('abort', forward, { once: true });
    const running: Running = { entry, controller, startedAt: this.#timers.now() };
    this.#running = running;
    this.#log.debug({ event: 'job-start', label: entry.label, priority: entry.priority }, 'job start');

    let result: Promise<unknown>;
    try {
      result = Promise.resolve(entry.job(controller.signal));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      (value) => {
        this.#completed++;
        this.#end(running, forward);
        entry.resolve(value);
        this.#afterJob();
      },
      (err: unknown) => {
        this.#failed++;
        this.#end(running, forward);
        entry.reject(err);
        this.#afterJob();
      },
    );
  }

  #end(running: Running, forward: () => void): void {
    running.entry.signal?.removeEventListener('abort', forward);
    const end = this.#timers.now();
    this.#busyMs += end - running.startedAt;
    this.#intervals.push([running.startedAt, end]);
    this.#intervalsMs += end - running.startedAt;
    this.#prune(end);
    this.#lastEnd = end;
    this.#running = undefined;
  }

  #afterJob(): void {
    this.#notifyIdle();
    this.#pump();
  }

  #isIdle(): boolean {
    return !this.#running && PRIORITIES.every((p) => this.#queues[p].length === 0);
  }

  #notifyIdle(): void {
    if (!this.#isIdle() || this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  #prune(now: number): void {
    const from = now - this.windowMs;
    let drop = 0;
    while (drop < this.#intervals.length && this.#intervals[drop]![1] <= from) {
      this.#intervalsMs -= this.#intervals[drop]![1] - this.#intervals[drop]![0];
      drop++;
    }
    if (drop > 0) this.#intervals.splice(0, drop);
  }

  #utilisation(now: number): number {
    const from = now - this.windowMs;
    // Every kept interval ends inside the window; only the oldest can start before it.
    let busy = this.#intervalsMs;
    const first = this.#intervals[0];
    if (first && first[0] < from) busy -= Math.min(first[1], from) - first[0];
    if (this.#running) busy += now - Math.max(this.#running.startedAt, from);
    const elapsed = Math.min(this.windowMs, now - this.#createdAt);
    return elapsed > 0 ? Math.min(1, busy / elapsed) : 0;
  }

  #abortedBeforeStart(label: string, signal: AbortSignal): BusError {
    const why = signal.reason instanceof Error ? `: ${signal.reason.message}` : '';
    return new BusError('ABORTED', `${this.name}: "${label}" was cancelled before it got the bus${why}`, { cause: signal.reason });
  }
}
