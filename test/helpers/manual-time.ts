import type { Clock, Timers } from '../../src/clock.js';

/**
 * A machine's two clocks, moved by the test: `advance` moves both (time passes), `stepWall` moves only the wall
 * clock (NTP or an operator setting the time); timers run on the monotonic one, as Node's do.
 */
export class ManualTime implements Timers {
  readonly wall: Clock & { offset: number };
  #mono = 0;
  #timers: Array<{ due: number; fn: () => void; id: number }> = [];
  #nextId = 1;

  constructor(wallStartMs: number) {
    const self = this;
    this.wall = {
      offset: wallStartMs,
      now() {
        return self.#mono + this.offset;
      },
    };
  }

  now(): number {
    return this.#mono;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.push({ due: this.#mono + Math.max(0, ms), fn, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Sets the wall clock (only), as `date -s` would. */
  stepWall(deltaMs: number): void {
    this.wall.offset += deltaMs;
  }

  /** Moves both clocks without firing any timer: a blocked event loop (the timers fire late at the next `advance`). */
  stall(ms: number): void {
    this.#mono += ms;
  }

  /** Moves both clocks forward, firing due timers in order and letting the work they start run its promises. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    for (;;) {
      await settle();
      const due = this.#timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#mono = Math.max(this.#mono, due.due);
      due.fn();
    }
    this.#mono = target;
    await settle();
  }
}

/** Lets every promise chain that is ready run to completion. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
