import Fastify from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { ListenAddress } from '../config/index.js';
import type { Logger } from '../log.js';
import type { MetricsSnapshot } from './backend.js';

/**
 * The Prometheus registry of the gateway (docs/metrics.md lists every series). Values are taken from `snapshot` at
 * each scrape: nothing is counted twice, and a scrape costs a few small queries.
 */
export function metricsRegistry(snapshot: () => MetricsSnapshot): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'meterd_' });
  let current: MetricsSnapshot | undefined;
  // One snapshot per scrape, shared by the series: the first collect of a scrape takes it.
  const take = () => {
    current ??= snapshot();
    return current;
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: MetricsSnapshot) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this, take());
      },
    });
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter, s: MetricsSnapshot) => void) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this, take());
      },
    });

  gauge('meterd_bus_up', 'Whether the bus (serial port or converter) is open: 1 up, 0 down.', ['bus'], (g, s) => {
    for (const b of s.buses) g.set({ bus: b.id }, b.up ? 1 : 0);
  });
  gauge('meterd_bus_utilisation_ratio', 'Share of the recent wall time the bus was busy with an exchange, 0 to 1.', ['bus'], (g, s) => {
    for (const b of s.buses) g.set({ bus: b.id }, b.utilisation);
  });
  counter('meterd_bus_timeouts_total', 'Requests on the bus that got no reply in time, since start.', ['bus'], (c, s) => {
    for (const b of s.buses) c.inc({ bus: b.id }, b.timeouts);
  });
  counter('meterd_bus_retries_total', 'Requests sent again after a timeout or a bad frame, since start.', ['bus'], (c, s) => {
    for (const b of s.buses) c.inc({ bus: b.id }, b.retries);
  });
  counter('meterd_bus_reconnects_total', 'Times the bus port was reopened after it went away, since start.', ['bus'], (c, s) => {
    for (const b of s.buses) c.inc({ bus: b.id }, b.reconnects);
  });
  counter('meterd_bus_skipped_polls_total', 'Routine polls skipped because the bus could not keep up, since start.', ['bus'], (c, s) => {
    for (const b of s.buses) c.inc({ bus: b.id }, b.skipped);
  });
  gauge('meterd_broker_connected', 'Whether the MQTT session to the station broker is up: 1 or 0.', [], (g, s) => {
    g.set(s.brokerConnected ? 1 : 0);
  });
  gauge('meterd_outbox_depth', 'Messages waiting in the outbox for the broker.', [], (g, s) => {
    g.set(s.outbox.depth);
  });
  gauge('meterd_outbox_oldest_age_seconds', 'Age of the oldest message waiting in the outbox (0 when empty).', [], (g, s) => {
    g.set(s.outbox.oldestAgeSeconds ?? 0);
  });
  gauge('meterd_dead_letters', 'Messages the broker refused for good, kept in the dead-letter table.', [], (g, s) => {
    g.set(s.outbox.deadLetters);
  });
  counter('meterd_readings_stored_total', 'Meter readings committed to SQLite, since start.', [], (c, s) => {
    c.inc(s.readingsStored);
  });
  gauge(
    'meterd_meters',
    'Meters by poll state: online, offline (the meter does not answer), unreachable (its bus is down).',
    ['state'],
    (g, s) => {
      g.set({ state: 'online' }, s.meters.online);
      g.set({ state: 'offline' }, s.meters.offline);
      g.set({ state: 'unreachable' }, s.meters.unreachable);
    },
  );
  gauge('meterd_commands', 'Command records kept (commands.keepFor), by command and status.', ['command', 'status'], (g, s) => {
    for (const c of s.commands) g.set({ command: c.command, status: c.status }, c.count);
  });
  gauge('meterd_alerts_active', 'Active meter-fault alerts, by kind.', ['kind'], (g, s) => {
    for (const [kind, n] of Object.entries(s.alertsByKind)) g.set({ kind }, n);
  });
  gauge('meterd_allowance_rows', 'Rows of the allowance rounds still open, by state.', ['state'], (g, s) => {
    for (const [state, n] of Object.entries(s.allowanceRows)) g.set({ state }, n);
  });
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    current = undefined;
    try {
      return await metrics();
    } finally {
      current = undefined;
    }
  };
  return registry;
}

/** `/metrics` on its own listener: read-only, no sign-in, on this machine only (the config refuses other hosts). */
export async function startMetricsServer(
  listen: ListenAddress,
  snapshot: () => MetricsSnapshot,
  logger: Logger,
): Promise<{ url: string; close(): Promise<void> }> {
  const registry = metricsRegistry(snapshot);
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  app.setNotFoundHandler((_req, reply) => reply.code(404).type('text/plain').send('only /metrics is here\n'));
  const address = await app.listen({ host: listen.host, port: listen.port });
  const url = `${address}/metrics`;
  logger.child({ component: 'web' }).info({ url }, 'metrics listening');
  return { url, close: () => app.close() };
}
