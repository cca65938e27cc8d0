import type { Clock } from '../../clock.js';
import {
  isSubsidyLoad,
  purchaseCounterWindow,
  subsidyStateOf,
  type CreditUnit,
  type LedgerChannel,
  type LedgerEntry,
  type LedgerState,
  type Store,
  type Tx,
} from '../../store/index.js';
import { localDateTime, periodBounds, periodLabel, type BooksPeriod } from './periods.js';
import { counterScope, PointAssets } from './assets.js';
import { getOr, MeterDirectory, Reconciler, type BooksMeter, type BooksView, type MeterReconciliation } from './reconciliation.js';
import { supplyBooks, type SupplyBooks } from './supply.js';

// The cashier's report of a period: sums per operator and channel, where each load stands, the reconciliation.

/**
 * Where a load stands:
 * - `applied`: on the meter, confirmed by the meter's own counter (the load's read-back, or for a card the meter's
 *   purchase counter having reached the card's count);
 * - `awaiting`: applied in the ledger (a card written, a load without read-back) but not confirmed by the meter yet;
 * - `unsettled`: still being written or verified (received, writing, verifying);
 * - `refused`: rejected or failed: counted, never summed into sales.
 */
export type LoadStatus = 'applied' | 'awaiting' | 'unsettled' | 'refused';
export const LOAD_STATUSES: readonly LoadStatus[] = ['applied', 'awaiting', 'unsettled', 'refused'];
export const LOAD_STATUS_LABELS: Readonly<Record<LoadStatus, string>> = {
  applied: 'applied',
  awaiting: 'awaiting meter confirmation',
  unsettled: 'not settled',
  refused: 'rejected/failed',
};

/** A count of entries and the sum of their amounts (fen, or 0.01 kWh). */
export interface Tally {
  readonly count: number;
  readonly amount: number;
}

/** Sums of one unit (money in fen, energy in 0.01 kWh); the two are never added together. */
export interface BooksSum {
  readonly unit: CreditUnit;
  /** Sales: every load but the rejected and failed ones (whatever the meter has confirmed: the customer paid). */
  readonly loads: Tally;
  readonly refunds: Tally;
  /** loads − refunds. */
  readonly net: number;
  /** Loads by where they stand; applied + awaiting + unsettled = loads. */
  readonly states: Readonly<Record<LoadStatus, Tally>>;
}

export interface BooksLine extends BooksSum {
  /** Null for entries without an operator (station top-ups). */
  readonly operator: string | null;
  readonly channel: LedgerChannel;
}

export interface OperatorSum extends BooksSum {
  readonly operator: string | null;
}

export interface ChannelSum extends BooksSum {
  readonly channel: LedgerChannel;
}

export interface UnitTotal extends BooksSum {
  /** What the drawers hold: sales and refunds without the free allowances. */
  readonly cash: { readonly sales: Tally; readonly refunds: Tally; readonly net: number };
  /** Free allowances: loads on meters, never cash. */
  readonly allowances: Tally;
  /** Credit moved from a replaced meter onto its successor (docs/lifecycle.md): loads on meters, never cash, never a sale. */
  readonly transfers: Tally;
}

/** A load that is not (yet) confirmed by its meter, and why. */
export interface UnconfirmedLoad {
  readonly requestId: string;
  readonly meterId: string;
  readonly channel: LedgerChannel;
  readonly operator: string | null;
  readonly unit: CreditUnit;
  readonly amount: number;
  readonly purchaseCount: number | null;
  readonly createdAt: number;
  readonly status: Exclude<LoadStatus, 'applied'>;
  readonly ledgerState: LedgerState;
  readonly reason: string;
}

export interface BooksReport {
  readonly period: BooksPeriod;
  readonly gatewayId: string;
  readonly timeZone: string;
  readonly since: number;
  readonly until: number;
  /** When the report was made: confirmations and states are as known then. */
  readonly asOf: number;
  /** The operator the sums were restricted to, or null for all. */
  readonly operator: string | null;
  readonly lines: readonly BooksLine[];
  readonly byOperator: readonly OperatorSum[];
  readonly byChannel: readonly ChannelSum[];
  /** One per unit that has entries, money first. */
  readonly totals: readonly UnitTotal[];
  readonly unconfirmed: readonly UnconfirmedLoad[];
  /** Every meter with activity in the period, whatever the operator filter: a meter's counter knows no operators. */
  readonly reconciliation: readonly MeterReconciliation[];
  /** Monthly books: the month's confirmed cuts and restores (停(送)电记录); null in daily books. */
  readonly supply: SupplyBooks | null;
}

export interface BooksOptions {
  readonly store: Store;
  readonly clock: Clock;
  /** The gateway's id and the time zone its days are counted in (config.gateway). */
  readonly gateway: { readonly id: string; readonly timeZone: string };
  /** The configured meters (config.meters): card sales name a meter by address, readings by id. */
  readonly meters: readonly BooksMeter[];
}

export interface ReportFilter {
  /** Only this operator's entries in the sums (the reconciliation stays whole). */
  readonly operator?: string;
}

const CHANNEL_ORDER: readonly LedgerChannel[] = ['remote', 'operator', 'card', 'allowance', 'transfer'];
const UNIT_ORDER: readonly CreditUnit[] = ['money', 'energy'];

/**
 * The cashier's books: daily and monthly sums per operator and channel, where every load stands, and each active
 * meter's purchase counter reconciled with the loads the books say it took (docs/reference/prepaid.md § Books and reconciliation).
 *
 * ```ts
 * const books = new Books({ store, clock, gateway: config.gateway, meters: config.meters });
 * const report = books.report({ kind: 'daily', date: '2026-11-27' }, { operator: 'alice' });
 * ```
 */
export class Books {
  private readonly reconciler: Reconciler;

  constructor(private readonly opts: BooksOptions) {
    this.reconciler = new Reconciler({ store: opts.store, meters: opts.meters, timeZone: opts.gateway.timeZone });
  }

  /** The meter register as of this report: which meter numbers name each point, and which meter served it when. */
  private view(): BooksView {
    const assets = new PointAssets(this.opts.store.register.all());
    return { directory: new MeterDirectory(this.opts.meters, assets), assets };
  }

  get timeZone(): string {
    return this.opts.gateway.timeZone;
  }

  /** The report of a period, read from one consistent snapshot of the ledger and the readings. */
  report(period: BooksPeriod, filter: ReportFilter = {}): BooksReport {
    return this.opts.store.transaction((tx) => this.reportIn(tx, period, filter));
  }

  /** `report` inside the caller's transaction (the publisher enqueues it in the same one). */
  reportIn(tx: Tx, period: BooksPeriod, filter: ReportFilter = {}): BooksReport {
    const timeZone = this.opts.gateway.timeZone;
    const { since, until } = periodBounds(period, timeZone);
    const asOf = this.opts.clock.now();
    const ledger = this.opts.store.ledger;
    const all = ledger.list({ since, until, limit: Number.MAX_SAFE_INTEGER });
    // Opening entries are where a meter's books start (docs/books.md § Opening entries): no money, not a load.
    const moving = all.filter((e) => e.kind !== 'opening');
    const entries = filter.operator === undefined ? moving : moving.filter((e) => e.operator === filter.operator);

    const view = this.view();
    const statusOf = new Map<number, { status: LoadStatus; reason: string }>();
    for (const e of entries) if (e.kind === 'load') statusOf.set(e.id, this.loadStatus(tx, e, asOf, view));

    const lines = new Map<string, Acc & { operator: string | null; channel: LedgerChannel }>();
    const operators = new Map<string, Acc & { operator: string | null }>();
    const channels = new Map<string, Acc & { channel: LedgerChannel }>();
    const totals = new Map<
      CreditUnit,
      Acc & { cashSales: MutableTally; cashRefunds: MutableTally; allowances: MutableTally; transfers: MutableTally }
    >();
    for (const e of entries) {
      const status = e.kind === 'load' ? statusOf.get(e.id)!.status : null;
      const line = getOr(lines, `${e.operator ?? ''}\u0000${e.channel}\u0000${e.unit}`, () => ({
        ...acc(e.unit),
        operator: e.operator,
        channel: e.channel,
      }));
      const op = getOr(operators, `${e.operator ?? ''}\u0000${e.unit}`, () => ({ ...acc(e.unit), operator: e.operator }));
      const ch = getOr(channels, `${e.channel}\u0000${e.unit}`, () => ({ ...acc(e.unit), channel: e.channel }));
      const total = getOr(totals, e.unit, () => ({
        ...acc(e.unit),
        cashSales: tally(),
        cashRefunds: tally(),
        allowances: tally(),
        transfers: tally(),
      }));
      for (const a of [line, op, ch, total]) add(a, e, status);
      if (e.kind === 'refund') bump(total.cashRefunds, e.amount);
      else if (status !== 'refused')
        bump(e.channel === 'allowance' ? total.allowances : e.channel === 'transfer' ? total.transfers : total.cashSales, e.amount);
    }

    const unconfirmed: UnconfirmedLoad[] = [];
    for (const e of entries) {
      const s = statusOf.get(e.id);
      if (s === undefined || s.status === 'applied') continue;
      unconfirmed.push({
        requestId: e.requestId,
        meterId: e.meterId,
        channel: e.channel,
        operator: e.operator,
        unit: e.unit,
        amount: e.amount,
        purchaseCount: e.purchaseCount,
        createdAt: e.createdAt,
        status: s.status,
        ledgerState: e.state,
        reason: s.reason,
      });
    }

    const byOperatorThenChannel = (a: { operator: string | null; channel: LedgerChannel; unit: CreditUnit }, b: typeof a) =>
      compareOperator(a.operator, b.operator) ||
      CHANNEL_ORDER.indexOf(a.channel) - CHANNEL_ORDER.indexOf(b.channel) ||
      UNIT_ORDER.indexOf(a.unit) - UNIT_ORDER.indexOf(b.unit);
    return {
      period,
      gatewayId: this.opts.gateway.id,
      timeZone,
      since,
      until,
      asOf,
      operator: filter.operator ?? null,
      lines: [...lines.values()].map((a) => ({ operator: a.operator, channel: a.channel, ...finish(a) })).sort(byOperatorThenChannel),
      byOperator: [...operators.values()]
        .map((a) => ({ operator: a.operator, ...finish(a) }))
        .sort((a, b) => compareOperator(a.operator, b.operator) || UNIT_ORDER.indexOf(a.unit) - UNIT_ORDER.indexOf(b.unit)),
      byChannel: [...channels.values()]
        .map((a) => ({ channel: a.channel, ...finish(a) }))
        .sort(
          (a, b) =>
            CHANNEL_ORDER.indexOf(a.channel) - CHANNEL_ORDER.indexOf(b.channel) || UNIT_ORDER.indexOf(a.unit) - UNIT_ORDER.indexOf(b.unit),
        ),
      totals: UNIT_ORDER.flatMap((unit) => {
        const a = totals.get(unit);
        if (!a) return [];
        return [
          {
            ...finish(a),
            cash: { sales: { ...a.cashSales }, refunds: { ...a.cashRefunds }, net: a.cashSales.amount - a.cashRefunds.amount },
            allowances: { ...a.allowances },
            transfers: { ...a.transfers },
          },
        ];
      }),
      unconfirmed: unconfirmed.sort((a, b) => a.createdAt - b.createdAt),
      reconciliation: this.reconciler.reconcile(tx, all, since, until, asOf, view),
      supply: period.kind === 'monthly' ? supplyBooks(this.opts.store, since, until) : null,
    };
  }

  /** Where one load stands, and for anything short of confirmed, why. */
  private loadStatus(tx: Tx, e: LedgerEntry, asOf: number, view: BooksView): { status: LoadStatus; reason: string } {
    if (e.state === 'rejected' || e.state === 'failed') {
      return { status: 'refused', reason: e.error ? `${e.state}: ${e.error.code}: ${e.error.message}` : e.state };
    }
    if (e.state !== 'applied') {
      return { status: 'unsettled', reason: `not settled yet (${e.state})${e.error ? `: ${e.error.code}: ${e.error.message}` : ''}` };
    }
    // A free-energy load is applied only once its registers were read back at the values written.
    const free = subsidyStateOf(e);
    if (isSubsidyLoad(e) && free) {
      const read = free.registers.map((r) => `${r.name} at ${(r.after ?? r.target) / 100} kWh`).join(', ');
      return { status: 'applied', reason: `read back: ${read}` };
    }
    if (e.after !== null && (e.purchaseCount === null || e.after.count >= e.purchaseCount)) {
      return { status: 'applied', reason: `read back: counter at ${e.after.count}` };
    }
    const notInserted = e.channel === 'card' ? 'card sold but not yet inserted' : 'load not confirmed';
    if (e.purchaseCount === null)
      return { status: 'awaiting', reason: `${notInserted}: no purchase count recorded to compare with the meter's counter` };
    const meter = view.directory.resolve(e.meterId);
    if (!meter) {
      return {
        status: 'awaiting',
        reason: `meter ${e.meterId} is not in the gateway's config: its purchase counter is never read, so the load cannot be confirmed`,
      };
    }
    // Only the counter of the meter the load was made for: a successor's counter reaching the count proves nothing.
    const span = view.assets.spanOf(view.assets.spansOf({ id: meter.id, keys: view.directory.keysOf(meter) }), e);
    const seen = purchaseCounterWindow(tx, meter.id, e.createdAt, Math.min(asOf + 1, span.to), counterScope(span));
    if (!seen) return { status: 'awaiting', reason: `${notInserted}: no purchase-counter reading of ${meter.id} since the sale` };
    if (seen.highest.count >= e.purchaseCount) {
      return {
        status: 'applied',
        reason: `counter of ${meter.id} at ${seen.highest.count} on ${localDateTime(seen.highest.at, this.timeZone)}`,
      };
    }
    return {
      status: 'awaiting',
      reason: `${notInserted}: counter of ${meter.id} at ${seen.last.count} on ${localDateTime(seen.last.at, this.timeZone)}, purchase ${e.purchaseCount} not reached`,
    };
  }
}

interface MutableTally {
  count: number;
  amount: number;
}

interface Acc {
  unit: CreditUnit;
  loads: MutableTally;
  refunds: MutableTally;
  states: Record<LoadStatus, MutableTally>;
}

function tally(): MutableTally {
  return { count: 0, amount: 0 };
}

function acc(unit: CreditUnit): Acc {
  return { unit, loads: tally(), refunds: tally(), states: { applied: tally(), awaiting: tally(), unsettled: tally(), refused: tally() } };
}

function bump(t: MutableTally, amount: number): void {
  t.count += 1;
  t.amount += amount;
}

function add(a: Acc, e: LedgerEntry, status: LoadStatus | null): void {
  if (e.kind === 'refund') {
    bump(a.refunds, e.amount);
    return;
  }
  bump(a.states[status!], e.amount);
  if (status !== 'refused') bump(a.loads, e.amount);
}

function finish(a: Acc): BooksSum {
  return {
    unit: a.unit,
    loads: { ...a.loads },
    refunds: { ...a.refunds },
    net: a.loads.amount - a.refunds.amount,
    states: {
      applied: { ...a.states.applied },
      awaiting: { ...a.states.awaiting },
      unsettled: { ...a.states.unsettled },
      refused: { ...a.states.refused },
    },
  };
}

/** Named operators alphabetically, entries without an operator last. */
function compareOperator(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

/** 12345 → "123.45"; -50 → "-0.50". Integer arithmetic only: the ledger's units are never floats. */
export function formatUnits(amount: number): string {
  const sign = amount < 0 ? '-' : '';
  const a = Math.abs(amount);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}

/** 'CNY' for money (fen), 'kWh' for energy (0.01 kWh). */
export function unitLabel(unit: CreditUnit): 'CNY' | 'kWh' {
  return unit === 'money' ? 'CNY' : 'kWh';
}

/**
 * The report as JSON for the station and `--format json`: every amount as the exact integer (fen or 0.01 kWh, by
 * `unit`) beside its formatted text ("200.00 CNY"), times as ISO 8601 and local text.
 */
export function reportJson(r: BooksReport): Record<string, unknown> {
  const money = (amount: number, unit: CreditUnit) => ({ amount, text: `${formatUnits(amount)} ${unitLabel(unit)}` });
  const t = (x: Tally, unit: CreditUnit) => ({ count: x.count, ...money(x.amount, unit) });
  const sum = (s: BooksSum) => ({
    unit: s.unit,
    loads: t(s.loads, s.unit),
    refunds: t(s.refunds, s.unit),
    net: money(s.net, s.unit),
    states: Object.fromEntries(LOAD_STATUSES.map((k) => [k, t(s.states[k], s.unit)])),
  });
  const time = (ms: number) => ({ at: new Date(ms).toISOString(), local: localDateTime(ms, r.timeZone) });
  return {
    report: r.period.kind,
    period: periodLabel(r.period),
    gateway: r.gatewayId,
    timeZone: r.timeZone,
    from: new Date(r.since).toISOString(),
    until: new Date(r.until).toISOString(),
    asOf: new Date(r.asOf).toISOString(),
    operator: r.operator,
    lines: r.lines.map((l) => ({ operator: l.operator, channel: l.channel, ...sum(l) })),
    byOperator: r.byOperator.map((l) => ({ operator: l.operator, ...sum(l) })),
    byChannel: r.byChannel.map((l) => ({ channel: l.channel, ...sum(l) })),
    totals: r.totals.map((l) => ({
      ...sum(l),
      cash: { sales: t(l.cash.sales, l.unit), refunds: t(l.cash.refunds, l.unit), net: money(l.cash.net, l.unit) },
      allowances: t(l.allowances, l.unit),
      transfers: t(l.transfers, l.unit),
    })),
    unconfirmed: r.unconfirmed.map((u) => ({
      requestId: u.requestId,
      meter: u.meterId,
      channel: u.channel,
      operator: u.operator,
      unit: u.unit,
      ...money(u.amount, u.unit),
      purchaseCount: u.purchaseCount,
      created: time(u.createdAt),
      status: u.status,
      ledgerState: u.ledgerState,
      reason: u.reason,
    })),
    reconciliation: r.reconciliation.map((m) => ({
      meter: m.meterId,
      address: m.address,
      opening: m.opening && { count: m.opening.count, source: m.opening.source, ...time(m.opening.at) },
      closing: m.closing && { count: m.closing.count, source: m.closing.source, ...time(m.closing.at) },
      counterDelta: m.counterDelta,
      booksLoads: m.booksLoads,
      difference: m.difference,
      status: m.status,
      findings: m.findings,
      swaps: m.swaps.map((w) => ({
        ...time(w.at),
        oldAddress: w.oldAddress,
        newAddress: w.newAddress,
        finalCount: w.finalCount,
        initialCount: w.initialCount,
        closingCount: w.closingCount,
        transfers: w.transfers,
        text: w.text,
      })),
    })),
    ...(r.supply !== null
      ? {
          supply: {
            cuts: r.supply.cuts,
            restores: r.supply.restores,
            relayTrips: r.supply.relayTrips,
            relayCloses: r.supply.relayCloses,
            lines: r.supply.lines.map((l) => ({
              ...time(l.at),
              meter: l.meterId,
              kind: l.kind,
              noticeId: l.noticeId,
              reason: l.reason,
              by: l.by,
              approvedBy: l.approvedBy,
              why: l.why,
            })),
          },
        }
      : {}),
  };
}
