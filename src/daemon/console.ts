import { statfsSync } from 'node:fs';
import type { Clock, Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import {
  addDays,
  Books,
  type BooksReport,
  localDate,
  parseBooksDate,
  parseBooksMonth,
  reportCsv,
  reportJson,
} from '../services/books/index.js';
import { explainDay, linelossSeries } from '../services/lineloss/index.js';
import { UserService } from '../services/users.js';
import { commandCounts, type PointValue } from '../store/index.js';
import type { ChartPoint, ConsoleBackend, CounterDesk, MeterRow } from '../web/backend.js';
import type { startMetricsServer } from '../web/metrics.js';
import { startWebConsole, type WebConsole } from '../web/server.js';
import type { Gateway } from './gateway.js';

const MAX_READ_POINTS = 64;
/** How long the day's sales figure is reused: the overview asks every second, the books answer in milliseconds. */
const SALES_CACHE_MS = 5_000;

/**
 * The console's view of a running gateway: the services and the store's read side behind the small interface the
 * web layer knows (src/web/backend.ts). Reads only; every action goes through the router's local door (`desk`).
 */
export function consoleBackend(gateway: Gateway, clock: Clock, logger: Logger = silentLogger): ConsoleBackend {
  const { config, store } = gateway;
  const users = new UserService({ store, clock });
  const books = new Books({ store, clock, gateway: config.gateway, meters: config.meters });
  // Looked up at each use: a replacement puts the new meter's entry (address, profile) in the list in place of the old.
  const byId = { get: (id: string) => config.meters.find((m) => m.id === id) };
  let sales: { at: number; value: ReturnType<ConsoleBackend['salesToday']> } | undefined;

  const row = (id: string, activeByMeter: Map<string, number>): MeterRow | null => {
    const m = byId.get(id);
    if (m === undefined) return null;
    const s = store.meterStates.get(id);
    return rowOf(m, s, activeByMeter.get(id) ?? 0);
  };
  const activeCounts = () => {
    const counts = new Map<string, number>();
    for (const a of store.alerts.active()) counts.set(a.meterId, (counts.get(a.meterId) ?? 0) + 1);
    return counts;
  };

  return {
    gatewayId: config.gateway.id,
    timeZone: config.gateway.timeZone,
    status: () => gateway.desk.status(),
    submit: (command, request, sender) => gateway.desk.submit(command, request, sender),
    users,
    sessions: store.webSessions,
    counter: config.encoders.length === 0 ? null : counterDesk(gateway, logger),
    meters: () => {
      const states = new Map(store.meterStates.list().map((s) => [s.meterId, s]));
      const active = activeCounts();
      return config.meters.map((m) => rowOf(m, states.get(m.id) ?? null, active.get(m.id) ?? 0));
    },
    meter: (id) => row(id, activeCounts()),
    readPoints: (id) => {
      const m = byId.get(id);
      if (m === undefined) return [];
      return [...new Set(m.profile.groups.filter((g) => g.name !== 'daily').flatMap((g) => g.points))].slice(0, MAX_READ_POINTS);
    },
    readings: (id, sinceMs) => store.readings.since(id, sinceMs, 5_000).map(chartPoint),
    ledger: (id, limit) => {
      // A meter's card sales are booked under its address (the card's meter number), its other loads under its id.
      const address = byId.get(id)?.address;
      const entries = store.ledger.list({ meterId: id });
      if (address !== undefined && address !== id) entries.push(...store.ledger.list({ meterId: address }));
      return entries.sort((a, b) => b.id - a.id).slice(0, limit);
    },
    salesToday: () => {
      const now = clock.now();
      if (sales !== undefined && now - sales.at < SALES_CACHE_MS) return sales.value;
      const report: BooksReport = books.report({ kind: 'daily', date: localDate(now, config.gateway.timeZone) });
      let moneyFen = 0;
      let energyCentiKwh = 0;
      let loads = 0;
      for (const t of report.totals) {
        loads += t.cash.sales.count;
        if (t.unit === 'money') moneyFen += t.cash.net;
        else energyCentiKwh += t.cash.net;
      }
      sales = { at: now, value: { loads, moneyFen, energyCentiKwh } };
      return sales.value;
    },
    alerts: () => ({ active: store.alerts.active(), history: store.alerts.history({ limit: 500 }) }),
    alertNotes: (alertId) => store.alerts.notes(alertId),
    books: (kind, period, operator) => {
      const p = kind === 'daily' ? { kind, date: parseBooksDate(period) } : { kind, month: parseBooksMonth(period) };
      const report = books.report(p, operator === undefined ? {} : { operator });
      return { json: reportJson(report), csv: reportCsv(report) };
    },
    meterByNumber: (meterNumber) => {
      const m = config.meters.find((x) => x.address === meterNumber);
      return m === undefined ? null : row(m.id, activeCounts());
    },
    // Card sales are booked under the card's meter number (the DL/T 645 address), as the card names the meter.
    cardSaleId: (meterId, purchaseCount) =>
      store.ledger
        .list({ meterId: byId.get(meterId)?.address ?? meterId })
        .filter((e) => e.channel === 'card' && e.purchaseCount === purchaseCount)
        .at(-1)?.id ?? null,
    districts: () =>
      config.districts.flatMap((d) =>
        d.supplyMeter === undefined
          ? []
          : [
              {
                id: d.id,
                name: d.name ?? null,
                supplyMeter: d.supplyMeter,
                members: config.meters.filter((m) => m.district === d.id && m.id !== d.supplyMeter).length,
                qualified: d.lineloss.qualified,
                target: d.lineloss.target ?? null,
              },
            ],
      ),
    lineloss: (district, month) => {
      let m: string;
      if (month !== undefined) m = parseBooksMonth(month);
      else {
        const today = localDate(clock.now(), config.gateway.timeZone);
        const latest = linelossSeries(store, { district, from: addDays(today, -62), to: today }).days.at(-1);
        m = (latest?.period ?? today).slice(0, 7);
      }
      const from = `${m}-01`;
      // The last day of the month: the 28th plus a week is in the next month; its first, less a day.
      const to = addDays(`${addDays(`${m}-28`, 7).slice(0, 7)}-01`, -1);
      const s = linelossSeries(store, { district, from, to });
      return {
        district,
        month: m,
        days: s.days.map((f) => f.figure),
        monthFigure: s.months.find((f) => f.period === m)?.figure ?? null,
      };
    },
    linelossDay: (district, date) => {
      const e = explainDay(store, district, parseBooksDate(date));
      return e === null ? null : { figure: e.figure.figure, members: e.members };
    },
    supplyNotices: (meterId) => store.supply.list({ meterId, limit: 20 }).map((n) => ({ ...n })),
    supplyNoticeMeter: (noticeId) => store.supply.notice(noticeId)?.meterId ?? null,
    allowances: () => ({ rounds: gateway.allowances.status(), attention: gateway.allowances.attention() }),
    disk: () => {
      try {
        const f = statfsSync(config.gateway.dataDir);
        return { freeBytes: f.bavail * f.bsize, totalBytes: f.blocks * f.bsize };
      } catch {
        return null;
      }
    },
    metrics: () => {
      const g = gateway.status();
      const d = gateway.desk.status();
      const alertsByKind: Record<string, number> = {};
      for (const a of store.alerts.active()) alertsByKind[a.kind] = (alertsByKind[a.kind] ?? 0) + 1;
      const allowanceRows: Record<string, number> = {};
      for (const round of gateway.allowances.status())
        if (!round.complete) for (const [state, n] of Object.entries(round.counts)) allowanceRows[state] = (allowanceRows[state] ?? 0) + n;
      return {
        buses: g.buses.map((b) => ({
          id: b.id,
          up: b.state === 'up',
          utilisation: b.utilisation,
          timeouts: b.timeouts,
          retries: b.retries,
          reconnects: b.reconnects,
          skipped: b.skipped,
        })),
        brokerConnected: d.broker.connected,
        outbox: d.outbox,
        readingsStored: g.poller.readingsStored,
        meters: { online: g.poller.online, offline: g.poller.offline, unreachable: g.poller.unreachable },
        commands: store.transaction((tx) => commandCounts(tx)),
        alertsByKind,
        allowanceRows,
      };
    },
  };
}

/** The counter's card maintenance on the gateway's encoders (the card stack is loaded at first use, as the gateway does). */
function counterDesk(gateway: Gateway, logger: Logger): CounterDesk {
  let counter: Promise<import('../cards/index.js').GatewayCardCounter> | undefined;
  const get = () => {
    counter ??= import('./card-handlers.js').then((m) => m.gatewayCardCounter(gateway.config, gateway.store, logger));
    return counter;
  };
  return {
    unit: async (encoder) => ((await get()).amountUnit(encoder) === 'fen' ? 'money' : 'energy'),
    health: async (encoder) => {
      const h = await (await get()).health(encoder);
      return { ...h, findings: [...h.findings] };
    },
    reissue: async (meter, encoder) => {
      const r = await (await get()).reissue({ meter, ...(encoder ? { encoder } : {}) });
      return { meterNumber: r.meterNumber, count: r.count, amount: r.amount, unit: r.unit === 'fen' ? 'money' : 'energy' };
    },
    checkCard: async (anyMeter, encoder) => {
      const card = await (await get()).checkCard({ anyMeter, ...(encoder ? { encoder } : {}) });
      return { meterNumber: card.meterNumber, role: card.role };
    },
  };
}

function rowOf(
  m: Gateway['config']['meters'][number],
  s: ReturnType<Gateway['store']['meterStates']['get']>,
  activeAlerts: number,
): MeterRow {
  return {
    id: m.id,
    bus: m.busId,
    customerNo: m.customerNo ?? null,
    district: m.district ?? null,
    profile: m.profile.id,
    creditUnit: m.profile.credit?.unit ?? null,
    online: s?.online ?? false,
    relay: s?.relayState ?? null,
    balance: s?.balance ?? null,
    lastGoodReadAt: s?.lastGoodReadAt ?? null,
    activeAlerts,
    can: {
      relay: m.profile.relay !== undefined,
      topup: m.profile.credit !== undefined,
      timeSync: m.profile.protocol.startsWith('dlt645') && m.address !== undefined,
    },
  };
}

function num(v: PointValue | undefined): number | null {
  return v !== undefined && 'v' in v && typeof v.v === 'number' ? v.v : null;
}

function chartPoint(r: { takenAt: number; values: Readonly<Record<string, PointValue>> }): ChartPoint {
  const v = r.values;
  return {
    t: r.takenAt,
    energyKwh: num(v['energy.active.import']),
    balance: num(v['credit.balance.money']) ?? num(v['credit.balance.energy']),
    voltage: num(v['voltage.a']),
  };
}

export interface ServeConsoleOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly timers: Timers;
}

/**
 * Starts the console for `meterd run` and the demo. A console that cannot listen (the port is taken) is logged and
 * left out: the gateway's metering does not depend on a web page. Refused outright: a non-local address with no
 * user, which would put a sign-in page nobody can pass on the network.
 */
export async function serveConsole(gateway: Gateway, opts: ServeConsoleOptions): Promise<WebConsole | undefined> {
  const web = gateway.config.web;
  if (web.listen === null && web.metrics === null) return undefined;
  const backend = consoleBackend(gateway, opts.clock, opts.logger);
  let metrics: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  if (web.metrics !== null) {
    try {
      // Loaded only when /metrics is configured: prom-client pulls in Node's cluster module and builds its registry
      // at import, about 1 MB a gateway without a Prometheus scraper would carry for nothing (docs/memory.md).
      const { startMetricsServer } = await import('../web/metrics.js');
      metrics = await startMetricsServer(web.metrics, () => backend.metrics(), opts.logger);
    } catch (err) {
      opts.logger.error({ err, listen: web.metrics }, '/metrics could not start; the gateway runs without it (see web.metrics.listen)');
    }
  }
  let console_: WebConsole | undefined;
  try {
    console_ = await startWebConsole({ web, backend, logger: opts.logger, clock: opts.clock, timers: opts.timers });
  } catch (err) {
    if ((err as { code?: string }).code === 'WEB_NO_USERS') {
      await metrics?.close();
      throw err;
    }
    opts.logger.error({ err, listen: web.listen }, 'the web console could not start; the gateway runs without it (see web.listen)');
  }
  return {
    url: console_?.url,
    close: async () => {
      await console_?.close();
      await metrics?.close();
    },
  };
}
