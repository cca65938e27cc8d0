import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, responseTimeoutMs, type FrameBus } from '../bus/index.js';
import { openModbusLink, type ModbusLink } from '../bus/modbus-link.js';
import { systemClock, type Clock } from '../clock.js';
import type { BusConfig, GatewayConfig, MeterConfig } from '../config/index.js';
import { Dlt645Meter } from '../devices/dlt645-meter.js';
import { Dlt645PointReader } from '../devices/dlt645-points.js';
import { ModbusMeter } from '../devices/modbus-meter.js';
import type { Logger } from '../log.js';
import { Poller, type PollTarget, type PollerStats } from '../services/poller.js';
import { openStore, type Store } from '../store/index.js';
import { OutboxDrain, type DrainStats } from '../uplink/drain.js';
import { MqttSession } from '../uplink/session.js';
import type { BusStatus } from '../uplink/status.js';
import { VERSION } from './version.js';

/** What `meterd run` (and the demo's status line) can see of a running gateway. */
export interface GatewayStatusView {
  readonly meters: number;
  readonly poller: PollerStats;
  readonly uplink: DrainStats;
  readonly buses: readonly (BusStatus & { utilisation: number; skipped: number })[];
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly store: Store;
  readonly poller: Poller;
  status(): GatewayStatusView;
  /** Finish the bus exchange in flight, stop polling, flush what was read, deliver what can be delivered, close. */
  stop(): Promise<void>;
}

/** A DL/T 645 bus (frames through FrameBus) or a Modbus bus (modbus-serial through ModbusLink); both arbitrate the same way. */
type OpenedBus = { readonly config: BusConfig; readonly kind: 'dlt645'; readonly bus: FrameBus<Frame> } | { readonly config: BusConfig; readonly kind: 'modbus'; readonly bus: ModbusLink };

/** The composition root: config in, a running gateway out. Owns the order of start and stop; nothing else does. */
export async function startGateway(config: GatewayConfig, opts: { logger: Logger; clock?: Clock }): Promise<Gateway> {
  const log = opts.logger.child({ gateway: config.gateway.id });
  const clock = opts.clock ?? systemClock;
  const startedAt = new Date(clock.now()).toISOString();
  mkdirSync(config.gateway.dataDir, { recursive: true });
  const store = openStore({
    path: join(config.gateway.dataDir, 'meterd.db'),
    clock,
    logger: log,
    telemetryRetentionDays: config.storage.retentionDays,
    maxBytes: config.storage.maxBytes,
  });

  const buses: OpenedBus[] = [];
  const targets: PollTarget[] = [];
  try {
    for (const b of config.buses) {
      // The daemon never waits for a port: a USB adapter plugged in later is picked up by the reconnect loop.
      const common = { id: b.id, port: b.port, line: b.line, logger: log, gapMs: b.gapMs, maxQueuedPolls: b.maxQueuedPolls, waitForPort: true };
      if (b.protocol === 'dlt645') buses.push({ config: b, kind: 'dlt645', bus: await openBus<Frame>({ ...common, decoder: new Dlt645Decoder() }) });
      else buses.push({ config: b, kind: 'modbus', bus: await openModbusLink({ ...common, protocol: b.protocol, readRetries: b.retries }) });
    }
    for (const m of config.meters) targets.push(pollTarget(m, buses, log));
  } catch (err) {
    await Promise.allSettled(buses.map((b) => b.bus.close()));
    store.close();
    throw err;
  }

  const session = new MqttSession({
    mqtt: config.mqtt,
    gatewayId: config.gateway.id,
    logger: log,
    clock,
    birth: () => ({ version: VERSION, startedAt, buses: buses.map((b) => busStatus(b)) }),
  });
  const drain = new OutboxDrain({ outbox: store.outbox, session, inflight: config.mqtt.inflight, logger: log, clock });
  const poller = new Poller({
    targets,
    store,
    clock,
    timeZone: config.gateway.timeZone,
    intervalsMs: config.polling.intervalsMs,
    offlineAfter: config.polling.offlineAfter,
    offlineProbeMs: config.polling.offlineProbeMs,
    logger: log,
    onCommitted: () => drain.notify(),
  });

  enforceLimits(store, log);
  const limitsTimer = setInterval(() => enforceLimits(store, log), 10 * 60_000);
  limitsTimer.unref();
  session.start();
  drain.start();
  poller.start();
  log.info({ version: VERSION, buses: buses.length, meters: targets.length, broker: config.mqtt.url.replace(/\/\/[^@/]*@/, '//***@'), dataDir: config.gateway.dataDir }, 'gateway started');

  let stopping: Promise<void> | undefined;
  return {
    config,
    store,
    poller,
    status: () => ({
      meters: targets.length,
      poller: poller.stats(),
      uplink: drain.stats(),
      buses: buses.map((b) => {
        const s = b.bus.stats();
        return { ...busStatus(b), utilisation: s.utilisation, skipped: s.skipped };
      }),
    }),
    stop: () =>
      (stopping ??= (async () => {
        log.info('gateway stopping');
        clearInterval(limitsTimer);
        await poller.stop();
        await Promise.allSettled(buses.map((b) => b.bus.close()));
        await drain.stop({ timeoutMs: 5000 });
        await session.close({ timeoutMs: 3000 });
        store.close();
        log.info('gateway stopped');
      })()),
  };
}

function pollTarget(m: MeterConfig, buses: readonly OpenedBus[], log: Logger): PollTarget {
  const opened = buses.find((b) => b.config.id === m.busId)!;
  const b = opened.config;
  const meterLog = log.child({ bus: b.id });
  if (opened.kind === 'modbus') {
    const meter = new ModbusMeter({ link: opened.bus, unit: m.unit!, profile: m.profile, meterId: m.id, timeoutMs: b.timeoutMs, readRetries: b.retries, logger: meterLog });
    return { meterId: m.id, busId: m.busId, profile: m.profile, reader: meter };
  }
  const timeoutMs = b.timeoutMs ?? responseTimeoutMs({ settings: b.line, requestBytes: 24, expectedReplyBytes: 64 });
  const meter = new Dlt645Meter({ link: opened.bus, address: m.address!, edition: m.profile.protocol === 'dlt645-1997' ? '1997' : '2007', timeoutMs, readRetries: b.retries, logger: meterLog });
  const reader = new Dlt645PointReader(meter, m.profile);
  return { meterId: m.id, busId: m.busId, profile: m.profile, reader: { read: (names, o) => reader.read(names, o) } };
}

function busStatus(b: OpenedBus): BusStatus {
  const state = b.bus.state === 'up' ? 'up' : 'down';
  return state === 'up' ? { id: b.config.id, state } : { id: b.config.id, state, error: `${b.config.port} is not open` };
}

function enforceLimits(store: Store, log: Logger): void {
  try {
    const r = store.enforceLimits();
    if (r.overCap) log.error({ usedBytes: r.usedBytes }, 'storage cap reached with only undeliverable credit/alert/report data left; check the broker link');
  } catch (err) {
    log.error({ err }, 'storage limits could not be enforced');
  }
}
