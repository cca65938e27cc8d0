import { describe, expect, it } from 'vitest';
import { repeat, wait, type Timers } from '../../src/clock.js';

/** Timers the test fires by hand: `armed` lists what is pending, with its delay. */
function handTimers() {
  const armed: { fn: () => void; ms: number }[] = [];
  const timers: Timers = {
    now: () => 0,
    setTimeout: (fn, ms) => {
      const t = { fn, ms };
      armed.push(t);
      return t;
    },
    clearTimeout: (h) => {
      const i = armed.indexOf(h as (typeof armed)[number]);
      if (i >= 0) armed.splice(i, 1);
    },
  };
  const fire = () => armed.shift()!.fn();
  return { timers, armed, fire };
}

describe('repeat: a housekeeping job on injected timers', () => {
  it('runs first after firstMs, then every ms, with one timer armed at a time', () => {
    const t = handTimers();
    let runs = 0;
    repeat(t.timers, 60_000, () => runs++, 5_000);
    expect(t.armed.map((a) => a.ms)).toEqual([5_000]);
    t.fire();
    expect(runs).toBe(1);
    expect(t.armed.map((a) => a.ms)).toEqual([60_000]);
    t.fire();
    expect(runs).toBe(2);
    expect(t.armed).toHaveLength(1);
  });

  it('stop() leaves nothing armed, also when called from inside the job', () => {
    const t = handTimers();
    const job = repeat(t.timers, 1000, () => {});
    job.stop();
    expect(t.armed).toEqual([]);
    const self: { stop(): void }[] = [];
    self.push(repeat(t.timers, 1000, () => self[0]!.stop()));
    t.fire();
    expect(t.armed).toEqual([]);
  });

  it('a job that throws is armed again: one bad run does not end the schedule', () => {
    const t = handTimers();
    let runs = 0;
    repeat(t.timers, 1000, () => {
      runs++;
      throw new Error('store full');
    });
    expect(() => t.fire()).toThrow('store full');
    expect(t.armed).toHaveLength(1);
    expect(() => t.fire()).toThrow('store full');
    expect(runs).toBe(2);
  });
});

describe('wait: an abortable pause on injected timers', () => {
  it('resolves true when the time passed', async () => {
    const t = handTimers();
    const p = wait(t.timers, 3000);
    expect(t.armed.map((a) => a.ms)).toEqual([3000]);
    t.fire();
    await expect(p).resolves.toBe(true);
  });

  it('resolves false at once on an abort and leaves no timer armed', async () => {
    const t = handTimers();
    const ctl = new AbortController();
    const p = wait(t.timers, 3000, ctl.signal);
    ctl.abort();
    await expect(p).resolves.toBe(false);
    expect(t.armed).toEqual([]);
    await expect(wait(t.timers, 3000, ctl.signal)).resolves.toBe(false);
    expect(t.armed).toEqual([]);
  });
});
