import { setMaxListeners } from 'node:events';
import { realTimers, type Clock, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import type { DeviceProfile, PointGroup } from '../profiles/types.js';
import {
  enqueue,
  insertReadings,
  upsertMeterState,
  type MeterBalance,
  type PointValue,
  type Reading,
  type RelayState,
  type Store,
  type Tx,
} from '../store/index.js';
import { nextLocalTime, phaseOffset } from './schedule.js';
import { enqueueMeterState } from './meter-state-message.js';
import { MinHeap } from './task-queue.js';

import type { Priority } from '../devices/dlt645-meter.js';

export type { Priority };

/** What the poller needs from a driver: read these points now, at this priority. */
export interface MeterReader {
  read(names: readonly string[], opts: { priority: Priority; signal?: AbortSignal }): Promise<Map<string, PointValue>>;
}

/**
 * Sees every poll result inside the transaction that stores it (the alert detectors), so what it writes commits or
 * rolls back with the reading.
 */
export interface PollObserver {
  reading(tx: Tx, meterId: string, at: number, values: Readonly<Record<string, PointValue>>): void;
  failure(tx: Tx, meterId: string, at: number, info: { failures: number; offline: boolean; code: string }): void;
  batchEnd(tx: Tx): void;
  /** The batch's transaction failed: forget what was observed in it. */
  rolledBack(): void;
  /** The batch committed (before the uplink is woken): make durable what must be. */
  committed?(): void;
}

export interface PollTarget {
  readonly meterId: string;
  readonly busId: string;
  readonly profile: DeviceProfile;
  readonly reader: MeterReader;
  /** The address of the physical meter serving the point now (a replacement changes it), carried in each reading. */
  readonly address?: () => string | undefined;
}

export interface PollerOptions {
  targets: readonly PollTarget[];
  store: Store;
  clock: Clock;
  timeZone: string;
  /** Interval overrides by group name (config `polling.intervals`). */
  intervalsMs?: Readonly<Record<string, number>>;
  /** Consecutive failed polls before a meter is marked offline. */
  offlineAfter: number;
  /** How often an offline meter is probed. */
  offlineProbeMs: number;
  logger?: Logger;
  /** Called after each commit, so the uplink drains without waiting for its poll. */
  onCommitted?: () => void;
  /** Monotonic time for intervals, probes and backoff; `clock` (wall time) is only for timestamps and `at:` slots. */
  timers?: Timers;
  /** Results are committed in one transaction per batch window (one fsync per poll cycle, not per reading). */
  batchMs?: number;
  observer?: PollObserver;
  /** A meter answered for the first time since start, or after being offline (after the commit that says so). */
  onMeterOnline?: (meterId: string) => void;
  /** Whether the wall clock is known to be right; readings taken while it is not are flagged `unsynced`. */
  clockTrust?: { synced(): boolean };
}

interface Task {
  readonly target: PollTarget;
  readonly group: PointGroup;
  readonly intervalMs: number;
  /** Where this meter sits in the spread of its bus over the interval (so a bus is never flooded at :00). */
  readonly phaseMs: number;
  /** Monotonic time of the next slot. */
  nextDue: number;
  /** `at:` groups only: the wall time of the slot placed next, and of the slot last served. */
  wallDue?: number;
  servedWall?: number;
}

interface MeterHealth {
  online: boolean | null;
  failures: number;
  lastGood: number | null;
  /** Monotonic time before which an offline meter is not probed again. */
  nextProbe: number;
  /** Consecutive poll slots that found the meter's bus down (not the meter's fault, but the station must know). */
  busDownSlots: number;
  /** The tick of the last slot counted: groups launched together are one slot. */
  busDownTick: number;
  unreachable: boolean;
  relay?: RelayState;
  balance?: MeterBalance;
  inFlight: number;
}

export interface PollerStats {
  polls: number;
  failures: number;
  skipped: number;
  missed: number;
  readingsStored: number;
  /** Poll results dropped, oldest first, because the store could not commit them and the held batch was full. */
  unstored: number;
  online: number;
  offline: number;
  /** Meters whose bus has been down for `offlineAfter` poll slots: not their fault, but not read either. */
  unreachable: number;
  /** Poll tasks on the schedule: one per meter and group of its profile. */
  tasks: number;
  perBus: Record<string, { polls: number; failures: number; skipped: number }>;
}

type Outcome =
  | { kind: 'ok'; target: PollTarget; takenAt: number; values: Map<string, PointValue>; address?: string }
  | { kind: 'failed'; target: PollTarget; at: number; mono: number; code: string; message: string }
  | { kind: 'unreachable'; target: PollTarget };

/** Poll results held in memory while the store cannot commit them (a full disk); beyond this the oldest go. */
const MAX_HELD_OUTCOMES = 1_000;
/** How often a batch the store refused is tried again. */
const STORE_RETRY_MS = 5_000;

/** Codes that mean the meter did not answer at all (as opposed to refusing one item). */
const NO_ANSWER = new Set(['BUS_TIMEOUT', 'METER_TIMEOUT', 'MODBUS_TIMEOUT']);

/**
 * Wall and monotonic time disagreeing by more than this between two looks is a step (NTP correcting a fast clock, an
 * operator, a gateway without RTC getting its first time), not drift: NTP slews at most 0.5 ms/s.
 */
const CLOCK_STEP_MS = 2_000;
/** The longest the poller sleeps without comparing the clocks, so a step is seen and `at:` slots re-placed promptly. */
const STEP_CHECK_MS = 10_000;
/** Offline meters of a recovered bus are probed this far apart, so their probes do not crowd out routine polls. */
const RECOVERY_STAGGER_MS = 250;
/** An answer after a silence re-probes the bus's offline meters at most this often (one flaky meter must not make every answer a probe burst). */
const RECOVERY_MIN_GAP_MS = 60_000;
/** Node's setTimeout limit (2^31 − 1 ms); longer delays fire at once. */
const MAX_TIMER_MS = 2_147_000_000;

/**
 * Schedules every meter's profile groups on its bus and stores what comes back. Meters are spread over each
 * interval; a busy bus skips routine polls (counted) instead of queueing them; a meter that keeps failing is
 * marked offline and only probed slowly, so one dead meter cannot eat a 2400-baud bus.
 */
export class Poller {
  /** The targets as polled now: a replacement with another profile puts a new target in its place (retarget). */
  private readonly targets: PollTarget[];
  private tasks = new MinHeap<Task>();
  private taskCount = 0;
  private readonly tasksOf = new Map<string, Task[]>();
  /** Per bus: the online meters that got no answer since anything on the bus last answered. */
  private readonly busSilent = new Map<string, Set<string>>();
  private readonly lastRecovery = new Map<string, number>();
  private readonly probeTimers = new Set<unknown>();
  /** Wall and monotonic time at the last look, to see a wall-clock step. */
  private lastWall = 0;
  private lastMono = 0;
  private ticks = 0;
  private readonly health = new Map<string, MeterHealth>();
  /** Meters that answered since this poller started (the first answer after a start counts as coming online). */
  private readonly answeredSinceStart = new Set<string>();
  private readonly pending: Outcome[] = [];
  private readonly running = new Set<Promise<void>>();
  // One signal for every poll of every bus: each queued poll listens on it (removed when it starts), so a gateway of
  // 2,000 meters holds hundreds at once. Node's leak warning counts 10, which is no limit here.
  private readonly abort = unlimitedAbortController();
  private readonly timers: Timers;
  private readonly log: Logger;
  private timer: unknown;
  private flushTimer: unknown;
  private stopped = true;
  /** The last commit failed: results wait in `pending` and the next try is STORE_RETRY_MS later. */
  private storeFailing = false;
  private readonly counters: PollerStats = {
    polls: 0,
    failures: 0,
    skipped: 0,
    missed: 0,
    readingsStored: 0,
    unstored: 0,
    online: 0,
    offline: 0,
    unreachable: 0,
    tasks: 0,
    perBus: {},
  };

  constructor(private readonly opts: PollerOptions) {
    this.timers = opts.timers ?? realTimers;
    this.log = (opts.logger ?? silentLogger).child({ component: 'poller' });
    this.targets = [...opts.targets];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const wall = this.opts.clock.now();
    const mono = this.timers.now();
    this.lastWall = wall;
    this.lastMono = mono;
    const byBus = new Map<string, PollTarget[]>();
    for (const t of this.targets) byBus.set(t.busId, [...(byBus.get(t.busId) ?? []), t]);
    for (const [busId, targets] of byBus) {
      this.counters.perBus[busId] = { polls: 0, failures: 0, skipped: 0 };
      targets.forEach((target, i) => {
        this.healthOf(target.meterId);
        this.schedule(target, i, targets.length, wall, mono);
      });
    }
    this.log.info({ meters: this.targets.length, tasks: this.taskCount }, 'polling started');
    this.arm();
  }

  /**
   * The point's meter was replaced by a model of another profile (docs/lifecycle.md): from now on it is polled with
   * that profile's groups at their intervals, without a restart. Its old tasks leave the schedule at once (nothing of
   * them stays in the queue); the other meters keep their slots. A read of the old meter still on the wire is refused
   * by the point's drivers (METER_REPLACED) and dropped.
   */
  retarget(meterId: string, profile: DeviceProfile): void {
    const i = this.targets.findIndex((t) => t.meterId === meterId);
    if (i < 0 || this.targets[i]!.profile === profile) return;
    const target: PollTarget = { ...this.targets[i]!, profile };
    this.targets[i] = target;
    if (this.stopped) return; // start() schedules from the targets as they are then
    const dropped = this.tasksOf.get(meterId)?.length ?? 0;
    const kept = new MinHeap<Task>();
    for (let task = this.tasks.pop(); task !== undefined; task = this.tasks.pop())
      if (task.target.meterId !== meterId) kept.push(task.nextDue, task);
    this.tasks = kept;
    this.tasksOf.delete(meterId);
    this.taskCount -= dropped;
    const onBus = this.targets.filter((t) => t.busId === target.busId);
    this.schedule(target, onBus.indexOf(target), onBus.length, this.opts.clock.now(), this.timers.now());
    this.log.info(
      { meter: meterId, profile: profile.id, groups: profile.groups.map((g) => g.name), dropped, tasks: this.taskCount },
      "meter polled with its new profile's groups",
    );
    this.arm();
  }

  /** Puts a meter's groups on the schedule, spread by its place `i` among the `n` meters of its bus. */
  private schedule(target: PollTarget, i: number, n: number, wall: number, mono: number): void {
    const tasks: Task[] = [];
    for (const group of target.profile.groups) {
      const intervalMs = this.opts.intervalsMs?.[group.name] ?? group.intervalMs;
      const phaseMs = phaseOffset(i, n, group.at ? Math.min(intervalMs, 600_000) : intervalMs);
      const task: Task = { target, group, intervalMs, phaseMs, nextDue: mono + phaseMs };
      if (group.at) {
        task.wallDue = nextLocalTime(wall, group.at, this.opts.timeZone) + phaseMs;
        task.nextDue = mono + (task.wallDue - wall);
      }
      this.tasks.push(task.nextDue, task);
      tasks.push(task);
    }
    this.tasksOf.set(target.meterId, tasks);
    this.taskCount += tasks.length;
  }

  /** Stop scheduling, let the exchanges in flight finish, and commit what they produced. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    for (const t of this.probeTimers) this.timers.clearTimeout(t);
    this.probeTimers.clear();
    await Promise.allSettled([...this.running]);
    this.abort.abort();
    this.flush();
    if (this.pending.length > 0) {
      this.log.error({ unstored: this.pending.length }, 'poll results the store could not take are lost with the stop');
    }
  }

  stats(): PollerStats {
    let online = 0;
    let offline = 0;
    let unreachable = 0;
    for (const h of this.health.values()) {
      if (h.online === true) online++;
      if (h.online === false) offline++;
      if (h.unreachable) unreachable++;
    }
    return {
      ...this.counters,
      online,
      offline,
      unreachable,
      tasks: this.taskCount,
      perBus: structuredClone(this.counters.perBus),
    };
  }

  /** Poll one meter's points now (a `read` command or a technician's request goes through the same store path). */
  async pollNow(meterId: string, points?: readonly string[], priority: Priority = 'operator'): Promise<Map<string, PointValue>> {
    const target = this.targets.find((t) => t.meterId === meterId);
    if (!target) throw Object.assign(new Error(`no meter ${meterId}`), { code: 'UNKNOWN_METER' });
    const names = points ?? [...new Set(target.profile.groups.flatMap((g) => g.points))];
    const values = await target.reader.read(names, { priority, signal: this.abort.signal });
    this.pending.push({ kind: 'ok', target, takenAt: this.opts.clock.now(), values, address: target.address?.() });
    this.flush();
    return values;
  }

  /**
   * The bus is back (its port reopened, or a meter on it answered after a silence): probe its offline meters soon,
   * one after another, instead of each at its next slow probe (up to `offlineProbe` later).
   */
  busRecovered(busId: string): void {
    if (this.stopped) return;
    const mono = this.timers.now();
    this.lastRecovery.set(busId, mono);
    this.busSilent.delete(busId);
    let n = 0;
    for (const target of this.targets) {
      const h = this.health.get(target.meterId);
      if (target.busId !== busId || h?.online !== false) continue;
      const at = mono + n * RECOVERY_STAGGER_MS;
      h.nextProbe = at;
      const handle = this.timers.setTimeout(() => {
        this.probeTimers.delete(handle);
        // A routine slot that probed it first moved nextProbe on: one probe is enough.
        if (!this.stopped && h.online === false && h.nextProbe === at) this.probe(target, h);
      }, at - mono);
      this.probeTimers.add(handle);
      n++;
    }
    if (n > 0) this.log.info({ event: 'bus-recovered', bus: busId, probing: n }, 'bus back: probing its offline meters');
  }

  /**
   * Queue the current state of every meter whose state is known (retained `meters/<id>/state`): at start and after
   * the broker lost its retained messages, so a station that subscribes later sees quiet meters too.
   */
  publishStates(): void {
    const known = this.targets.filter((t) => this.healthOf(t.meterId).online !== null);
    if (known.length === 0) return;
    this.opts.store.transaction((tx) => {
      for (const t of known) this.publishState(tx, t, this.healthOf(t.meterId));
    });
    this.opts.onCommitted?.();
  }

  private arm(): void {
    if (this.stopped) return;
    this.timers.clearTimeout(this.timer);
    const next = this.tasks.peekKey();
    if (next === undefined) return;
    const delay = Math.max(0, next - this.timers.now());
    this.timer = this.timers.setTimeout(() => this.tick(), Math.min(delay, STEP_CHECK_MS, MAX_TIMER_MS));
  }

  private tick(): void {
    if (this.stopped) return;
    const mono = this.timers.now();
    const wall = this.opts.clock.now();
    this.ticks++;
    this.checkClockStep(mono, wall);
    const probed = new Set<string>();
    const due: Task[] = [];
    while ((this.tasks.peekKey() ?? Infinity) <= mono) due.push(this.tasks.pop()!);
    for (const task of due) {
      const h = this.health.get(task.target.meterId)!;
      if (task.wallDue !== undefined) {
        task.servedWall = task.wallDue;
        this.counters.missed += this.placeAt(task, Math.max(wall, task.wallDue), wall, mono);
      } else {
        // Skip missed slots without replaying them (a stale poll is worth nothing), counted in one step: a blocked
        // event loop or a long sleep costs no work proportional to its length.
        const slots = Math.floor((mono - task.nextDue) / task.intervalMs) + 1;
        task.nextDue += slots * task.intervalMs;
        this.counters.missed += slots - 1;
      }
      this.tasks.push(task.nextDue, task);
      // An offline meter is only probed, once per probe period, so it cannot eat the bus.
      if (h.online === false) {
        if (mono < h.nextProbe || probed.has(task.target.meterId)) continue;
        probed.add(task.target.meterId);
        h.nextProbe = mono + this.opts.offlineProbeMs;
      }
      this.launch(task);
    }
    this.arm();
  }

  /**
   * Place an `at:` task on the first slot of its series (every `intervalMs` from the first local `at` time) after
   * `afterWall`, converted to monotonic time. Returns how many slots of the series were skipped.
   */
  private placeAt(task: Task, afterWall: number, wall: number, mono: number): number {
    const anchor = task.wallDue!;
    const k = Math.floor((afterWall - anchor) / task.intervalMs) + 1;
    task.wallDue = anchor + k * task.intervalMs;
    task.nextDue = mono + (task.wallDue - wall);
    return Math.max(0, k - 1);
  }

  /**
   * Intervals run on monotonic time and do not care about the wall clock; `at:` slots do. After a step they are
   * placed again from the new wall time (a slot served less than one interval ago is not served twice, a slot
   * stepped over by less than one interval is served at once), and the step is logged once with its size.
   */
  private checkClockStep(mono: number, wall: number): void {
    const stepMs = wall - this.lastWall - (mono - this.lastMono);
    this.lastWall = wall;
    this.lastMono = mono;
    if (Math.abs(stepMs) <= CLOCK_STEP_MS) return;
    this.log.warn(
      { event: 'clock-step', stepMs: Math.round(stepMs), wallTime: new Date(wall).toISOString() },
      `wall clock stepped ${stepMs > 0 ? 'forward' : 'back'}; polling intervals are unaffected, time-of-day slots re-placed`,
    );
    const all: Task[] = [];
    while (this.tasks.size > 0) all.push(this.tasks.pop()!);
    const heap = new MinHeap<Task>();
    for (const task of all) {
      if (task.wallDue !== undefined) {
        const served = task.servedWall;
        const recent = served !== undefined && served > wall && served - wall < task.intervalMs;
        // A small step forward over a slot serves it now; a big one (a gateway booted at 1970) starts the series afresh.
        if (task.wallDue <= wall && stepMs < task.intervalMs) task.nextDue = mono;
        else this.placeAt(task, recent ? served : wall, wall, mono);
      }
      heap.push(task.nextDue, task);
    }
    this.tasks = heap;
  }

  /** One read of an offline meter now, on its shortest routine group (a time-of-day group such as a daily freeze keeps to its slot). */
  private probe(target: PollTarget, h: MeterHealth): void {
    let task: Task | undefined;
    for (const t of this.tasksOf.get(target.meterId) ?? []) {
      if (t.wallDue === undefined && (task === undefined || t.intervalMs < task.intervalMs)) task = t;
    }
    task ??= this.tasksOf.get(target.meterId)?.[0];
    if (!task) return;
    h.nextProbe = this.timers.now() + this.opts.offlineProbeMs;
    this.launch(task);
  }

  private launch(task: Task): void {
    const { target, group } = task;
    const h = this.health.get(target.meterId)!;
    const tick = this.ticks;
    h.inFlight++;
    this.counters.polls++;
    this.counters.perBus[target.busId]!.polls++;
    const p = target.reader
      .read(group.points, { priority: 'poll', signal: this.abort.signal })
      .then(
        (values) => this.record({ kind: 'ok', target, takenAt: this.opts.clock.now(), values, address: target.address?.() }),
        (err: unknown) => {
          const code = (err as { code?: string }).code ?? 'ERROR';
          if (code === 'BUS_BUSY_SKIPPED') {
            this.counters.skipped++;
            this.counters.perBus[target.busId]!.skipped++;
            return;
          }
          if (code === 'BUS_DOWN') {
            // Not the meter's fault, so not a failure; but after as many slots as would make it offline the station is told.
            if (h.busDownTick === tick) return;
            h.busDownTick = tick;
            if (++h.busDownSlots === this.opts.offlineAfter && !h.unreachable) this.record({ kind: 'unreachable', target });
            return;
          }
          if (code === 'BUS_CLOSED' || code === 'ABORTED') return; // shutting down
          // The meter was replaced while this read was on the wire: neither the old meter's reading nor a failure of the new one.
          if (code === 'METER_REPLACED') return;
          this.record({
            kind: 'failed',
            target,
            at: this.opts.clock.now(),
            mono: this.timers.now(),
            code,
            message: (err as Error).message,
          });
        },
      )
      .finally(() => {
        h.inFlight--;
        this.running.delete(p);
      });
    this.running.add(p);
  }

  private record(o: Outcome): void {
    this.pending.push(o);
    this.armFlush();
  }

  private armFlush(): void {
    if (this.flushTimer !== undefined) return;
    this.flushTimer = this.timers.setTimeout(
      () => {
        this.flushTimer = undefined;
        this.flush();
      },
      this.storeFailing ? STORE_RETRY_MS : (this.opts.batchMs ?? 50),
    );
  }

  /** Commit readings, their outbox messages and meter states together, then wake the uplink. */
  private flush(): void {
    if (this.flushTimer !== undefined) {
      this.timers.clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.pending.length === 0) return;
    const batch = this.pending.splice(0);
    const { store } = this.opts;
    // The transaction updates meter health as it goes; a batch the store refuses is tried again from the same start.
    const healthBefore = new Map<string, MeterHealth>();
    const countersBefore = structuredClone(this.counters);
    let stored = 0;
    try {
      for (const o of batch) healthBefore.set(o.target.meterId, { ...this.healthOf(o.target.meterId) });
      const observer = this.opts.observer;
      const unsynced = this.opts.clockTrust?.synced() === false;
      store.transaction((tx) => {
        const readings: Reading[] = [];
        for (const o of batch) {
          const h = this.healthOf(o.target.meterId);
          if (o.kind === 'ok') {
            const values = Object.fromEntries(o.values);
            const answered =
              Object.values(values).some((v) => 'v' in v) || !Object.values(values).some((v) => 'error' in v && NO_ANSWER.has(v.error));
            const { seq } = enqueue(tx, {
              topic: `meters/${o.target.meterId}/readings`,
              class: 'telemetry',
              payload: {
                meter: o.target.meterId,
                ...(o.address !== undefined ? { address: o.address } : {}),
                ts: new Date(o.takenAt).toISOString(),
                values,
                ...(unsynced ? { unsynced } : {}),
              },
              seqStream: 'readings',
            });
            readings.push({
              meterId: o.target.meterId,
              takenAt: o.takenAt,
              values,
              ...(o.address !== undefined ? { address: o.address } : {}),
              ...(unsynced ? { unsynced } : {}),
              ...(seq !== null ? { seq } : {}),
            });
            if (answered) {
              this.markGood(tx, o.target, h, o.takenAt, values);
              observer?.reading(tx, o.target.meterId, o.takenAt, values);
            }
          } else if (o.kind === 'failed') {
            this.markFailed(tx, o.target, h, o, o.code, o.message);
            observer?.failure(tx, o.target.meterId, o.at, { failures: h.failures, offline: h.online === false, code: o.code });
          } else {
            this.markUnreachable(tx, o.target, h);
          }
        }
        if (readings.length > 0) insertReadings(tx, readings);
        observer?.batchEnd(tx);
        stored = readings.length;
      });
    } catch (err) {
      this.opts.observer?.rolledBack();
      for (const [meterId, before] of healthBefore) {
        const h = this.health.get(meterId)!;
        Object.assign(h, { ...before, inFlight: h.inFlight });
      }
      Object.assign(this.counters, countersBefore);
      this.hold(batch, err);
      return;
    }
    this.counters.readingsStored += stored;
    try {
      this.opts.observer?.committed?.();
    } catch (err) {
      this.log.error({ err }, 'what the poll committed could not be made durable now; it will be at the next checkpoint');
    }
    if (this.storeFailing) {
      this.storeFailing = false;
      this.log.warn({ stored, unstored: this.counters.unstored }, 'the store takes poll results again');
    }
    this.opts.onCommitted?.();
  }

  /**
   * A commit failed. A store that cannot write (full disk, I/O error) may recover: keep the batch, bounded, and try
   * again later. Anything else (a value the store refuses) would fail the same way for ever: drop the batch, loudly.
   */
  private hold(batch: Outcome[], err: unknown): void {
    const code = (err as { code?: unknown } | null)?.code;
    const transient = typeof code === 'string' && (code.startsWith('SQLITE_') || code === 'ENOSPC' || code === 'EIO');
    if (!transient) {
      this.log.error({ err, dropped: batch.length }, 'poll results the store refuses were dropped');
      return;
    }
    this.pending.unshift(...batch);
    const over = this.pending.length - MAX_HELD_OUTCOMES;
    if (over > 0) {
      // Dropped before they got a seq: the station sees missed poll slots, not a gap.
      this.pending.splice(0, over);
      this.counters.unstored += over;
    }
    if (!this.storeFailing) {
      this.storeFailing = true;
      this.log.error(
        { code, held: this.pending.length, maxHeld: MAX_HELD_OUTCOMES, retryMs: STORE_RETRY_MS },
        'poll results cannot be stored; holding them in memory and retrying',
      );
    }
    if (!this.stopped) this.armFlush();
  }

  /** A meter's health, from the store the first time it is needed (pollNow may run before start). */
  private healthOf(meterId: string): MeterHealth {
    let h = this.health.get(meterId);
    if (!h) {
      const stored = this.opts.store.meterStates.get(meterId);
      h = {
        online: stored ? stored.online : null,
        failures: stored?.consecutiveFailures ?? 0,
        lastGood: stored?.lastGoodReadAt ?? null,
        nextProbe: this.timers.now(),
        busDownSlots: 0,
        busDownTick: -1,
        unreachable: false,
        relay: stored?.relayState ?? undefined,
        balance: stored?.balance ?? undefined,
        inFlight: 0,
      };
      this.health.set(meterId, h);
    }
    return h;
  }

  private markGood(tx: Tx, target: PollTarget, h: MeterHealth, at: number, values: Record<string, PointValue>): void {
    const relay = relayOf(values);
    const balance = balanceOf(values);
    const wasOnline = h.online;
    const changed =
      wasOnline !== true ||
      h.unreachable ||
      (relay !== undefined && relay !== h.relay) ||
      (balance !== undefined && JSON.stringify(balance) !== JSON.stringify(h.balance));
    h.online = true;
    h.failures = 0;
    h.lastGood = at;
    h.busDownSlots = 0;
    h.unreachable = false;
    this.answeredOn(target.busId, target.meterId);
    if (relay !== undefined) h.relay = relay;
    if (balance !== undefined) h.balance = { ...h.balance, ...balance };
    upsertMeterState(tx, target.meterId, {
      online: true,
      consecutiveFailures: 0,
      lastGoodReadAt: at,
      lastAttemptAt: at,
      ...(relay ? { relayState: relay } : {}),
      ...(balance ? { balance: h.balance } : {}),
    });
    if (wasOnline === false) this.log.info({ meter: target.meterId, bus: target.busId }, 'meter back online');
    const firstSinceStart = !this.answeredSinceStart.has(target.meterId);
    this.answeredSinceStart.add(target.meterId);
    if ((wasOnline !== true || firstSinceStart) && this.opts.onMeterOnline) {
      const notify = this.opts.onMeterOnline;
      queueMicrotask(() => notify(target.meterId));
    }
    if (changed) this.publishState(tx, target, h);
  }

  private markFailed(tx: Tx, target: PollTarget, h: MeterHealth, when: { at: number; mono: number }, code: string, message: string): void {
    this.counters.failures++;
    this.counters.perBus[target.busId]!.failures++;
    h.failures++;
    this.log.warn({ meter: target.meterId, bus: target.busId, code, failures: h.failures }, message);
    if (NO_ANSWER.has(code) && h.online !== false) {
      const silent = this.busSilent.get(target.busId) ?? new Set<string>();
      this.busSilent.set(target.busId, silent.add(target.meterId));
    }
    // The bus answers again (a timeout or a refusal is not BUS_DOWN): what the station sees is the meter's own state.
    const wasUnreachable = h.unreachable;
    h.busDownSlots = 0;
    h.unreachable = false;
    const goesOffline = h.online !== false && h.failures >= this.opts.offlineAfter;
    upsertMeterState(tx, target.meterId, {
      consecutiveFailures: h.failures,
      lastAttemptAt: when.at,
      ...(goesOffline ? { online: false } : {}),
    });
    if (goesOffline) {
      h.online = false;
      h.nextProbe = when.mono + this.opts.offlineProbeMs;
      this.log.warn(
        { meter: target.meterId, bus: target.busId, probeMs: this.opts.offlineProbeMs },
        'meter offline: probing at a slower rate',
      );
      this.publishState(tx, target, h);
    } else if (wasUnreachable) {
      this.publishState(tx, target, h);
    }
  }

  private markUnreachable(tx: Tx, target: PollTarget, h: MeterHealth): void {
    // A good read or a failure on an open bus came in since the slot that counted to the limit.
    if (h.unreachable || h.busDownSlots < this.opts.offlineAfter) return;
    h.unreachable = true;
    this.log.warn({ meter: target.meterId, bus: target.busId, slots: h.busDownSlots }, 'meter unreachable: its bus is down');
    this.publishState(tx, target, h);
  }

  /**
   * A meter answered. If it was one of the bus's silent meters (it got no answer, and nothing on the bus answered
   * since), the bus was out and is back: its offline meters are probed now rather than at their slow probe. A live
   * meter answering next to a dead one is no recovery, so the dead one keeps its slow probe.
   */
  private answeredOn(busId: string, meterId: string): void {
    const afterSilence = this.busSilent.get(busId)?.has(meterId) === true;
    this.busSilent.delete(busId);
    if (!afterSilence) return;
    const last = this.lastRecovery.get(busId);
    if (last !== undefined && this.timers.now() - last < RECOVERY_MIN_GAP_MS) return;
    // After the commit in progress, so the meter that answered counts as online.
    queueMicrotask(() => this.busRecovered(busId));
  }

  private publishState(tx: Tx, target: PollTarget, h: MeterHealth): void {
    enqueueMeterState(
      tx,
      target.meterId,
      { online: h.online, unreachable: h.unreachable, lastGoodReadAt: h.lastGood, relay: h.relay, balance: h.balance },
      this.opts.clock.now(),
    );
  }
}

function relayOf(values: Record<string, PointValue>): RelayState | undefined {
  const v = values['relay.state'];
  if (!v || !('v' in v)) return undefined;
  return v.v === 1 ? 'open' : v.v === 0 ? 'closed' : undefined;
}

const BALANCE_POINTS: Record<string, string> = {
  'credit.balance.energy': 'energyKwh',
  'credit.balance.money': 'moneyYuan',
  'credit.overdraft': 'overdraftYuan',
  'credit.overdraft.energy': 'overdraftKwh',
  'credit.purchase.count': 'purchaseCount',
};

function balanceOf(values: Record<string, PointValue>): MeterBalance | undefined {
  const out: Record<string, number> = {};
  for (const [point, key] of Object.entries(BALANCE_POINTS)) {
    const v = values[point];
    if (v && 'v' in v && typeof v.v === 'number') out[key] = v.v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function unlimitedAbortController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
