import type { Timers } from '../../src/clock.js';

/** Lets every promise chain that is ready run to completion. */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Monotonic time that moves only when the test says so; due timers fire in order as it passes, and the promise
 * chains they start run before the next one fires.
 *
 * @example
 * const timers = new ManualTimers();
 * const bus = new FrameBus({ …, timers });
 * await timers.advance(200); // the first reopen attempt
 */
export class ManualTimers implements Timers {
  #now = 0;
  #timers: Array<{ due: number; fn: () => void; id: number }> = [];
  #nextId = 1;

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.push({ due: this.#now + Math.max(0, ms), fn, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Timers armed and not yet fired. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time without firing any timer: a blocked event loop (the timers fire late at the next `advance`). */
  stall(ms: number): void {
    this.#now += ms;
  }

  /** Moves time forward, firing due timers in order and letting the work they start run its promises. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      await settle();
      const due = this.#timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.due);
      due.fn();
    }
    this.#now = target;
    await settle();
  }
}
