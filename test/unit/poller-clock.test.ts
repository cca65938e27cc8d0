import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { Poller, type MeterReader, type PollTarget } from '../../src/services/poller.js';
import { openStore, type PointValue, type Store } from '../../src/store/index.js';
import { ManualTime } from '../helpers/manual-time.js';

const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
const every60s = { ...profile, groups: [{ name: 'instant', intervalMs: 60_000, points: ['voltage.a'] }] };
const daily = { ...profile, groups: [{ name: 'daily', intervalMs: 86_400_000, at: '00:10', points: ['voltage.a'] }] };
/** Four groups, as the shipped profiles have, so a step touches several tasks per meter. */
const fourGroups = {
  ...profile,
  groups: [
    { name: 'instant', intervalMs: 60_000, points: ['voltage.a'] },
    { name: 'status', intervalMs: 60_000, points: ['relay.state'] },
    { name: 'credit', intervalMs: 300_000, points: ['credit.balance.energy'] },
    { name: 'energy', intervalMs: 900_000, points: ['energy.active.import'] },
  ],
};

/** A driver stand-in that answers (or fails) from a script and notes when it was asked, on both clocks. */
class ScriptedReader implements MeterReader {
  calls: { mono: number; wall: number }[] = [];
  fail: string | undefined;
  constructor(private readonly time: ManualTime) {}
  read(names: readonly string[]): Promise<Map<string, PointValue>> {
    this.calls.push({ mono: this.time.now(), wall: this.time.wall.now() });
    if (this.fail) return Promise.reject(Object.assign(new Error(`scripted ${this.fail}`), { code: this.fail }));
    return Promise.resolve(new Map(names.map((n) => [n, { v: 229.7, unit: 'V' }])));
  }
}

const START = Date.parse('2026-11-27T08:00:00Z'); // 16:00 in Shanghai
const MIDNIGHT = Date.parse('2026-11-27T16:00:00Z'); // 00:00 in Shanghai: the daily 00:10 slot is 10 minutes away

let store: Store;
let poller: Poller | undefined;
let time: ManualTime;
let logLines: Record<string, unknown>[];
beforeEach(() => {
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-poller-clock-')), 'meterd.db'), clock: systemClock });
  logLines = [];
});
afterEach(async () => {
  await poller?.stop();
  poller = undefined;
  store.close();
});

function start(wallStart: number, targets: (t: ManualTime) => PollTarget[], extra: Partial<ConstructorParameters<typeof Poller>[0]> = {}) {
  time = new ManualTime(wallStart);
  poller = new Poller({
    targets: targets(time),
    store,
    clock: time.wall,
    timers: time,
    timeZone: 'Asia/Shanghai',
    offlineAfter: 3,
    offlineProbeMs: 300_000,
    batchMs: 10,
    logger: pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) }),
    ...extra,
  });
  poller.start();
  return poller;
}

/** One meter `m1` on bus1, its reader, and the poller. */
function startOne(wallStart: number, meterProfile: typeof profile) {
  let reader: ScriptedReader | undefined;
  const p = start(wallStart, (t) => {
    reader = new ScriptedReader(t);
    return [{ meterId: 'm1', busId: 'bus1', profile: meterProfile, reader }];
  });
  return { p, reader: reader! };
}

const latestState = (meterId: string) => statesOf(meterId).at(-1)?.state;
const stepEvents = () => logLines.filter((l) => l.event === 'clock-step');
const statesOf = (meterId: string) =>
  store.outbox
    .peek({ limit: 500 })
    .filter((m) => m.topic === `meters/${meterId}/state`)
    .map((m) => JSON.parse(m.payload) as { state: string });

describe('poller on a monotonic clock', () => {
  it('keeps polling every interval when the wall clock steps back an hour, and logs the step once with its size', async () => {
    const { reader } = startOne(START, every60s);
    await time.advance(150_000);
    expect(reader.calls.map((c) => c.mono)).toEqual([0, 60_000, 120_000]);

    time.stepWall(-3_600_000);
    await time.advance(60_000);
    // The next read comes one interval after the last one, not an hour later.
    expect(reader.calls.map((c) => c.mono)).toEqual([0, 60_000, 120_000, 180_000]);
    expect(reader.calls.at(-1)!.wall).toBe(START + 180_000 - 3_600_000);
    await time.advance(10 * 60_000);
    expect(reader.calls).toHaveLength(14);
    expect(stepEvents()).toHaveLength(1);
    expect(stepEvents()[0]).toMatchObject({ level: 40, stepMs: -3_600_000 });
    expect(poller!.stats()).toMatchObject({ polls: 14, missed: 0 });
  });

  it('a 60 s step back changes nothing in the rhythm', async () => {
    const { reader } = startOne(START, every60s);
    await time.advance(30_000);
    time.stepWall(-60_000);
    await time.advance(100_000);
    expect(reader.calls.map((c) => c.mono)).toEqual([0, 60_000, 120_000]);
    expect(stepEvents()).toEqual([expect.objectContaining({ stepMs: -60_000 })]);
  });

  it('a forward step from 1970 to now skips no slot and replays none: the next reads come on time', async () => {
    const readers: ScriptedReader[] = [];
    start(Date.parse('1970-01-01T00:00:10Z'), (t) =>
      ['m1', 'm2'].map((meterId) => {
        const reader = new ScriptedReader(t);
        readers.push(reader);
        return { meterId, busId: 'bus1', profile: fourGroups, reader };
      }),
    );
    await time.advance(12_000);
    const before = readers.map((r) => r.calls.length);
    time.stepWall(START - time.wall.now());
    await time.advance(60_000);
    // 1970 → 2026 is 9 × 10^8 one-minute slots per task: counted by the old catch-up loop one by one, none here.
    expect(poller!.stats().missed).toBe(0);
    expect(readers[0]!.calls.slice(before[0]).map((c) => c.mono)).toEqual([60_000, 60_000]);
    expect(readers[1]!.calls.slice(before[1]).map((c) => c.mono)).toEqual([30_000, 30_000]);
    expect(readers[1]!.calls.at(-1)!.wall).toBe(START - 12_000 + 30_000);
    expect(stepEvents()).toHaveLength(1);
    expect(stepEvents()[0]!.stepMs).toBe(START - Date.parse('1970-01-01T00:00:22Z'));
  });

  it('counts slots missed while the event loop was blocked in one step, without replaying them', async () => {
    const { reader } = startOne(START, every60s);
    await time.advance(1000);
    time.stall(10 * 60_000);
    await time.advance(0);
    expect(reader.calls.map((c) => c.mono)).toEqual([0, 601_000]);
    expect(poller!.stats().missed).toBe(9);
    await time.advance(60_000);
    // Back on the original grid of slots.
    expect(reader.calls.map((c) => c.mono)).toEqual([0, 601_000, 660_000]);
  });

  it('a time-of-day slot is placed again after a step back: it runs when the wall clock reads that time', async () => {
    const { reader } = startOne(MIDNIGHT, daily);
    // The clock steps back an hour five minutes before the 00:10 slot (16:10Z).
    await time.advance(5 * 60_000);
    time.stepWall(-3_600_000);
    await time.advance(30 * 60_000);
    expect(reader.calls).toHaveLength(0);
    await time.advance(40 * 60_000);
    expect(reader.calls.map((c) => new Date(c.wall).toISOString())).toEqual(['2026-11-27T16:10:00.000Z']);
    expect(reader.calls[0]!.mono).toBe(70 * 60_000);
  });

  it('a time-of-day slot already served is not served again when the clock steps back over it', async () => {
    const { reader } = startOne(MIDNIGHT, daily);
    await time.advance(20 * 60_000);
    expect(reader.calls).toHaveLength(1);
    time.stepWall(-30 * 60_000); // back to 15:50Z, before the slot just served
    await time.advance(60 * 60_000);
    expect(reader.calls).toHaveLength(1);
    await time.advance(24 * 3_600_000);
    expect(reader.calls.map((c) => new Date(c.wall).toISOString())).toEqual(['2026-11-27T16:10:00.000Z', '2026-11-28T16:10:00.000Z']);
  });

  it('a small step forward over a time-of-day slot serves it at once; a step from 1970 starts the series afresh', async () => {
    const first = startOne(MIDNIGHT, daily).reader;
    await time.advance(5 * 60_000);
    time.stepWall(15 * 60_000); // 16:05Z → 16:20Z, over the 16:10Z slot
    await time.advance(10_000);
    expect(first.calls).toHaveLength(1);
    expect(first.calls[0]!.mono).toBeLessThanOrEqual(5 * 60_000 + 10_000);

    await poller!.stop();
    const { reader } = startOne(Date.parse('1970-01-01T00:00:10Z'), daily);
    await time.advance(5_000);
    time.stepWall(MIDNIGHT - time.wall.now());
    await time.advance(9 * 60_000);
    expect(reader.calls).toHaveLength(0);
    await time.advance(2 * 60_000);
    expect(reader.calls.map((c) => new Date(c.wall).toISOString())).toEqual(['2026-11-27T16:10:00.000Z']);
  });
});

describe('poller after a bus outage', () => {
  it('probes every offline meter of a bus that came back soon, one after another, not at their slow probe', async () => {
    const readers: ScriptedReader[] = [];
    const p = start(START, (t) =>
      ['a', 'b', 'c'].map((meterId) => {
        const reader = new ScriptedReader(t);
        reader.fail = 'BUS_TIMEOUT';
        readers.push(reader);
        return { meterId, busId: 'bus1', profile: every60s, reader };
      }),
    );
    await time.advance(3 * 60_000);
    expect(p.stats().offline).toBe(3);
    for (const r of readers) r.fail = undefined;
    const at = time.now();
    const before = readers.map((r) => r.calls.length);
    p.busRecovered('bus1');
    await time.advance(1000);
    expect(readers.map((r, i) => r.calls.slice(before[i]).map((c) => c.mono - at))).toEqual([[0], [250], [500]]);
    expect(p.stats()).toMatchObject({ online: 3, offline: 0 });
    expect(logLines).toContainEqual(expect.objectContaining({ event: 'bus-recovered', bus: 'bus1', probing: 3 }));
  });

  it('an answer after a silence on the bus brings the probes of its other offline meters forward', async () => {
    const readers: ScriptedReader[] = [];
    const p = start(START, (t) =>
      ['a', 'b'].map((meterId) => {
        const reader = new ScriptedReader(t);
        reader.fail = 'BUS_TIMEOUT';
        readers.push(reader);
        return { meterId, busId: 'bus1', profile: every60s, reader };
      }),
    );
    await time.advance(3 * 60_000);
    expect(p.stats().offline).toBe(2);
    // The meters come back; 'a' is probed first (its slow probe is due earlier), and answers.
    for (const r of readers) r.fail = undefined;
    const callsOfB = readers[1]!.calls.length;
    await time.advance(5 * 60_000 - 30_000 + 1000);
    const aBack = readers[0]!.calls.at(-1)!.mono;
    // b was read within a second of a's answer, not at its own probe half a minute later.
    expect(readers[1]!.calls[callsOfB]!.mono - aBack).toBeLessThan(1000);
    expect(p.stats()).toMatchObject({ online: 2, offline: 0 });
  });

  it('one dead meter next to a live one keeps its slow probe (the live meter answering is no recovery)', async () => {
    let dead!: ScriptedReader;
    const p = start(START, (t) => {
      dead = new ScriptedReader(t);
      dead.fail = 'BUS_TIMEOUT';
      return [
        { meterId: 'live', busId: 'bus1', profile: every60s, reader: new ScriptedReader(t) },
        { meterId: 'dead', busId: 'bus1', profile: every60s, reader: dead },
      ];
    });
    await time.advance(20 * 60_000);
    // Three polls a minute apart, then one probe per five minutes, though 'live' answered in between every time.
    expect(dead.calls.map((c) => (c.mono - 30_000) / 60_000)).toEqual([0, 1, 2, 7, 12, 17]);
    expect(p.stats()).toMatchObject({ online: 1, offline: 1 });
  });

  it('marks the meters of a down bus unreachable after offlineAfter slots, and online again on their next answer', async () => {
    const { p, reader } = startOne(START, every60s);
    await time.advance(1000);
    expect(latestState('m1')).toBe('online');
    reader.fail = 'BUS_DOWN';
    await time.advance(2 * 60_000);
    expect(latestState('m1')).toBe('online');
    await time.advance(60_000);
    expect(latestState('m1')).toBe('unreachable');
    expect(logLines).toContainEqual(expect.objectContaining({ meter: 'm1', bus: 'bus1', msg: 'meter unreachable: its bus is down' }));
    // Not the meter's fault: no failure counted, the meter is not offline, and polling keeps its rhythm.
    expect(p.stats()).toMatchObject({ failures: 0, offline: 0 });
    await time.advance(5 * 60_000);
    expect(reader.calls).toHaveLength(9);
    expect(logLines.filter((l) => l.msg === 'meter unreachable: its bus is down')).toHaveLength(1);
    reader.fail = undefined;
    await time.advance(60_000);
    expect(latestState('m1')).toBe('online');
  });

  it('groups launched together count as one slot of a down bus (a meter is not unreachable on its first tick)', async () => {
    const p = start(START, (t) => {
      const reader = new ScriptedReader(t);
      reader.fail = 'BUS_DOWN';
      return [{ meterId: 'm1', busId: 'bus1', profile: fourGroups, reader }];
    });
    await time.advance(1000);
    expect(p.stats().polls).toBe(4);
    expect(latestState('m1')).toBeUndefined();
    await time.advance(2 * 60_000);
    expect(latestState('m1')).toBe('unreachable');
  });

  it('publishStates queues the current state of every meter whose state is known', async () => {
    const p = start(START, (t) => [
      { meterId: 'm1', busId: 'bus1', profile: every60s, reader: new ScriptedReader(t) },
      {
        meterId: 'm2',
        busId: 'bus1',
        profile: { ...every60s, groups: [{ ...every60s.groups[0]!, intervalMs: 3_600_000 }] },
        reader: new ScriptedReader(t),
      },
    ]);
    await time.advance(1000);
    expect(statesOf('m1')).toHaveLength(1);
    expect(statesOf('m2')).toHaveLength(0); // not read yet: nothing to say
    const firstId = store.outbox.peek({ limit: 50 }).filter((m) => m.topic === 'meters/m1/state')[0]!.id;
    p.publishStates();
    expect(statesOf('m1').map((s) => s.state)).toEqual(['online']); // the newer row supersedes the older
    expect(store.outbox.peek({ limit: 50 }).filter((m) => m.topic === 'meters/m1/state')[0]!.id).toBeGreaterThan(firstId);
    expect(statesOf('m2')).toHaveLength(0);
  });
});
