import { existsSync } from 'node:fs';
import type { Clock } from '../clock.js';
import type { ClockTrust } from '../services/alerts/service.js';

/** systemd-timesyncd creates `synchronized` here once it has synchronised the clock (systemd 239 and later). */
const TIMESYNCD_STATE_DIR = '/run/systemd/timesync';
/** How long one look at the system is trusted: the file does not change often, the check is on the poll path. */
const CACHE_MS = 30_000;

export interface SystemClockTrustOptions {
  readonly clock: Clock;
  /** No clock before this can be right: the release date, or the newest time already in the database. */
  readonly floorMs: number;
  /** Where systemd-timesyncd keeps its state (tests point it elsewhere). */
  readonly timesyncDir?: string;
}

/**
 * Whether the gateway's wall clock can be trusted. A Raspberry Pi has no real-time clock: after a power cut it may
 * boot at a time months old until NTP answers. Where systemd-timesyncd runs, its own verdict decides; elsewhere the
 * clock is trusted once it is past a floor no right clock can be before.
 */
export class SystemClockTrust implements ClockTrust {
  private cached: { at: number; synced: boolean } | undefined;

  constructor(private readonly opts: SystemClockTrustOptions) {}

  synced(): boolean {
    const now = this.opts.clock.now();
    if (this.cached && Math.abs(now - this.cached.at) < CACHE_MS) return this.cached.synced;
    const synced = this.look(now);
    this.cached = { at: now, synced };
    return synced;
  }

  /** Why the clock is (not) trusted, for `meterd status` and the logs. */
  describe(): string {
    const dir = this.opts.timesyncDir ?? TIMESYNCD_STATE_DIR;
    if (existsSync(dir))
      return existsSync(`${dir}/synchronized`) ? 'synchronised (systemd-timesyncd)' : 'not synchronised yet (systemd-timesyncd)';
    return this.opts.clock.now() >= this.opts.floorMs
      ? 'plausible (past the release date and the newest stored time; no timesyncd to ask)'
      : `before ${new Date(this.opts.floorMs).toISOString()}: not set yet`;
  }

  private look(now: number): boolean {
    const dir = this.opts.timesyncDir ?? TIMESYNCD_STATE_DIR;
    if (existsSync(dir)) return existsSync(`${dir}/synchronized`);
    return now >= this.opts.floorMs;
  }
}

/** No gateway clock before this release's date is right. */
export const RELEASE_FLOOR_MS = Date.parse('2026-11-01T00:00:00Z');
