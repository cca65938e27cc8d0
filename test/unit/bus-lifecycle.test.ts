import { describe, expect, it } from 'vitest';
import { BusArbiter } from '../../src/bus/arbiter.js';
import { BusLifecycle, errnoOf, type BusLifecycleOptions, type BusStateEvent } from '../../src/bus/bus-lifecycle.js';
import { BusError } from '../../src/bus/errors.js';
import { ManualClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { ManualTimers, settle } from '../helpers/manual-timers.js';

interface Conn {
  n: number;
  open: boolean;
}

const enoent = () => Object.assign(new Error('cannot open /dev/ttyUSB0: no such file or directory'), { code: 'ENOENT' });

/** A lifecycle over stand-in connections: `outcomes` says how each connect attempt ends, in order (then: success). */
function harness(outcomes: Array<Error | 'ok'> = [], opts: Partial<BusLifecycleOptions<Conn>> = {}) {
  const timers = new ManualTimers();
  const clock = new ManualClock(Date.UTC(2026, 11, 3, 8, 0, 0));
  const arbiter = new BusArbiter({ name: 'bus1', gapMs: 20, timers });
  const events: BusStateEvent[] = [];
  const attemptsAt: number[] = [];
  const disconnected: number[] = [];
  let made = 0;
  const life = new BusLifecycle<Conn>({
    id: 'bus1',
    description: '/dev/ttyUSB0 2400 8E1',
    checkHint: 'the USB adapter',
    arbiter,
    log: silentLogger,
    timers,
    clock,
    connect: async () => {
      attemptsAt.push(timers.now());
      const outcome = outcomes.shift() ?? 'ok';
      if (outcome !== 'ok') throw outcome;
      return { n: ++made, open: true };
    },
    disconnect: async (c) => {
      c.open = false;
      disconnected.push(c.n);
    },
    isOpen: (c) => c.open,
    onState: (e) => events.push(e),
    ...opts,
  });
  return { life, timers, clock, arbiter, events, attemptsAt, disconnected };
}

/** A job that stays on the wire until the test lets it go (or the bus aborts it). */
function held(life: BusLifecycle<Conn>, label: string) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const result = life.run(
    'credit',
    (signal) =>
      life.exchange(label, [signal], async () => {
        await new Promise<void>((resolve, reject) => {
          gate.then(resolve);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
        return label;
      }),
    { label },
  );
  result.catch(() => undefined);
  return { result, release };
}

describe('BusLifecycle: opening', () => {
  it('start() keeps trying until the port opens: one reopening event per distinct failure, then opened after N failed attempts', async () => {
    const { life, timers, events, attemptsAt } = harness([enoent(), enoent(), enoent()]);
    life.start();
    await timers.advance(10_000);

    expect(life.state).toBe('up');
    expect(attemptsAt).toHaveLength(4);
    expect(events.map((e) => [e.state, e.change, e.attempt])).toEqual([
      ['down', 'reopening', 1],
      ['down', 'reopening', 1],
      ['up', 'opened', 4],
    ]);
    expect(events[1]).toMatchObject({ reason: 'cannot open /dev/ttyUSB0: no such file or directory', errno: 'ENOENT', reconnects: 0 });
    expect(events[1]!.downSince).toBe('2026-12-03T08:00:00.000Z');
    // The first time up is not a reconnect.
    expect(events[2]).toMatchObject({ reason: 'opened after 3 failed attempts', reconnects: 0 });
    expect(events[2]!.downMs).toBeUndefined();
  });

  it('backs off 200, 400, 800, 1600 ms, then every 2000 ms (the default cap), on the injected timers', async () => {
    const { life, timers, attemptsAt } = harness(Array.from({ length: 7 }, enoent));
    life.start();
    await timers.advance(20_000);
    const gaps = attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]!);
    expect(attemptsAt[0]).toBe(0);
    expect(gaps).toEqual([200, 400, 800, 1600, 2000, 2000, 2000]);
  });

  it('reconnectMaxMs caps the backoff', async () => {
    const { life, timers, attemptsAt } = harness(Array.from({ length: 5 }, enoent), { reconnectMinMs: 100, reconnectMaxMs: 300 });
    life.start();
    await timers.advance(5_000);
    expect(attemptsAt.slice(1).map((t, i) => t - attemptsAt[i]!)).toEqual([100, 200, 300, 300, 300]);
  });

  it('open() rejects with what connect threw and leaves the bus down', async () => {
    const { life } = harness([enoent()]);
    await expect(life.open()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(life.state).toBe('down');
    expect(life.refusal()).toMatchObject({ code: 'BUS_DOWN' });
    await life.open();
    expect(life.state).toBe('up');
    await expect(life.open()).rejects.toThrow('bus1 is already open or opening');
  });

  it('refuses a reconnect bound that makes no sense', () => {
    expect(() => harness([], { reconnectMinMs: 500, reconnectMaxMs: 100 })).toThrow(/reconnectMinMs \(500\)/);
    expect(() => harness([], { reconnectMinMs: 0 })).toThrow(TypeError);
  });
});

describe('BusLifecycle: losing the port', () => {
  it('fails the job on the wire and the queued ones with BUS_DOWN, refuses while down, reopens and says lost → reopening → opened', async () => {
    const { life, timers, clock, events, disconnected, attemptsAt } = harness();
    await life.open();
    const onWire = held(life, 'top-up');
    const queued = life.run('poll', async () => 'never', { label: 'poll' });
    queued.catch(() => undefined);
    await settle();

    clock.advance(5_000);
    const cause = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    const err = life.goDown(cause);

    expect(err).toMatchObject({ code: 'BUS_DOWN' });
    expect(err.message).toMatch(/^bus1 lost \/dev\/ttyUSB0 2400 8E1 \(EIO: i\/o error, read\); .* \(every ≤ 2 s\): check the USB adapter$/);
    await expect(onWire.result).rejects.toMatchObject({ code: 'BUS_DOWN' });
    await expect(queued).rejects.toMatchObject({ code: 'BUS_DOWN' });
    expect(disconnected).toEqual([1]);
    expect(life.state).toBe('down');
    expect(life.refusal()?.message).toContain('since 2026-12-03T08:00:05.000Z');
    await expect(life.run('poll', async () => 'x')).rejects.toMatchObject({ code: 'BUS_DOWN' });
    // A second report of the same loss (the write failing after the read did) changes nothing.
    expect(life.goDown(new Error('write after close'))).toMatchObject({ code: 'BUS_DOWN' });

    await timers.advance(199);
    expect(attemptsAt).toHaveLength(1); // the open() only
    await timers.advance(1);
    expect(life.state).toBe('up');
    expect(events.map((e) => `${e.state}/${e.change}`)).toEqual(['up/opened', 'down/lost', 'down/reopening', 'up/opened']);
    expect(events[1]).toMatchObject({ errno: 'EIO', attempt: 0, reconnects: 0, downSince: '2026-12-03T08:00:05.000Z' });
    expect(events[3]).toMatchObject({ reason: 'opened', attempt: 1, reconnects: 1, downMs: 200 });
    expect(events[3]!.downSince).toBeUndefined();
    await expect(life.run('poll', (s) => life.exchange('after', [s], async (c) => c.n))).resolves.toBe(2);
  });

  it('waits for the lost connection to be released before the first reopen attempt', async () => {
    let releaseDisconnect!: () => void;
    const { life, timers, attemptsAt } = harness([], {
      disconnect: () => new Promise<void>((resolve) => (releaseDisconnect = resolve)),
    });
    await life.open();
    life.goDown(new Error('EIO'));
    await timers.advance(5_000);
    expect(attemptsAt).toHaveLength(1);
    releaseDisconnect();
    await timers.advance(200);
    expect(attemptsAt).toHaveLength(2);
    expect(life.state).toBe('up');
  });

  it('counts every return after a loss in reconnects', async () => {
    const { life, timers, events } = harness();
    await life.open();
    for (let i = 0; i < 3; i++) {
      life.goDown(new Error(`EIO ${i}`));
      await timers.advance(1_000);
    }
    expect(life.reconnects).toBe(3);
    expect(events.at(-1)).toMatchObject({ change: 'opened', reconnects: 3 });
  });

  it('a listener that throws does not stop the bus from going down and coming back', async () => {
    const { life, timers } = harness([], {
      onState: () => {
        throw new Error('listener bug');
      },
    });
    await life.open();
    life.goDown(new Error('EIO'));
    await timers.advance(200);
    expect(life.state).toBe('up');
  });
});

describe('BusLifecycle: closing', () => {
  it('close() stops the reopen loop: no more attempts, BUS_CLOSED from then on', async () => {
    const { life, timers, events, attemptsAt } = harness(Array.from({ length: 100 }, enoent));
    life.start();
    await timers.advance(1_000);
    const before = attemptsAt.length;
    await life.close();
    await timers.advance(60_000);
    expect(attemptsAt).toHaveLength(before);
    expect(life.state).toBe('closed');
    expect(events.at(-1)).toMatchObject({ state: 'closed', change: 'closed', reason: 'closed by meterd' });
    await expect(life.run('poll', async () => 'x')).rejects.toMatchObject({ code: 'BUS_CLOSED' });
    await expect(life.open()).rejects.toMatchObject({ code: 'BUS_CLOSED' });
  });

  it('lets the job on the wire finish, refuses the queued ones, then releases the port', async () => {
    const { life, timers, disconnected } = harness();
    await life.open();
    const onWire = held(life, 'top-up');
    const queued = life.run('poll', async () => 'never');
    queued.catch(() => undefined);
    await settle();
    const closed = life.close();
    await expect(queued).rejects.toMatchObject({ code: 'BUS_CLOSED' });
    await timers.advance(1_000);
    expect(disconnected).toEqual([]);
    onWire.release();
    await expect(onWire.result).resolves.toBe('top-up');
    await closed;
    expect(disconnected).toEqual([1]);
  });

  it('aborts the job on the wire with BUS_CLOSED after closeTimeoutMs', async () => {
    const { life, timers, disconnected } = harness([], { closeTimeoutMs: 3_000 });
    await life.open();
    const onWire = held(life, 'stuck');
    await settle();
    const closed = life.close();
    await timers.advance(2_999);
    expect(disconnected).toEqual([]);
    await timers.advance(1);
    await expect(onWire.result).rejects.toMatchObject({
      code: 'BUS_CLOSED',
      message: expect.stringContaining('while a job was on the wire'),
    });
    await closed;
    expect(disconnected).toEqual([1]);
  });
});

describe('BusLifecycle: inside a job', () => {
  it('keeps the turnaround gap between frames on the injected timers', async () => {
    const { life, timers } = harness();
    await life.open();
    const sent: number[] = [];
    const job = life.session('operator', {}, async (signal) => {
      for (let i = 0; i < 3; i++) {
        await life.turnaround([signal], 'frame');
        await life.exchange('frame', [signal], async () => sent.push(timers.now()));
        life.exchangeEnded();
      }
    });
    await timers.advance(100);
    await job;
    expect(sent).toEqual([0, 20, 40]);
  });

  it('refuses a request after its session ended, and a second request while one is out', async () => {
    const { life } = harness();
    await life.open();
    let later: (() => Error | undefined) | undefined;
    await life.session('operator', { label: 'read-back' }, async (signal, ended) => {
      later = ended;
      expect(ended()).toBeUndefined();
      let release!: () => void;
      const first = life.exchange('first', [signal], () => new Promise<void>((r) => (release = r)));
      await expect(life.exchange('second', [signal], async () => undefined)).rejects.toThrow(
        '"second" was sent on bus1 while another request of the same session was still waiting for its reply',
      );
      release();
      await first;
    });
    expect(later?.()?.message).toBe('a session on bus1 was used after it ended ("read-back")');
  });

  it('refuses a request whose signal already fired with ABORTED, or the BusError it carries', async () => {
    const { life } = harness();
    await life.open();
    const c = new AbortController();
    c.abort(new Error('caller gave up'));
    await expect(life.exchange('x', [c.signal], async () => 1)).rejects.toMatchObject({ code: 'ABORTED' });
    const d = new AbortController();
    d.abort(new BusError('BUS_DOWN', 'gone'));
    await expect(life.exchange('x', [d.signal], async () => 1)).rejects.toMatchObject({ code: 'BUS_DOWN', message: 'gone' });
  });
});

describe('errnoOf', () => {
  it('finds the system error code on the error, its causes, or in serialport-style text', () => {
    expect(errnoOf(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(errnoOf(new BusError('PORT_OPEN_FAILED', 'cannot open', { cause: Object.assign(new Error('y'), { code: 'EACCES' }) }))).toBe(
      'EACCES',
    );
    expect(errnoOf(new Error('device disconnected: EIO: i/o error, read'))).toBe('EIO');
    expect(errnoOf(new Error('Error: No such file or directory, cannot open /dev/ttyUSB0'))).toBe('ENOENT');
    expect(errnoOf(new Error('bad file descriptor'))).toBe('EBADF');
    expect(errnoOf(new Error('EOF: the device hung up'))).toBe('EOF');
    expect(errnoOf(new Error('closed unexpectedly'))).toBeUndefined();
  });
});
