import { describe, expect, it } from 'vitest';
import { BusArbiter } from '../../src/bus/arbiter.js';
import { BusError } from '../../src/bus/errors.js';
import type { Priority } from '../../src/bus/types.js';
import { ManualTimers, settle } from '../helpers/manual-timers.js';

/** A job the test finishes by hand, recording when it started. */
function gate<T = string>(value?: T) {
  let release!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  const job = {
    started: false,
    signal: undefined as AbortSignal | undefined,
    release,
    fail,
    run: async (signal: AbortSignal) => {
      job.started = true;
      job.signal = signal;
      await done;
      return value as T;
    },
  };
  return job;
}

describe('BusArbiter', () => {
  it('serves waiting jobs strictly by priority (operator, credit, alarm, batch, poll), first come first served within one', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    const order: string[] = [];
    const first = gate();
    const running = arbiter.run('poll', first.run, { label: 'first' });
    await settle();
    const queued: Array<[Priority, string]> = [
      ['poll', 'poll-1'],
      ['alarm', 'alarm-1'],
      ['poll', 'poll-2'],
      ['batch', 'batch-1'],
      ['credit', 'credit-1'],
      ['operator', 'operator-1'],
      ['alarm', 'alarm-2'],
      ['operator', 'operator-2'],
    ];
    const all = queued.map(([priority, label]) => arbiter.run(priority, async () => void order.push(label), { label }));
    expect(arbiter.stats().queued).toEqual({ operator: 2, credit: 1, alarm: 2, batch: 1, poll: 2 });

    first.release();
    await Promise.all([running, ...all]);

    expect(order).toEqual(['operator-1', 'operator-2', 'credit-1', 'alarm-1', 'alarm-2', 'batch-1', 'poll-1', 'poll-2']);
  });

  it('runs exactly one job at a time', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    let inside = 0;
    let most = 0;
    const job = async (): Promise<void> => {
      most = Math.max(most, ++inside);
      await settle();
      inside--;
    };
    await Promise.all(Array.from({ length: 20 }, (_, i) => arbiter.run(i % 2 ? 'alarm' : 'poll', job)));
    expect(most).toBe(1);
    expect(arbiter.stats().completed).toBe(20);
  });

  it('gives the caller what the job returned, or what it threw', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    await expect(arbiter.run('operator', async () => 42)).resolves.toBe(42);
    await expect(arbiter.run('operator', async () => Promise.reject(new Error('meter said no')))).rejects.toThrow('meter said no');
    await expect(
      arbiter.run('operator', () => {
        throw new Error('thrown before any await');
      }),
    ).rejects.toThrow('thrown before any await');
    expect(arbiter.stats()).toMatchObject({ completed: 1, failed: 2 });
  });

  it('keeps the line quiet for gapMs between the end of one job and the start of the next', async () => {
    const timers = new ManualTimers();
    const arbiter = new BusArbiter({ gapMs: 50, timers });
    const a = gate();
    const b = gate();
    const runA = arbiter.run('poll', a.run);
    const runB = arbiter.run('poll', b.run);
    await timers.advance(0);
    expect(a.started).toBe(true);

    a.release();
    await runA;
    await timers.advance(49);
    expect(b.started).toBe(false);
    await timers.advance(1);
    expect(b.started).toBe(true);
    b.release();
    await runB;
  });

  it('does not wait for the gap again when the line has already been quiet long enough', async () => {
    const timers = new ManualTimers();
    const arbiter = new BusArbiter({ gapMs: 50, timers });
    await arbiter.run('poll', async () => undefined);
    await timers.advance(30);

    const b = gate();
    const runB = arbiter.run('poll', b.run);
    await timers.advance(19);
    expect(b.started).toBe(false);
    await timers.advance(1);
    expect(b.started).toBe(true);
    b.release();
    await runB;

    await timers.advance(500);
    const c = gate();
    const runC = arbiter.run('poll', c.run);
    await settle();
    expect(c.started).toBe(true);
    expect(timers.pending).toBe(0);
    c.release();
    await runC;
  });

  it('lets a job that arrives during the gap with a higher priority go first', async () => {
    const timers = new ManualTimers();
    const arbiter = new BusArbiter({ gapMs: 50, timers });
    const order: string[] = [];
    const first = gate();
    const runFirst = arbiter.run('poll', first.run);
    const poll = arbiter.run('poll', async () => void order.push('poll'));
    await timers.advance(0);
    first.release();
    await runFirst;
    await timers.advance(20);
    const operator = arbiter.run('operator', async () => void order.push('operator'));
    await timers.advance(100);
    await Promise.all([poll, operator]);
    expect(order).toEqual(['operator', 'poll']);
  });

  it('refuses a poll at once with BUS_BUSY_SKIPPED when maxQueuedPolls are already waiting, and counts it', async () => {
    const arbiter = new BusArbiter({ name: 'bus1', gapMs: 0, maxQueuedPolls: 2 });
    const busy = gate();
    const running = arbiter.run('poll', busy.run);
    await settle();
    const waiting = [arbiter.run('poll', async () => 'p1'), arbiter.run('poll', async () => 'p2')];

    const refused = arbiter.run('poll', async () => 'p3', { label: 'meter 7 energy' });
    await expect(refused).rejects.toMatchObject({ code: 'BUS_BUSY_SKIPPED' });
    await expect(refused).rejects.toThrow(/bus1: poll "meter 7 energy" skipped because 2 polls are already waiting/);
    expect(arbiter.stats()).toMatchObject({ skipped: 1, queued: { poll: 2 } });

    busy.release();
    await expect(Promise.all([running, ...waiting])).resolves.toEqual([undefined, 'p1', 'p2']);
  });

  it('always queues operator, credit and alarm jobs, however many polls are waiting', async () => {
    const arbiter = new BusArbiter({ gapMs: 0, maxQueuedPolls: 1 });
    const busy = gate();
    const running = arbiter.run('poll', busy.run);
    await settle();
    const jobs = [arbiter.run('poll', async () => 'poll')];
    for (const priority of ['operator', 'credit', 'alarm'] as const) {
      for (let i = 0; i < 5; i++) jobs.push(arbiter.run(priority, async () => priority));
    }
    expect(arbiter.stats().queued).toEqual({ operator: 5, credit: 5, alarm: 5, batch: 0, poll: 1 });
    busy.release();
    await Promise.all([running, ...jobs]);
    expect(arbiter.stats()).toMatchObject({ completed: 17, skipped: 0 });
  });

  it("removes a queued job when its caller's signal aborts, rejecting it with ABORTED, and runs the rest", async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    const busy = gate();
    const running = arbiter.run('poll', busy.run);
    await settle();
    const controller = new AbortController();
    let ranCancelled = false;
    const cancelled = arbiter.run(
      'operator',
      async () => {
        ranCancelled = true;
      },
      { signal: controller.signal, label: 'relay trip' },
    );
    const kept = arbiter.run('operator', async () => 'kept');

    controller.abort();
    await expect(cancelled).rejects.toMatchObject({ code: 'ABORTED' });
    expect(arbiter.stats()).toMatchObject({ cancelled: 1, queued: { operator: 1 } });
    busy.release();
    await expect(Promise.all([running, kept])).resolves.toEqual([undefined, 'kept']);
    expect(ranCancelled).toBe(false);
  });

  it('rejects a job whose signal is already aborted without queueing it', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    let ran = false;
    await expect(
      arbiter.run(
        'operator',
        async () => {
          ran = true;
        },
        { signal: AbortSignal.abort() },
      ),
    ).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(ran).toBe(false);
  });

  it("passes the caller's abort on to the running job through the job's signal", async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    const controller = new AbortController();
    const job = gate();
    const run = arbiter.run(
      'operator',
      async (signal) => {
        const work = job.run(signal);
        await new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped by caller'))));
        return work;
      },
      { signal: controller.signal },
    );
    await settle();
    controller.abort();
    await expect(run).rejects.toThrow('stopped by caller');
    expect(job.signal?.aborted).toBe(true);
  });

  it('failAll rejects every queued job with the given error and leaves the running job to finish', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    const busy = gate('finished');
    const running = arbiter.run('credit', busy.run);
    await settle();
    const queued = (['operator', 'alarm', 'poll'] as const).map((p) => arbiter.run(p, async () => p));
    const down = new BusError('BUS_DOWN', 'port lost');

    arbiter.failAll(down);
    for (const job of queued) await expect(job).rejects.toBe(down);
    expect(busy.signal?.aborted).toBe(false);
    busy.release();
    await expect(running).resolves.toBe('finished');
    expect(arbiter.stats()).toMatchObject({ completed: 1, cancelled: 3, queued: { operator: 0, credit: 0, alarm: 0, batch: 0, poll: 0 } });
  });

  it('abortRunning aborts the running job with the given reason', async () => {
    const arbiter = new BusArbiter({ gapMs: 0 });
    const down = new BusError('BUS_DOWN', 'port lost');
    const run = arbiter.run('poll', (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))));
    await settle();
    arbiter.abortRunning(down);
    await expect(run).rejects.toBe(down);
    await expect(arbiter.idle()).resolves.toBeUndefined();
  });

  it('reports the running job, busy time and utilisation over the sliding window', async () => {
    const timers = new ManualTimers();
    const arbiter = new BusArbiter({ gapMs: 0, timers, utilisationWindowMs: 60_000 });
    const job = gate();
    const run = arbiter.run('alarm', job.run, { label: 'status word 1' });
    await timers.advance(15_000);
    expect(arbiter.stats()).toMatchObject({
      running: { label: 'status word 1', priority: 'alarm', forMs: 15_000 },
      busyMs: 15_000,
      utilisation: 1,
    });

    job.release();
    await run;
    await timers.advance(15_000);
    expect(arbiter.stats()).toMatchObject({ running: undefined, busyMs: 15_000, utilisation: 0.5 });

    // 90 s later the busy 15 s has slid out of the 60 s window; the total stays.
    await timers.advance(90_000);
    expect(arbiter.stats()).toMatchObject({ busyMs: 15_000, utilisation: 0 });

    const next = gate();
    const runNext = arbiter.run('poll', next.run);
    await timers.advance(6_000);
    next.release();
    await runNext;
    await timers.advance(24_000);
    expect(arbiter.stats().utilisation).toBeCloseTo(0.1, 10);
  });

  it('rejects options that cannot work, naming the option', () => {
    expect(() => new BusArbiter({ gapMs: -1 })).toThrow(/gapMs/);
    expect(() => new BusArbiter({ maxQueuedPolls: 0 })).toThrow(/maxQueuedPolls/);
    expect(() => new BusArbiter({ utilisationWindowMs: 0 })).toThrow(/utilisationWindowMs/);
  });
});
