import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { Poller, type MeterReader, type PollTarget } from '../../src/services/poller.js';
import { openStore, type PointValue, type Store } from '../../src/store/index.js';

const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
// One group only, so the schedule is easy to read.
const oneGroup = { ...profile, groups: [{ name: 'instant', intervalMs: 60_000, points: ['voltage.a', 'relay.state'] }] };

/** A driver stand-in that answers from a script; the poller only sees the MeterReader interface. */
class ScriptedReader implements MeterReader {
  calls: number[] = [];
  fail: string | undefined;
  read(names: readonly string[]): Promise<Map<string, PointValue>> {
    this.calls.push(Date.now());
    if (this.fail) return Promise.reject(Object.assign(new Error(`scripted ${this.fail}`), { code: this.fail }));
    return Promise.resolve(new Map(names.map((n) => [n, n === 'relay.state' ? { v: 0, unit: '' } : { v: 229.7, unit: 'V' }])));
  }
}

let store: Store;
let poller: Poller | undefined;
beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse('2026-11-27T08:00:00Z') });
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-poller-')), 'meterd.db'), clock: systemClock });
});
afterEach(async () => {
  await poller?.stop();
  store.close();
  vi.useRealTimers();
});

function start(targets: PollTarget[], extra: Partial<ConstructorParameters<typeof Poller>[0]> = {}) {
  poller = new Poller({
    targets,
    store,
    clock: systemClock,
    timeZone: 'Asia/Shanghai',
    offlineAfter: 3,
    offlineProbeMs: 300_000,
    batchMs: 10,
    ...extra,
  });
  poller.start();
  return poller;
}

describe('poller', () => {
  it('spreads the meters of a bus over the interval instead of polling them all at :00', async () => {
    const readers = [0, 1, 2, 3].map(() => new ScriptedReader());
    const t0 = Date.now();
    start(readers.map((reader, i) => ({ meterId: `m${i}`, busId: 'bus1', profile: oneGroup, reader })));
    await vi.advanceTimersByTimeAsync(61_000);
    expect(readers.map((r) => (r.calls[0]! - t0) / 1000)).toEqual([0, 15, 30, 45]);
    expect(readers[0]!.calls.map((c) => (c - t0) / 1000)).toEqual([0, 60]);
  });

  it('lets every poll in flight listen on its stop signal without Node warning of a leak (20 buses at once)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const listening: AbortSignal[] = [];
    const answers: (() => void)[] = [];
    // As the bus arbiter does: a queued job listens on the caller's signal until it starts.
    const reader: MeterReader = {
      read: (names, opts) => {
        opts.signal?.addEventListener('abort', () => undefined, { once: true });
        if (opts.signal) listening.push(opts.signal);
        return new Promise((resolve) => answers.push(() => resolve(new Map(names.map((n) => [n, { v: 0, unit: '' }])))));
      },
    };
    start(Array.from({ length: 20 }, (_, i) => ({ meterId: `m${i}`, busId: `bus${i}`, profile: oneGroup, reader })));
    await vi.advanceTimersByTimeAsync(100);
    await new Promise((r) => process.nextTick(r));
    process.off('warning', onWarning);
    for (const answer of answers) answer();
    expect(listening).toHaveLength(20);
    expect(new Set(listening).size).toBe(1);
    expect(warnings).not.toContain('MaxListenersExceededWarning');
  });

  it('stores each reading with its read time and a readings message with seq in one transaction', async () => {
    const reader = new ScriptedReader();
    const t0 = Date.now();
    start([{ meterId: 'room-101', busId: 'bus1', profile: oneGroup, reader }]);
    await vi.advanceTimersByTimeAsync(100);
    expect(store.readings.latest('room-101')).toMatchObject({ takenAt: t0, values: { 'voltage.a': { v: 229.7, unit: 'V' } } });
    const messages = store.outbox.peek({ limit: 10 });
    const reading = messages.find((m) => m.topic === 'meters/room-101/readings')!;
    expect(JSON.parse(reading.payload)).toEqual({
      meter: 'room-101',
      ts: new Date(t0).toISOString(),
      seq: 1,
      values: { 'voltage.a': { v: 229.7, unit: 'V' }, 'relay.state': { v: 0, unit: '' } },
    });
    const state = messages.find((m) => m.topic === 'meters/room-101/state')!;
    expect(state.retain).toBe(true);
    expect(JSON.parse(state.payload)).toMatchObject({ state: 'online', relay: 'closed' });
  });

  it('marks a meter offline after N failed polls, probes it slowly, and back online on its first good reply', async () => {
    const reader = new ScriptedReader();
    reader.fail = 'BUS_TIMEOUT';
    const t0 = Date.now();
    const p = start([{ meterId: 'room-102', busId: 'bus1', profile: oneGroup, reader }], { offlineProbeMs: 300_000 });
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    // Three failures a minute apart, then one probe per five minutes instead of one poll a minute.
    expect(reader.calls.map((c) => (c - t0) / 60_000)).toEqual([0, 1, 2, 7]);
    expect(p.stats()).toMatchObject({ offline: 1, failures: 4 });
    expect(store.meterStates.get('room-102')).toMatchObject({ online: false, consecutiveFailures: 4 });
    const states = store.outbox.peek({ limit: 50 }).filter((m) => m.topic === 'meters/room-102/state');
    expect(JSON.parse(states.at(-1)!.payload)).toMatchObject({ state: 'offline' });

    reader.fail = undefined;
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(p.stats()).toMatchObject({ online: 1, offline: 0 });
    expect(
      JSON.parse(
        store.outbox
          .peek({ limit: 50 })
          .filter((m) => m.topic === 'meters/room-102/state')
          .at(-1)!.payload,
      ),
    ).toMatchObject({ state: 'online' });
  });

  it('a poll the busy bus skipped is counted as skipped, not as a meter failure', async () => {
    const reader = new ScriptedReader();
    reader.fail = 'BUS_BUSY_SKIPPED';
    const p = start([{ meterId: 'room-103', busId: 'bus1', profile: oneGroup, reader }]);
    await vi.advanceTimersByTimeAsync(3 * 60_000 + 1000);
    expect(p.stats()).toMatchObject({ skipped: 4, failures: 0, offline: 0 });
    expect(p.stats().perBus.bus1).toEqual({ polls: 4, failures: 0, skipped: 4 });
  });

  it('a group with a time of day runs after that local time', async () => {
    const reader = new ScriptedReader();
    const daily = { ...profile, groups: [{ name: 'daily', intervalMs: 86_400_000, at: '00:10', points: ['voltage.a'] }] };
    start([{ meterId: 'room-104', busId: 'bus1', profile: daily, reader }]);
    await vi.advanceTimersByTimeAsync(24 * 3_600_000);
    // 08:00Z is 16:00 in Shanghai; 00:10 local is 16:10Z.
    expect(reader.calls.map((c) => new Date(c).toISOString())).toEqual(['2026-11-27T16:10:00.000Z']);
  });

  it("retarget: a replaced meter polls its new profile's groups at their intervals at once; the neighbour keeps its slots; nothing is left behind", async () => {
    const twoGroups = {
      ...profile,
      id: 'two-groups',
      groups: [
        { name: 'fast', intervalMs: 10_000, points: ['voltage.a'] },
        { name: 'slow', intervalMs: 3_600_000, points: ['relay.state'] },
      ],
    };
    const asked: { at: number; names: string }[] = [];
    const a: MeterReader = {
      read: (names) => {
        asked.push({ at: Date.now(), names: names.join(',') });
        return Promise.resolve(new Map(names.map((n) => [n, { v: 1, unit: '' }])));
      },
    };
    const b = new ScriptedReader();
    const t0 = Date.now();
    const p = start([
      { meterId: 'a', busId: 'bus1', profile: oneGroup, reader: a },
      { meterId: 'b', busId: 'bus1', profile: oneGroup, reader: b },
    ]);
    await vi.advanceTimersByTimeAsync(61_000);
    expect(p.stats().tasks).toBe(2);
    p.retarget('a', twoGroups);
    const t1 = Date.now();
    await vi.advanceTimersByTimeAsync(60_000);
    const since = asked.filter((x) => x.at >= t1).map((x) => [(x.at - t1) / 1000, x.names]);
    // The new groups from the swap on (the meter keeps its place on the bus: phase 0), the old 60 s group no more.
    expect(since).toEqual([
      [0, 'voltage.a'],
      [0, 'relay.state'],
      [10, 'voltage.a'],
      [20, 'voltage.a'],
      [30, 'voltage.a'],
      [40, 'voltage.a'],
      [50, 'voltage.a'],
      [60, 'voltage.a'],
    ]);
    // The neighbour kept its slots: 30 s into each minute.
    expect(b.calls.map((c) => (c - t0) / 1000)).toEqual([30, 90]);
    expect(p.stats().tasks).toBe(3);
    // Swapped back and forth many times: the schedule holds one task per group of the current profile, and no more timers.
    const timers = vi.getTimerCount();
    for (let i = 0; i < 50; i++) {
      p.retarget('a', oneGroup);
      p.retarget('a', twoGroups);
    }
    expect(p.stats().tasks).toBe(3);
    expect(vi.getTimerCount()).toBe(timers);
  });
});
