import { ensureDataDir } from '../config/data-dir.js';
import { join } from 'node:path';
import { realTimers, repeat, systemClock, type Clock, type Timers } from '../clock.js';
import { redactUrl } from '../config/broker-url.js';
import type { GatewayConfig, MeterConfig } from '../config/index.js';
import type { CreditPort } from '../devices/credit-port.js';
import type { SubsidyPort } from '../devices/subsidy-port.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import type { RelayPort } from '../devices/relay-port.js';
import { ControlServer, type ControlDesk, type DaemonStatus } from '../control/index.js';
import { RecallService } from '../services/recall.js';
import { startRegister } from '../services/lifecycle/register.js';
import { BUILTIN_PROFILES_DIR, loadProfiles } from '../profiles/registry.js';
import { PointDrivers, profileFinder } from './point-drivers.js';
import { composeReplacement, replacementCommandHandlers } from './replacement.js';
import { RelayService } from '../services/relay.js';
import { SupplyService, type SupplyHold } from '../services/supply/service.js';
import { supplyCommandHandlers } from './supply-handlers.js';
import { meterTimeOf } from '../../protocols/dlt645/index.js';
import { thresholdsFor } from '../config/index.js';
import { sendBroadcastTime } from '../devices/dlt645-meter.js';
import { alertMeterOf, clockTargetOf } from './point-views.js';
import { AlertService, type ClockTrust } from '../services/alerts/service.js';
import { ClockKeeper } from '../services/clock-keeper.js';
import { RELEASE_FLOOR_MS, SystemClockTrust } from './clock-trust.js';
import { unsignedCommandsRisk } from '../uplink/commands/auth-policy.js';
import { CommandRouter } from '../uplink/commands/router.js';
import { allowanceCommandHandlers, allowanceMeterOf, composeAllowances } from './allowances.js';
import { gatewayCommandHandlers, withoutCardCounter } from './command-handlers.js';
import { linelossService } from './lineloss.js';
import type { LinelossService } from '../services/lineloss/index.js';
import { meterDrivers, openConfiguredBus, type OpenedBus } from './meters.js';
import { pointAccountMeters } from './accounts.js';
import { AccountOpening } from '../services/provisioning/index.js';
import type { Logger } from '../log.js';
import { BooksPublisher, periodLabel } from '../services/books/index.js';
import type { AllowanceService } from '../services/allowances/index.js';
import { CreditService } from '../services/credit.js';
import { Poller, type PollTarget, type PollerStats } from '../services/poller.js';
import { enqueue, openStore, type Store } from '../store/index.js';
import { OutboxDrain, type DrainStats } from '../uplink/drain.js';
import { MqttEncryptionMachine } from '../uplink/hsm.js';
import { MqttSession } from '../uplink/session.js';
import type { BusStatus, GatewayHealth } from '../uplink/status.js';
import { BUILD, VERSION } from './version.js';

/** What `meterd run` (and the demo's status line) can see of a running gateway. */
export interface GatewayStatusView {
  readonly meters: number;
  readonly poller: PollerStats;
  readonly uplink: DrainStats;
  readonly buses: readonly (BusStatus & { utilisation: number; skipped: number; timeouts: number; retries: number; reconnects: number })[];
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly poller: Poller;
  readonly credit: CreditService;
  readonly relays: RelayService;
  /** Cuts with notice and approval, restores, and the 停(送)电 record (docs/lifecycle.md). */
  readonly supply: SupplyService;
  /** The districts' line-loss job (docs/lineloss.md). */
  readonly lineloss: LinelossService;
  readonly allowances: AllowanceService;
  readonly alerts: AlertService;
  readonly clockKeeper: ClockKeeper;
  /** The command router's local door and the daemon's status, as the control socket and the web console use them. */
  readonly desk: ControlDesk;
  status(): GatewayStatusView;
  /** Finish the bus exchange in flight, stop polling, flush what was read, deliver what can be delivered, close. */
  stop(): Promise<void>;
}

/**
 * The composition root: config in, a running gateway out. Owns the order of start and stop; nothing else does.
 * A start that fails part-way closes everything it had opened (newest first) before it rejects: an open port, broker
 * connection or timer would otherwise keep a half-started daemon alive, and systemd would never restart it.
 */
export async function startGateway(config: GatewayConfig, opts: GatewayOptions): Promise<Gateway> {
  const opened: Opened[] = [];
  try {
    return await composeGateway(config, opts, opened);
  } catch (err) {
    const log = opts.logger.child({ gateway: config.gateway.id });
    for (const part of opened.reverse()) {
      try {
        await part.close();
      } catch (closeErr) {
        log.warn({ err: closeErr, part: part.what }, 'could not close part of a gateway that failed to start');
      }
    }
    throw err;
  }
}

export interface GatewayOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly timers?: Timers;
  /** Whether the wall clock is right; default: systemd-timesyncd's verdict, else a floor (src/daemon/clock-trust.ts). */
  readonly clockTrust?: ClockTrust;
  /** Crash tests only: a meter replacement waits after committing this step (docs/lifecycle.md, test/e2e/meter-replace). */
  readonly replacementHoldAfter?: string;
  /** Crash tests only: a supply notice's trip waits here until the gateway stops (test/e2e/supply-kill). */
  readonly supplyHoldAt?: SupplyHold;
}

/** Something start-up opened, and how to close it should a later step fail. */
interface Opened {
  readonly what: string;
  close(): unknown;
}

async function composeGateway(given: GatewayConfig, opts: GatewayOptions, opened: Opened[]): Promise<Gateway> {
  const log = opts.logger.child({ gateway: given.gateway.id });
  const unsignedRisk = unsignedCommandsRisk(given.commands);
  if (unsignedRisk !== undefined) log.warn({ allowUnsigned: true }, unsignedRisk);
  const clock = opts.clock ?? systemClock;
  const timers = opts.timers ?? realTimers;
  const startedAt = new Date(clock.now()).toISOString();
  ensureDataDir(given.gateway.dataDir);
  const store = openStore({
    path: join(given.gateway.dataDir, 'meterd.db'),
    clock,
    logger: log,
    telemetryRetentionDays: given.storage.retentionDays,
    maxBytes: given.storage.maxBytes,
    commandsKeepForMs: given.commands.keepForMs,
  });
  opened.push({ what: 'store', close: () => store.close() });
  // The meter register says which physical meter each point polls (docs/lifecycle.md); from here on every part sees
  // the register's address, whatever the config line says (a disagreement is logged once, by startRegister).
  const register = startRegister(store, given.meters, { clock, logger: log, configFile: given.source });
  const profileById = profileFinder(given, (dirs) => loadProfiles([BUILTIN_PROFILES_DIR, ...dirs]));
  // A replacement puts the new meter's entry in place here, so the parts that look a point up in this list (the card
  // counter and the books, by meter number) see the new meter without a restart.
  const meters: MeterConfig[] = [];
  const config: GatewayConfig = {
    ...given,
    meters,
  };
  meters.push(
    ...given.meters.map((m) => {
      const where = register.points.get(m.id);
      if (!where) return m;
      const profile = where.profile === m.profile.id ? m.profile : profileById(where.profile);
      if (!profile)
        log.error(
          { meter: m.id, profile: where.profile },
          `the meter register names profile ${where.profile}, which is not installed: polling with ${m.profile.id}`,
        );
      return {
        ...m,
        ...(where.address !== undefined ? { address: where.address } : {}),
        ...(where.unit !== undefined ? { unit: where.unit } : {}),
        profile: profile ?? m.profile,
      };
    }),
  );
  // Claimed right after the store: a second daemon for this data directory is refused here (DAEMON_RUNNING), and the
  // CLI finds this one as soon as it exists (frames are answered DAEMON_STARTING until the router runs).
  const control = new ControlServer({ path: config.control.socketPath, logger: log });
  await control.start();
  opened.push({ what: 'control socket', close: () => control.stop() });

  const buses: OpenedBus[] = [];
  const targets: PollTarget[] = [];
  const creditPorts = new Map<string, CreditPort>();
  const subsidyPorts = new Map<string, SubsidyPort>();
  const relayPorts = new Map<string, RelayPort>();
  const meterFacts = new Map<string, MeterFacts>();
  const session = new MqttSession({
    mqtt: config.mqtt,
    gatewayId: config.gateway.id,
    logger: log,
    clock,
    birth: () => ({
      version: VERSION,
      startedAt,
      buses: buses.map((b) => busStatus(b)),
      storage: store.storage,
      health: gatewayHealth(store, log),
    }),
  });
  // The retained status says `storage: full` while the disk is full, and `ok` again once a commit succeeds.
  const stopWatchingStorage = store.onStorageChange(() => session.refreshStatus());
  // ESAM meters (credit method dlt645-esam) get their ciphertext and MACs from the station's encryption machine over MQTT.
  const hsm = new MqttEncryptionMachine(session, { timeoutMs: config.credit.hsmTimeoutMs, logger: log });
  for (const b of config.buses) {
    const bus = await openConfiguredBus(b, { logger: log, waitForPort: true });
    buses.push(bus);
    opened.push({ what: `bus ${b.id}`, close: () => bus.bus.close() });
  }
  // Each point's drivers can be swapped for a new meter's by a replacement while every service keeps the same objects.
  const pointDrivers = new Map<string, PointDrivers>();
  for (const m of config.meters) {
    const bus = buses.find((b) => b.config.id === m.busId)!;
    const drivers = new PointDrivers(m, (meter) =>
      meterDrivers(meter, bus, config, log, { machine: hsm, hsmTimeoutMs: config.credit.hsmTimeoutMs }, { clock, timers }),
    );
    pointDrivers.set(m.id, drivers);
    targets.push({ meterId: m.id, busId: m.busId, profile: m.profile, reader: drivers.reader, address: () => drivers.address });
    if (drivers.credit) creditPorts.set(m.id, drivers.credit);
    if (drivers.subsidy) subsidyPorts.set(m.id, drivers.subsidy);
    if (drivers.relay) relayPorts.set(m.id, drivers.relay);
    meterFacts.set(m.id, new MeterFacts(m.busId, m.customerNo, drivers));
  }

  const drain = new OutboxDrain({
    outbox: store.outbox,
    session,
    inflight: config.mqtt.inflight,
    deadLetterAfter: config.mqtt.deadLetterAfter,
    // The retained status counts the dead letters, so the station sees at once that messages were refused for good.
    onDeadLetter: () => session.refreshStatus(),
    logger: log,
    clock,
  });
  const clockTrust =
    opts.clockTrust ?? new SystemClockTrust({ clock, floorMs: Math.max(RELEASE_FLOOR_MS, store.readings.newestTakenAt() ?? 0) });
  if (!clockTrust.synced())
    log.warn(
      { wallClock: new Date(clock.now()).toISOString() },
      "the gateway's clock is not known to be right yet: readings are flagged unsynced and no meter clock is set until it is",
    );
  const alerts = new AlertService({
    store,
    clock,
    meters: config.meters.map((m) => alertMeterOf(config, m)),
    clockTrust,
    logger: log,
    onCommitted: () => drain.notify(),
  });
  const clockKeeper = new ClockKeeper({
    targets: config.meters.flatMap((m) => clockTargetOf(config, m, pointDrivers.get(m.id)!) ?? []),
    buses: new Map(
      buses.flatMap((b) =>
        b.kind === 'dlt645'
          ? [
              [
                b.config.id,
                { busId: b.config.id, broadcastTime: (at: number) => sendBroadcastTime(b.bus, meterTimeOf(new Date(at))) },
              ] as const,
            ]
          : [],
      ),
    ),
    alerts,
    store,
    clock,
    timers,
    timeZone: config.gateway.timeZone,
    trust: clockTrust,
    sync: config.clock.sync,
    settlementTimes: config.clock.settlementTimes,
    driftAlertMs: (id) => thresholdsFor(config.alerts, config.meters.find((m) => m.id === id)!).clockDriftMs,
    logger: log,
    onCommitted: () => drain.notify(),
  });
  const poller = new Poller({
    observer: alerts,
    clockTrust,
    onMeterOnline: (id) => clockKeeper.meterOnline(id),
    targets,
    store,
    clock,
    timeZone: config.gateway.timeZone,
    intervalsMs: config.polling.intervalsMs,
    offlineAfter: config.polling.offlineAfter,
    offlineProbeMs: config.polling.offlineProbeMs,
    timers,
    logger: log,
    onCommitted: () => drain.notify(),
  });

  // A load that clears the arrears of a meter cut for arrears queues its restore: the supply service looks at once.
  const credit = new CreditService({
    store,
    clock,
    timers,
    ports: creditPorts,
    subsidyPorts,
    logger: log,
    onCommitted: () => {
      drain.notify();
      supply.wake();
    },
    // A point whose meter is being replaced takes no new load until the job has moved its credit (docs/lifecycle.md).
    blocked: (meterId, channel) => replacement.blocksLoad(meterId, channel),
  });
  const relays = new RelayService({ store, clock, ports: relayPorts, logger: log, onCommitted: () => drain.notify() });
  const supply = new SupplyService({
    store,
    clock,
    timers,
    relays,
    settings: config.supply,
    timeZone: config.gateway.timeZone,
    logger: log,
    onCommitted: () => drain.notify(),
    ...(opts.supplyHoldAt !== undefined ? { holdAt: opts.supplyHoldAt } : {}),
  });
  // Loads a crash or an unreachable meter left open are settled by reading the meters, now and then periodically.
  const settle = () => void credit.settleOpen().catch((err: unknown) => log.error({ err }, 'credit settlement failed'));
  const settleTimer = repeat(timers, 60_000, settle);
  opened.push({ what: 'settle timer', close: () => settleTimer.stop() });
  void waitForBuses(buses, 5000, timers).then(settle);
  const allowances = composeAllowances(config, { store, clock, timers, logger: log, credit, relays, onCommitted: () => drain.notify() });
  const replacement = composeReplacement(config, {
    store,
    clock,
    timers,
    logger: log,
    credit,
    alerts,
    allowances,
    points: pointDrivers,
    profile: profileById,
    onCommitted: () => drain.notify(),
    rebound: (meter) => {
      meters.splice(
        meters.findIndex((m) => m.id === meter.id),
        1,
        meter,
      );
      // Every part that holds something of the point's model follows it here, from the swap on, not the old one's
      // until a restart (docs/lifecycle.md § A new model): the poll groups, the alert detectors' model, the clock
      // keeper's interval (or none), the allowance plan's unit and free-energy registers. Line loss's freezes, the
      // command validation's point names and the console read the point's drivers or entry at each use.
      poller.retarget(meter.id, meter.profile);
      alerts.meterRebound(alertMeterOf(config, meter));
      clockKeeper.retarget(meter.id, clockTargetOf(config, meter, pointDrivers.get(meter.id)!));
      allowances.pointRebound(allowanceMeterOf(meter));
    },
    ...(opts.replacementHoldAfter !== undefined ? { holdAfter: opts.replacementHoldAfter } : {}),
  });
  for (const w of config.warnings) log.warn({ file: w.file, line: w.line, field: w.path }, w.message);

  // The station's recall (补召) of readings its broker lost, paced behind live telemetry.
  const recall = new RecallService({ store, timers, chunk: config.uplink.recallChunk, logger: log, onCommitted: () => drain.notify() });
  opened.push({ what: 'recall', close: () => recall.stop() });
  const router = new CommandRouter({
    session,
    store,
    drain,
    handlers: gatewayCommandHandlers({
      credit,
      // Looked up at each command from the point's drivers: after a replacement account-open reaches the new meter.
      accounts: new AccountOpening({ store: () => store, credit, meters: pointAccountMeters(pointDrivers, config), logger: log }),
      relays,
      poller,
      meters: meterFacts,
      buses,
      // The card stack (encoder drivers, layouts) is loaded only when the config names an encoder.
      cards: config.encoders.length > 0 ? (await import('./card-handlers.js')).cardCommandHandlers(config, store, log) : withoutCardCounter,
      closeRelayAfterTopup: config.credit.closeRelayAfterTopup,
      allowances: allowanceCommandHandlers(allowances),
      supplyCommands: supplyCommandHandlers(supply, store),
      supply,
      replacement: replacementCommandHandlers(replacement),
      clock,
      alerts,
      recall: {
        maxRange: config.uplink.recallMaxRange,
        readings: recall,
        // The books publisher is built below; a recall is only served once the router runs, after it.
        reports: { recallDays: (from, to) => books.recallDays(from, to) },
      },
    }),
    meterExists: (id) => meterFacts.has(id),
    settings: config.commands,
    clock,
    logger: log,
  });

  // The day's books go to the station at 00:05 local time, once per day, through the outbox.
  const books = new BooksPublisher({
    store,
    clock,
    timers,
    gateway: config.gateway,
    meters: config.meters,
    logger: log,
    onCommitted: () => drain.notify(),
    // A purchase counter ahead of the books (a load from outside this system) is an alert a person must look at.
    onDayReport: (tx, report) => {
      for (const m of report.reconciliation)
        if (m.findings.some((f) => f.kind === 'outside-load'))
          alerts.observe(
            m.meterId,
            [
              {
                kind: 'purchase-mismatch',
                source: 'books',
                bad: true,
                pulse: true,
                evidence: {
                  date: periodLabel(report.period),
                  opening: m.opening?.count ?? null,
                  closing: m.closing?.count ?? null,
                  booksLoads: m.booksLoads,
                },
              },
            ],
            tx,
          );
    },
  });

  // Each district's line loss from the meters' daily freezes, after config.lineloss.readAt, once per day.
  const lineloss = linelossService(config, {
    store,
    clock,
    timers,
    logger: log,
    drivers: meterFacts,
    onCommitted: () => drain.notify(),
    alerts,
  });

  enforceStoreLimits(store, log);
  const limitsTimer = repeat(timers, 10 * 60_000, () => enforceStoreLimits(store, log));
  // Each bus's load, skipped polls and errors, retained, so the station sees a bus that cannot keep up; and on every
  // up/down, so an outage of seconds is seen too (the rows supersede each other: a flapping bus costs one row).
  const publishBuses = (only?: OpenedBus) => {
    try {
      store.transaction((tx) => {
        for (const b of only ? [only] : buses)
          enqueue(tx, { topic: `buses/${b.config.id}/state`, class: 'state', retain: true, payload: busReport(b, clock.now()) });
      });
      drain.notify();
    } catch (err) {
      log.error({ err }, 'bus state could not be stored');
    }
  };
  for (const b of buses) {
    let last: string = b.bus.state;
    b.bus.on('state', (e: { state: string }) => {
      // Reopening attempts repeat 'down' while the adapter is away: only a change is news.
      if (e.state === last) return;
      const wasDown = last !== 'up';
      last = e.state;
      publishBuses(b);
      // Offline meters of a bus that is back are probed now, not at their slow probe minutes later.
      if (e.state === 'up' && wasDown) {
        poller.busRecovered(b.config.id);
        allowances.wakeAll();
      }
    });
  }
  // Every meter's state is retained at the broker; at start, and whenever the broker kept no session (a restart
  // without persistence, a failover) it may have lost them, so they are queued again, with the bus states.
  const publishStates = () => {
    try {
      poller.publishStates();
    } catch (err) {
      log.error({ err }, 'meter states could not be stored');
    }
    publishBuses();
  };
  session.on('connected', ({ sessionPresent }) => {
    if (!sessionPresent) publishStates();
  });
  // The first report 5 s after start, once the ports had a moment to open; then every minute.
  const busTimer = repeat(timers, 60_000, () => publishBuses(), 5_000);
  opened.push({
    what: 'timers',
    close: () => {
      limitsTimer.stop();
      busTimer.stop();
    },
  });
  opened.push({ what: 'broker session', close: () => session.close({ timeoutMs: 3000 }) });
  opened.push({ what: 'encryption machine', close: () => hsm.stop() });
  await hsm.start();
  session.start();
  opened.push({ what: 'outbox drain', close: () => drain.stop({ timeoutMs: 1000 }) });
  drain.start();
  opened.push({ what: 'poller', close: () => poller.stop() });
  poller.start();
  opened.push({ what: 'clock keeper', close: () => clockKeeper.stop() });
  clockKeeper.start();
  publishStates();
  // Resumed commands and open loads are settled by reading meters: give the ports a moment to open first, so a
  // restart does not fail loads just because the adapter was still connecting.
  await waitForBuses(buses, 5000, timers);
  opened.push({ what: 'command router', close: () => router.stop({ timeoutMs: 1000 }) });
  await router.start();
  opened.push({ what: 'books', close: () => books.stop() });
  books.start();
  opened.push({ what: 'line loss', close: () => lineloss.stop() });
  lineloss.start();
  opened.push({ what: 'allowances', close: () => allowances.stop() });
  allowances.start();
  // Approved cuts and queued restores carry on from SQLite: a restart between approval and trip trips once.
  opened.push({ what: 'supply', close: () => supply.stop() });
  supply.start();
  const startedMono = timers.now();
  const daemonStatus = (): DaemonStatus => {
    const polled = poller.stats();
    const counts = store.outbox.counts();
    const memory = process.memoryUsage();
    const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;
    return {
      version: VERSION,
      build: BUILD,
      gatewayId: config.gateway.id,
      pid: process.pid,
      startedAt,
      uptimeSeconds: Math.round((timers.now() - startedMono) / 1000),
      broker: { url: session.brokerUrl, connected: session.connected },
      buses: buses.map((b) => {
        const st = b.bus.stats();
        return {
          id: b.config.id,
          state: st.state,
          utilisation: Math.round(st.utilisation * 1000) / 1000,
          queued: Object.values(st.queued).reduce((a, b) => a + b, 0),
          skippedPolls: st.skipped,
        };
      }),
      meters: { total: targets.length, online: polled.online, offline: polled.offline, unreachable: polled.unreachable },
      outbox: {
        depth: counts.total,
        oldestAgeSeconds: counts.oldestCreatedAt === null ? null : Math.max(0, Math.round((clock.now() - counts.oldestCreatedAt) / 1000)),
        deadLetters: gatewayHealth(store, log)?.deadLetters ?? 0,
      },
      commands: { running: router.stats().running },
      alerts: { active: alerts.activeCount() },
      batches: { inProgress: allowances.inProgress() },
      memoryMiB: { rss: mib(memory.rss), heapUsed: mib(memory.heapUsed), external: mib(memory.external) },
    };
  };
  const desk: ControlDesk = { submit: (command, request, sender) => router.submit(command, request, sender), status: daemonStatus };
  control.serve(desk);
  const health = gatewayHealth(store, log);
  if (health !== undefined && health.deadLetters > 0) {
    log.warn(
      { deadLetters: health.deadLetters },
      'the store holds messages the broker refused for good (dead letters): check the broker ACL and message size limit',
    );
  }
  log.info(
    {
      version: VERSION,
      buses: buses.length,
      meters: targets.length,
      broker: config.mqtt.brokers.map((b) => redactUrl(b.url)).join(', '),
      dataDir: config.gateway.dataDir,
    },
    'gateway started',
  );

  let stopping: Promise<void> | undefined;
  return {
    config,
    store,
    poller,
    credit,
    relays,
    supply,
    lineloss,
    allowances,
    alerts,
    clockKeeper,
    desk,
    status: () => ({
      meters: targets.length,
      poller: poller.stats(),
      uplink: drain.stats(),
      buses: buses.map((b) => {
        const s = b.bus.stats();
        return {
          ...busStatus(b),
          utilisation: s.utilisation,
          skipped: s.skipped,
          timeouts: s.timeouts,
          retries: s.retries,
          reconnects: s.reconnects,
        };
      }),
    }),
    stop: () =>
      (stopping ??= (async () => {
        log.info('gateway stopping');
        limitsTimer.stop();
        busTimer.stop();
        settleTimer.stop();
        stopWatchingStorage();
        books.stop();
        // Its reads in flight end now; what was read is kept and the day is computed at the next start.
        await lineloss.stop();
        // Before the router and the buses: the row in flight ends, or stays for the ledger to settle at the next start.
        await allowances.stop();
        // The trip or restore in flight ends; its state in SQLite is confirmed from the meter at the next start.
        await supply.stop();
        await router.stop({ timeoutMs: 5000 });
        // After the router: the clients of commands it stopped have heard `accepted` (they resume at the next start).
        await control.stop();
        recall.stop();
        await clockKeeper.stop();
        await poller.stop();
        await Promise.allSettled(buses.map((b) => b.bus.close()));
        await drain.stop({ timeoutMs: 5000 });
        await hsm.stop();
        await session.close({ timeoutMs: 3000 });
        store.close();
        log.info('gateway stopped');
      })()),
  };
}

const pointNames = new WeakMap<MeterConfig['profile'], ReadonlySet<string>>();

/** A profile's point names, one set per profile shared by its meters (2,000 meters, a handful of models). */
function pointNamesOf(profile: MeterConfig['profile']): ReadonlySet<string> {
  const known = pointNames.get(profile);
  if (known !== undefined) return known;
  const names = new Set(profile.points.keys());
  pointNames.set(profile, names);
  return names;
}

/** The store's dead letters for the retained status; a store that cannot say is logged and left out. */
function gatewayHealth(store: Store, log: Logger): GatewayHealth | undefined {
  try {
    return { deadLetters: store.deadLetters.count() };
  } catch (err) {
    log.error({ err }, 'cannot count the dead letters for the gateway status');
    return undefined;
  }
}

function busStatus(b: OpenedBus): BusStatus {
  const state = b.bus.state === 'up' ? 'up' : 'down';
  return state === 'up' ? { id: b.config.id, state } : { id: b.config.id, state, error: `${b.config.port} is not open` };
}

/** The retention window and the disk cap, from a timer: a store error (a full disk) is logged, never thrown. */
export function enforceStoreLimits(store: Store, log: Logger): void {
  try {
    const r = store.enforceLimits();
    if (r.prunedCommands > 0)
      log.info({ prunedCommands: r.prunedCommands }, 'deleted the records of old finished commands (commands.keepFor)');
    if (r.overCap)
      log.error(
        { usedBytes: r.usedBytes },
        'storage cap reached with only undeliverable credit/alert/report data left; check the broker link',
      );
  } catch (err) {
    log.error({ err }, 'storage limits could not be enforced');
  }
}

/** Resolves when every bus is up, or after `ms`, whichever comes first. */
function waitForBuses(buses: readonly OpenedBus[], ms: number, timers: Timers): Promise<void> {
  const pending = buses.filter((b) => b.bus.state !== 'up');
  if (pending.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = timers.setTimeout(resolve, ms);
    let left = pending.length;
    for (const b of pending) {
      const onState = (e: { state: string }) => {
        if (e.state !== 'up') return;
        b.bus.off('state', onState);
        if (--left === 0) {
          timers.clearTimeout(timer);
          resolve();
        }
      };
      b.bus.on('state', onState);
    }
  });
}

/** What the station sees of a bus: whether it is up, how busy, and what it had to skip or retry. */
function busReport(b: OpenedBus, now: number): Record<string, unknown> {
  const s = b.bus.stats();
  return {
    bus: b.config.id,
    port: b.config.port,
    protocol: b.config.protocol,
    state: s.state,
    utilisation: Math.round(s.utilisation * 1000) / 1000,
    queued: s.queued,
    completed: s.completed,
    skippedPolls: s.skipped,
    timeouts: s.timeouts,
    retries: s.retries,
    reconnects: s.reconnects,
    ts: new Date(now).toISOString(),
  };
}

/** What the command handlers know of a point; its DL/T 645 driver is the meter installed now (a class: one per meter). */
class MeterFacts {
  constructor(
    readonly busId: string,
    readonly customerNo: string | undefined,
    private readonly drivers: PointDrivers,
  ) {}

  /** The points of the meter serving the point now (a replacement may bring another profile). */
  get points(): ReadonlySet<string> {
    return pointNamesOf(this.drivers.meter.profile);
  }

  get dlt645(): Dlt645Meter | undefined {
    return this.drivers.dlt645;
  }

  /** The profile of the meter serving the point now. */
  get profile(): MeterConfig['profile'] {
    return this.drivers.meter.profile;
  }
}
