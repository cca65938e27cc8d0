/**
 * Wall-clock time, injected so that schedules, retention windows and daily books can be tested without waiting.
 *
 * ```ts
 * const clock = new ManualClock(Date.UTC(2025, 0, 1));
 * clock.advance(60_000); // one poll cycle later
 * ```
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The real clock of the machine. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to: for tests and simulations. */
export class ManualClock implements Clock {
  #now: number;

  constructor(startMs = 0) {
    ManualClock.#check('startMs', startMs);
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  set(epochMs: number): void {
    ManualClock.#check('epochMs', epochMs);
    this.#now = epochMs;
  }

  advance(ms: number): void {
    ManualClock.#check('ms', ms);
    this.#now += ms;
  }

  static #check(name: string, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`${name} is not a finite number of milliseconds`);
  }
}

/**
 * A monotonic clock and one-shot timers. Intervals, gaps, timeouts and backoff run on this clock, which does not
 * jump when NTP or an operator steps the wall clock; wall time (`Clock`) is only for timestamps and `at:` schedules.
 */
export interface Timers {
  /** Milliseconds on a monotonic scale with an arbitrary origin (`performance.now()`). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers on `performance.now()`. */
export const realTimers: Timers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Run `fn` every `ms` on `timers` (first after `firstMs`, default `ms`) until `stop()`. The next run is armed after
 * `fn` returns, so a slow run never stacks another; a throw is the caller's to catch. A Node timer handle is unref'd:
 * a housekeeping job never keeps the process alive on its own.
 */
export function repeat(timers: Timers, ms: number, fn: () => void, firstMs: number = ms): { stop(): void } {
  let handle: unknown;
  let stopped = false;
  const arm = (delay: number) => {
    handle = timers.setTimeout(() => {
      if (stopped) return;
      try {
        fn();
      } finally {
        if (!stopped) arm(ms);
      }
    }, delay);
    (handle as { unref?: () => void }).unref?.();
  };
  arm(firstMs);
  return {
    stop() {
      stopped = true;
      timers.clearTimeout(handle);
    },
  };
}

/** Wait `ms` on `timers`: true when the time passed, false when `signal` aborted first (the wait ends at once). */
export function wait(timers: Timers, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (elapsed: boolean) => {
      timers.clearTimeout(handle);
      signal?.removeEventListener('abort', onAbort);
      resolve(elapsed);
    };
    const onAbort = () => finish(false);
    const handle = timers.setTimeout(() => finish(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
