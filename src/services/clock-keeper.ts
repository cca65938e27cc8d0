import { realTimers, type Clock, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { recordClockSync, type Store } from '../store/index.js';
import type { AlertService, ClockTrust } from './alerts/service.js';
import { localDate, localDateTime } from './books/periods.js';

/** One meter whose clock the keeper reads. */
export interface ClockTarget {
  readonly meterId: string;
  readonly busId: string;
  /** How often its clock is read (the profile group holding `clock`, or its `polling.intervals` override). */
  readonly intervalMs: number;
  /** Reads the meter's clock: its text ("2026-12-04T05:30:00") and that instant as epoch ms. */
  readClock(): Promise<{ meterClock: string; meterMs: number }>;
}

/** A bus the keeper may correct by broadcast time sync (0x08). */
export interface ClockBus {
  readonly busId: string;
  broadcastTime(atMs: number): Promise<void>;
}

export interface ClockKeeperOptions {
  readonly targets: readonly ClockTarget[];
  readonly buses: ReadonlyMap<string, ClockBus>;
  readonly alerts: AlertService;
  readonly store: Store;
  readonly clock: Clock;
  readonly timers?: Timers;
  readonly timeZone: string;
  readonly trust: ClockTrust;
  /** `auto`: correct drifts of 1 to 5 minutes by broadcast; `off`: only alert. */
  readonly sync: 'auto' | 'off';
  /** Local HH:MM times (besides midnight) near which clocks are neither checked nor set. */
  readonly settlementTimes: readonly string[];
  /** Above this a drift raises clock-drift (and is too big for a broadcast). */
  readonly driftAlertMs: (meterId: string) => number;
  readonly logger?: Logger;
  readonly onCommitted?: () => void;
}

/** Smaller drifts are left alone (a broadcast is a once-a-day shot). */
export const SYNC_ABOVE_MS = 60_000;
/** Meters take a broadcast correction of at most 5 minutes (DL/T 645-2007 §4.4 practice; firmware limit 300 s). */
export const BROADCAST_LIMIT_MS = 300_000;
/** No check or correction this close to midnight or a settlement time: a freeze or settlement could be moved. */
export const QUIET_WINDOW_MS = 5 * 60_000;
/** The meter's clock has a resolution of one second. */
const CLOCK_RESOLUTION_MS = 1000;
/** A failed read is tried again this much later (comm-loss is the poller's business, not this one's). */
const RETRY_MS = 10 * 60_000;
/** While the gateway's clock is not trusted, look again this often. */
const TRUST_RETRY_MS = 60_000;

export interface ClockVerdict {
  readonly meterId: string;
  readonly skewMs: number;
  readonly uncertaintyMs: number;
  readonly action: 'none' | 'alert' | 'broadcast' | 'broadcast-done-today' | 'skipped';
  readonly reason?: string;
}

/**
 * Keeps meter clocks right by the meters' own rules: reads each clock when the meter comes online and then at its
 * interval; a drift of 1 to 5 minutes is corrected by one broadcast time sync per bus and local day, never within
 * 5 minutes of midnight or a settlement time; a larger one raises clock-drift for a technician to decide. Nothing
 * is checked or set while the gateway's own clock is not known to be right (a Pi booted without RTC or NTP).
 */
export class ClockKeeper {
  private readonly targets = new Map<string, ClockTarget>();
  private readonly timersOf = new Map<string, unknown>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly timers: Timers;
  private readonly log: Logger;
  private stopped = true;
  private untrustedLogged = false;

  constructor(private readonly opts: ClockKeeperOptions) {
    for (const t of opts.targets) this.targets.set(t.meterId, t);
    this.timers = opts.timers ?? realTimers;
    this.log = (opts.logger ?? silentLogger).child({ component: 'clock-keeper' });
  }

  start(): void {
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const h of this.timersOf.values()) this.timers.clearTimeout(h);
    this.timersOf.clear();
    await Promise.allSettled([...this.running]);
  }

  /** A meter answered after being offline (or for the first time): read its clock soon. */
  meterOnline(meterId: string): void {
    if (!this.targets.has(meterId)) return;
    this.schedule(meterId, 0);
  }

  /**
   * The point is served by another meter from now on (a replacement's rebind): its clock is read through `target`, at
   * the new profile's interval, starting soon (the new meter's clock is unknown); `undefined` when the new model has no
   * clock this keeper reads, and the point is not checked any more. A check of the old meter in flight is not rescheduled.
   */
  retarget(meterId: string, target: ClockTarget | undefined): void {
    const prev = this.timersOf.get(meterId);
    if (prev !== undefined) this.timers.clearTimeout(prev);
    this.timersOf.delete(meterId);
    if (!target) {
      this.targets.delete(meterId);
      return;
    }
    this.targets.set(meterId, target);
    this.schedule(meterId, 0);
  }

  /** Read one meter's clock now and act on it; resolves with what was decided. */
  async check(meterId: string): Promise<ClockVerdict> {
    const target = this.targets.get(meterId);
    if (!target) return { meterId, skewMs: 0, uncertaintyMs: 0, action: 'skipped', reason: 'no clock on this meter' };
    const quiet = this.quietFor(this.opts.clock.now());
    if (quiet > 0) return { meterId, skewMs: 0, uncertaintyMs: 0, action: 'skipped', reason: 'near midnight or a settlement time' };
    if (!this.opts.trust.synced()) {
      if (!this.untrustedLogged)
        this.log.warn(
          { wallClock: new Date(this.opts.clock.now()).toISOString() },
          "the gateway's clock is not known to be synchronised: no meter clock is checked or set until it is",
        );
      this.untrustedLogged = true;
      return { meterId, skewMs: 0, uncertaintyMs: 0, action: 'skipped', reason: 'gateway clock not synchronised' };
    }
    this.untrustedLogged = false;
    const t0 = this.timers.now();
    const read = await target.readClock();
    const t1 = this.timers.now();
    const wall = this.opts.clock.now();
    // The meter's time was taken somewhere inside the exchange: compare with its middle, and allow for the rest.
    const reference = wall - (t1 - t0) / 2;
    const skewMs = read.meterMs - reference;
    const uncertaintyMs = (t1 - t0) / 2 + CLOCK_RESOLUTION_MS;
    // Date and time are two reads: at 23:59 the date may belong to the other side of midnight.
    if (/T23:59/.test(read.meterClock))
      return { meterId, skewMs, uncertaintyMs, action: 'skipped', reason: 'the meter shows 23:59 (date and time are two reads)' };
    const abs = Math.abs(skewMs);
    const limit = this.opts.driftAlertMs(meterId);
    const evidence = {
      meterClock: read.meterClock,
      gatewayClock: localDateTime(reference, this.opts.timeZone),
      skewSeconds: Math.round(skewMs / 1000),
      thresholdSeconds: Math.round(limit / 1000),
    };
    const drifting = abs - uncertaintyMs > limit;
    this.opts.alerts.observe(meterId, [{ kind: 'clock-drift', source: 'clock', bad: drifting, ...(drifting ? { evidence } : {}) }]);
    if (drifting) {
      this.log.warn(
        { meter: meterId, bus: target.busId, ...evidence },
        'meter clock off by more than the alert threshold: not corrected by broadcast',
      );
      return { meterId, skewMs, uncertaintyMs, action: 'alert' };
    }
    if (this.opts.sync !== 'auto' || abs - uncertaintyMs <= SYNC_ABOVE_MS || abs + uncertaintyMs > BROADCAST_LIMIT_MS)
      return { meterId, skewMs, uncertaintyMs, action: 'none' };
    const bus = this.opts.buses.get(target.busId);
    if (!bus) return { meterId, skewMs, uncertaintyMs, action: 'none', reason: 'its bus takes no broadcast time' };
    const day = localDate(wall, this.opts.timeZone);
    // The meters take one broadcast a day: a bus broadcast today has already corrected every meter on it.
    const claimed = this.opts.store.transaction((tx) =>
      recordClockSync(tx, { busId: bus.busId, localDay: day, at: wall, meters: { [meterId]: Math.round(skewMs / 1000) } }),
    );
    if (!claimed) return { meterId, skewMs, uncertaintyMs, action: 'broadcast-done-today' };
    await bus.broadcastTime(this.opts.clock.now());
    this.log.info({ meter: meterId, bus: bus.busId, skewSeconds: evidence.skewSeconds }, 'meter clock corrected by broadcast time sync');
    return { meterId, skewMs, uncertaintyMs, action: 'broadcast' };
  }

  /** Milliseconds until the quiet window around `wall` ends (0 when not in one). */
  quietFor(wall: number): number {
    const hhmm = localDateTime(wall, this.opts.timeZone).slice(11, 16);
    const [h, m] = hhmm.split(':').map(Number) as [number, number];
    const minuteOfDay = h * 60 + m;
    const secondsIn = Math.floor((wall % 60_000) / 1000);
    let wait = 0;
    for (const t of ['00:00', ...this.opts.settlementTimes]) {
      const [th, tm] = t.split(':').map(Number) as [number, number];
      const target = th * 60 + tm;
      // Minutes from the settlement time, on a 24-hour circle.
      let d = minuteOfDay - target;
      if (d > 720) d -= 1440;
      if (d < -720) d += 1440;
      if (d >= -5 && d < 5) wait = Math.max(wait, (5 - d) * 60_000 - secondsIn * 1000);
    }
    return wait;
  }

  private schedule(meterId: string, delayMs: number): void {
    if (this.stopped) return;
    const prev = this.timersOf.get(meterId);
    if (prev !== undefined) this.timers.clearTimeout(prev);
    const handle = this.timers.setTimeout(() => {
      this.timersOf.delete(meterId);
      const p = this.run(meterId);
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    }, delayMs);
    this.timersOf.set(meterId, handle);
  }

  private async run(meterId: string): Promise<void> {
    if (this.stopped) return;
    const target = this.targets.get(meterId);
    if (!target) return;
    const quiet = this.quietFor(this.opts.clock.now());
    if (quiet > 0) return this.schedule(meterId, quiet);
    if (!this.opts.trust.synced()) {
      await this.check(meterId); // logs once
      return this.again(meterId, target, TRUST_RETRY_MS);
    }
    try {
      await this.check(meterId);
      this.again(meterId, target, target.intervalMs);
    } catch (err) {
      const code = (err as { code?: string }).code;
      this.log.debug({ meter: meterId, bus: target.busId, code }, 'meter clock not read; trying again later');
      this.again(meterId, target, RETRY_MS);
    }
  }

  /** The next check of a target, unless a rebind put another target (and its own schedule) in its place meanwhile. */
  private again(meterId: string, target: ClockTarget, delayMs: number): void {
    if (this.targets.get(meterId) === target) this.schedule(meterId, delayMs);
  }
}
