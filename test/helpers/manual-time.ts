import type { Clock } from '../../src/clock.js';
import { ManualTimers } from './manual-timers.js';

/**
 * A machine's two clocks, moved by the test: `advance` moves both (time passes), `stepWall` moves only the wall
 * clock (NTP or an operator setting the time); timers run on the monotonic one, as Node's do.
 */
export class ManualTime extends ManualTimers {
  readonly wall: Clock & { offset: number };

  constructor(wallStartMs: number) {
    super();
    const mono = () => this.now();
    this.wall = {
      offset: wallStartMs,
      now() {
        return mono() + this.offset;
      },
    };
  }

  /** Sets the wall clock (only), as `date -s` would. */
  stepWall(deltaMs: number): void {
    this.wall.offset += deltaMs;
  }
}
