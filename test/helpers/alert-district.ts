import { join } from 'node:path';
import { DEFAULT_THRESHOLDS, type AlertThresholds } from '../../src/config/index.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { meterModel } from '../../src/services/alerts/model.js';
import { AlertService, type ClockTrust } from '../../src/services/alerts/service.js';
import { ClockKeeper } from '../../src/services/clock-keeper.js';
import { Poller } from '../../src/services/poller.js';
import { SimulatedMeter, type MeterSpec } from '../../src/sim/dlt645/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { meterTimeOf } from '../../protocols/dlt645/index.js';
import { sendBroadcastTime } from '../../src/devices/dlt645-meter.js';
import { ManualTime } from './manual-time.js';
import { SimLink } from './sim-link.js';

const profiles = loadProfiles();

export interface DistrictMeter {
  readonly id: string;
  readonly profile: string;
  readonly spec: MeterSpec;
  readonly tags?: readonly string[];
}

export interface DistrictOptions {
  readonly dir: string;
  readonly meters: readonly DistrictMeter[];
  readonly startWall: number;
  readonly intervalsMs?: Readonly<Record<string, number>>;
  readonly thresholds?: Partial<AlertThresholds>;
  readonly clockTrust?: ClockTrust;
  readonly timeZone?: string;
}

/**
 * A district of simulated DL/T 645 meters polled by the real poller, drivers, codec, store, alert service and clock
 * keeper, on a wire-less link and manual time: a week passes in seconds. The meters live on after `restart()`,
 * which builds a new gateway side on the same database, as a daemon restart does.
 */
export class AlertDistrict {
  readonly time: ManualTime;
  readonly sims = new Map<string, SimulatedMeter>();
  readonly link: SimLink;
  store!: Store;
  alerts!: AlertService;
  poller!: Poller;
  keeper!: ClockKeeper;

  constructor(private readonly opts: DistrictOptions) {
    this.time = new ManualTime(opts.startWall);
    for (const m of opts.meters) this.sims.set(m.id, new SimulatedMeter(m.spec, { startMs: opts.startWall }));
    this.link = new SimLink([...this.sims.values()], this.time.wall);
    this.build();
  }

  sim(id: string): SimulatedMeter {
    return this.sims.get(id)!;
  }

  get now(): number {
    return this.time.wall.now();
  }

  start(): void {
    this.poller.start();
    this.keeper.start();
  }

  async stop(): Promise<void> {
    await this.keeper.stop();
    await this.poller.stop();
    this.store.close();
  }

  async restart(): Promise<void> {
    await this.stop();
    this.build();
    this.start();
  }

  /** Raised and cleared messages, in order, as `<meter>:<kind>:<state>`. */
  messages(): string[] {
    return this.store.outbox
      .peek({ limit: 100_000 })
      .filter((m) => m.topic.endsWith('/alerts') && m.topic.startsWith('meters/'))
      .map((m) => {
        const p = JSON.parse(m.payload) as { meter: string; kind: string; state: string };
        return `${p.meter}:${p.kind}:${p.state}`;
      });
  }

  private build(): void {
    const { opts, time } = this;
    const clock = time.wall;
    const tz = opts.timeZone ?? 'UTC';
    this.store = openStore({ path: join(opts.dir, 'meterd.db'), clock });
    const settings = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
    const drivers = opts.meters.map((m) => {
      const profile = profiles.get(m.profile)!;
      const meter = new Dlt645Meter({ link: this.link, address: this.sims.get(m.id)!.address, timeoutMs: 100, readRetries: 0, clock });
      return { m, profile, meter, reader: new Dlt645PointReader(meter, profile) };
    });
    this.alerts = new AlertService({
      store: this.store,
      clock,
      meters: drivers.map((d) => ({ meterId: d.m.id, model: meterModel(d.profile, d.m.tags ?? []), settings })),
      ...(opts.clockTrust ? { clockTrust: opts.clockTrust } : {}),
    });
    this.keeper = new ClockKeeper({
      targets: drivers.map((d) => ({
        meterId: d.m.id,
        busId: 'bus1',
        intervalMs: d.profile.groups.find((g) => g.points.includes('clock'))?.intervalMs ?? 86_400_000,
        readClock: async () => {
          const { meterClock } = await d.meter.clockSkewMs({ priority: 'alarm' });
          return { meterClock, meterMs: new Date(meterClock).getTime() };
        },
      })),
      buses: new Map([['bus1', { busId: 'bus1', broadcastTime: (at: number) => sendBroadcastTime(this.link, meterTimeOf(new Date(at))) }]]),
      alerts: this.alerts,
      store: this.store,
      clock,
      timers: time,
      timeZone: tz,
      trust: opts.clockTrust ?? { synced: () => true },
      sync: 'auto',
      settlementTimes: [],
      driftAlertMs: () => settings.clockDriftMs,
    });
    this.poller = new Poller({
      targets: drivers.map((d) => ({ meterId: d.m.id, busId: 'bus1', profile: d.profile, reader: d.reader })),
      store: this.store,
      clock,
      timers: time,
      timeZone: tz,
      intervalsMs: opts.intervalsMs ?? {},
      offlineAfter: 3,
      offlineProbeMs: 5 * 60_000,
      observer: this.alerts,
      ...(opts.clockTrust ? { clockTrust: opts.clockTrust } : {}),
      onMeterOnline: (id) => this.keeper.meterOnline(id),
    });
  }
}
