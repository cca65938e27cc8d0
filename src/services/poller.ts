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

export interface PollTarget {
  readonly meterId: string;
  readonly busId: string;
  readonly profile: DeviceProfile;
  readonly reader: MeterReader;
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
  timers?: Timers;
  /** Results are committed in one transaction per batch window (one fsync per poll cycle, not per reading). */
  batchMs?: number;
}

interface Task {
  readonly target: PollTarget;
  readonly group: PointGroup;
  readonly intervalMs: number;
  nextDue: number;
}

interface MeterHealth {
  online: boolean | null;
  failures: number;
  lastGood: number | null;
  nextProbe: number;
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
  online: number;
  offline: number;
  perBus: Record<string, { polls: number; failures: number; skipped: number }>;
}

type Outcome =
  | { kind: 'ok'; target: PollTarget; takenAt: number; values: Map<string, PointValue> }
  | { kind: 'failed'; target: PollTarget; at: number; code: string; message: string };

/** Codes that mean the meter did not answer at all (as opposed to refusing one item). */
const NO_ANSWER = new Set(['BUS_TIMEOUT', 'METER_TIMEOUT', 'MODBUS_TIMEOUT']);

/**
 * Schedules every meter's profile groups on its bus and stores what comes back. Meters are spread over each
 * interval; a busy bus skips routine polls (counted) instead of queueing them; a meter that keeps failing is
 * marked offline and only probed slowly, so one dead meter cannot eat a 2400-baud bus.
 */
export class Poller {
  private readonly tasks = new MinHeap<Task>();
  private taskCount = 0;
  private readonly health = new Map<string, MeterHealth>();
  private readonly pending: Outcome[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly timers: Timers;
  private readonly log: Logger;
  private timer: unknown;
  private flushTimer: unknown;
  private stopped = true;
  private readonly counters: PollerStats = {
    polls: 0,
    failures: 0,
    skipped: 0,
    missed: 0,
    readingsStored: 0,
    online: 0,
    offline: 0,
    perBus: {},
  };

  constructor(private readonly opts: PollerOptions) {
    this.timers = opts.timers ?? realTimers;
    this.log = (opts.logger ?? silentLogger).child({ component: 'poller' });
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const now = this.opts.clock.now();
    const byBus = new Map<string, PollTarget[]>();
    for (const t of this.opts.targets) byBus.set(t.busId, [...(byBus.get(t.busId) ?? []), t]);
    for (const [busId, targets] of byBus) {
      this.counters.perBus[busId] = { polls: 0, failures: 0, skipped: 0 };
      targets.forEach((target, i) => {
        this.healthOf(target.meterId);
        for (const group of target.profile.groups) {
          const intervalMs = this.opts.intervalsMs?.[group.name] ?? group.intervalMs;
          const first = group.at
            ? nextLocalTime(now, group.at, this.opts.timeZone) + phaseOffset(i, targets.length, Math.min(intervalMs, 600_000))
            : now + phaseOffset(i, targets.length, intervalMs);
          this.tasks.push(first, { target, group, intervalMs, nextDue: first });
          this.taskCount++;
        }
      });
    }
    this.log.info({ meters: this.opts.targets.length, tasks: this.taskCount }, 'polling started');
    this.arm();
  }

  /** Stop scheduling, let the exchanges in flight finish, and commit what they produced. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    await Promise.allSettled([...this.running]);
    this.abort.abort();
    this.flush();
  }

  stats(): PollerStats {
    let online = 0;
    let offline = 0;
    for (const h of this.health.values()) {
      if (h.online === true) online++;
      if (h.online === false) offline++;
    }
    return { ...this.counters, online, offline, perBus: structuredClone(this.counters.perBus) };
  }

  /** Poll one meter's points now (a `read` command or a technician's request goes through the same store path). */
  async pollNow(meterId: string, points?: readonly string[], priority: Priority = 'operator'): Promise<Map<string, PointValue>> {
    const target = this.opts.targets.find((t) => t.meterId === meterId);
    if (!target) throw Object.assign(new Error(`no meter ${meterId}`), { code: 'UNKNOWN_METER' });
    const names = points ?? [...new Set(target.profile.groups.flatMap((g) => g.points))];
    const values = await target.reader.read(names, { priority, signal: this.abort.signal });
    this.pending.push({ kind: 'ok', target, takenAt: this.opts.clock.now(), values });
    this.flush();
    return values;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timers.clearTimeout(this.timer);
    const next = this.tasks.peekKey();
    if (next === undefined) return;
    const delay = Math.max(0, next - this.opts.clock.now());
    this.timer = this.timers.setTimeout(() => this.tick(), Math.min(delay, 2_147_000_000));
  }

  private tick(): void {
    if (this.stopped) return;
    const now = this.opts.clock.now();
    const probed = new Set<string>();
    const due: Task[] = [];
    while ((this.tasks.peekKey() ?? Infinity) <= now) due.push(this.tasks.pop()!);
    for (const task of due) {
      const h = this.health.get(task.target.meterId)!;
      // Catch up on the schedule without replaying missed slots: a stale poll is worth nothing.
      while (task.nextDue <= now) {
        task.nextDue += task.intervalMs;
        if (task.nextDue <= now) this.counters.missed++;
      }
      this.tasks.push(task.nextDue, task);
      // An offline meter is only probed, once per probe period, so it cannot eat the bus.
      if (h.online === false) {
        if (now < h.nextProbe || probed.has(task.target.meterId)) continue;
        probed.add(task.target.meterId);
        h.nextProbe = now + this.opts.offlineProbeMs;
      }
      this.launch(task);
    }
    this.arm();
  }

  private launch(task: Task): void {
    const { target, group } = task;
    const h = this.health.get(target.meterId)!;
    h.inFlight++;
    this.counters.polls++;
    this.counters.perBus[target.busId]!.polls++;
    const p = target.reader
      .read(group.points, { priority: 'poll', signal: this.abort.signal })
      .then(
        (values) => this.record({ kind: 'ok', target, takenAt: this.opts.clock.now(), values }),
        (err: unknown) => {
          const code = (err as { code?: string }).code ?? 'ERROR';
          if (code === 'BUS_BUSY_SKIPPED') {
            this.counters.skipped++;
            this.counters.perBus[target.busId]!.skipped++;
            return;
          }
          if (code === 'BUS_DOWN' || code === 'BUS_CLOSED' || code === 'ABORTED') return; // not the meter's fault
          this.record({ kind: 'failed', target, at: this.opts.clock.now(), code, message: (err as Error).message });
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
    if (this.flushTimer === undefined) {
      this.flushTimer = this.timers.setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, this.opts.batchMs ?? 50);
    }
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
    store.transaction((tx) => {
      const readings: Reading[] = [];
      for (const o of batch) {
        const h = this.healthOf(o.target.meterId);
        if (o.kind === 'ok') {
          const values = Object.fromEntries(o.values);
          const answered =
            Object.values(values).some((v) => 'v' in v) || !Object.values(values).some((v) => 'error' in v && NO_ANSWER.has(v.error));
          readings.push({ meterId: o.target.meterId, takenAt: o.takenAt, values });
          enqueue(tx, {
            topic: `meters/${o.target.meterId}/readings`,
            class: 'telemetry',
            payload: { meter: o.target.meterId, ts: new Date(o.takenAt).toISOString(), values },
            seqStream: 'readings',
          });
          if (answered) this.markGood(tx, o.target, h, o.takenAt, values);
        } else {
          this.markFailed(tx, o.target, h, o.at, o.code, o.message);
        }
      }
      if (readings.length > 0) insertReadings(tx, readings);
      this.counters.readingsStored += readings.length;
    });
    this.opts.onCommitted?.();
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
        nextProbe: this.opts.clock.now(),
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
      (relay !== undefined && relay !== h.relay) ||
      (balance !== undefined && JSON.stringify(balance) !== JSON.stringify(h.balance));
    h.online = true;
    h.failures = 0;
    h.lastGood = at;
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
    if (changed) this.publishState(tx, target, h);
  }

  private markFailed(tx: Tx, target: PollTarget, h: MeterHealth, at: number, code: string, message: string): void {
    this.counters.failures++;
    this.counters.perBus[target.busId]!.failures++;
    h.failures++;
    this.log.warn({ meter: target.meterId, bus: target.busId, code, failures: h.failures }, message);
    const goesOffline = h.online !== false && h.failures >= this.opts.offlineAfter;
    upsertMeterState(tx, target.meterId, { consecutiveFailures: h.failures, lastAttemptAt: at, ...(goesOffline ? { online: false } : {}) });
    if (goesOffline) {
      h.online = false;
      h.nextProbe = at + this.opts.offlineProbeMs;
      this.log.warn(
        { meter: target.meterId, bus: target.busId, probeMs: this.opts.offlineProbeMs },
        'meter offline: probing at a slower rate',
      );
      this.publishState(tx, target, h);
    }
  }

  private publishState(tx: Tx, target: PollTarget, h: MeterHealth): void {
    enqueueMeterState(
      tx,
      target.meterId,
      { online: h.online, lastGoodReadAt: h.lastGood, relay: h.relay, balance: h.balance },
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
