import type { Clock } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import {
  enqueue,
  lastPublishedPeriod,
  markReportPublished,
  purchaseCounterBefore,
  purchaseCounterWindow,
  reportPublishedAt,
  type CreditUnit,
  type LedgerChannel,
  type LedgerEntry,
  type LedgerState,
  type Store,
  type Tx,
} from '../store/index.js';
import { localParts, nextLocalTime, zoneOffsetMs } from './schedule.js';

// ─── Periods: the gateway's local days and months ────────────────────────────────────────────────────────────────

/** A local day ('2026-11-27') or month ('2026-11') in the gateway's time zone. */
export type BooksPeriod = { readonly kind: 'daily'; readonly date: string } | { readonly kind: 'monthly'; readonly month: string };

export type BooksErrorCode =
  /** A date or month that is not YYYY-MM-DD / YYYY-MM, or not on the calendar. */
  | 'BOOKS_PERIOD_INVALID'
  /** Publishing a day that has not ended yet in the gateway's time zone. */
  | 'BOOKS_DAY_OPEN';

export class BooksError extends Error {
  override readonly name = 'BooksError';
  constructor(
    readonly code: BooksErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Checks a 'YYYY-MM-DD' date; returns it unchanged. */
export function parseBooksDate(text: string): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ok = m !== null && calendarOk(Number(m[1]), Number(m[2]), Number(m[3]));
  if (!ok) throw new BooksError('BOOKS_PERIOD_INVALID', `"${text}" is not a date written YYYY-MM-DD (e.g. 2026-11-27)`);
  return text;
}

/** Checks a 'YYYY-MM' month; returns it unchanged. */
export function parseBooksMonth(text: string): string {
  const m = /^(\d{4})-(\d{2})$/.exec(text);
  const ok = m !== null && calendarOk(Number(m[1]), Number(m[2]), 1);
  if (!ok) throw new BooksError('BOOKS_PERIOD_INVALID', `"${text}" is not a month written YYYY-MM (e.g. 2026-11)`);
  return text;
}

/** The period's label: the date or the month. */
export function periodLabel(period: BooksPeriod): string {
  return period.kind === 'daily' ? period.date : period.month;
}

/** [since, until) in epoch ms of a local day or month: from local midnight to the next local midnight. */
export function periodBounds(period: BooksPeriod, timeZone: string): { since: number; until: number } {
  if (period.kind === 'daily') {
    const [y, m, d] = parseBooksDate(period.date).split('-').map(Number) as [number, number, number];
    return { since: localMidnight(y, m, d, timeZone), until: localMidnight(y, m, d + 1, timeZone) };
  }
  const [y, m] = parseBooksMonth(period.month).split('-').map(Number) as [number, number];
  return { since: localMidnight(y, m, 1, timeZone), until: localMidnight(y, m + 1, 1, timeZone) };
}

/** The local date ('2026-11-27') of an instant in a zone. */
export function localDate(epochMs: number, timeZone: string): string {
  const p = localParts(epochMs, timeZone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}`;
}

/** The local date and time ('2026-11-27 23:59') of an instant in a zone. */
export function localDateTime(epochMs: number, timeZone: string): string {
  const p = localParts(epochMs, timeZone);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
}

/** The date `days` calendar days after (or before) a 'YYYY-MM-DD' date. */
export function addDays(date: string, days: number): string {
  const [y, m, d] = parseBooksDate(date).split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, m - 1, d + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}

function localMidnight(year: number, month: number, day: number, timeZone: string): number {
  const guessUtc = Date.UTC(year, month - 1, day);
  // Two passes settle the offset across a daylight-saving change, as nextLocalTime does.
  const t = guessUtc - zoneOffsetMs(guessUtc, timeZone);
  return guessUtc - zoneOffsetMs(t, timeZone);
}

function calendarOk(y: number, m: number, d: number): boolean {
  const t = new Date(Date.UTC(y, m - 1, d));
  return y >= 1970 && t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

// ─── The report ──────────────────────────────────────────────────────────────────────────────────────────────────

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

export type FindingKind =
  /** A card sale of the period whose count the meter's counter had not reached by the end of the period. */
  | 'card-not-inserted'
  /** A remote, technician or allowance load of the period that the counter does not show. */
  | 'load-not-confirmed'
  /** The counter reached a count sold in an earlier period (a card inserted later): explained, not an alarm. */
  | 'earlier-load-confirmed'
  /** The counter reached the count of a load that is still being settled. */
  | 'unsettled-load'
  /** The counter moved with no load of that count in the books: another station, an old or test card, fraud. */
  | 'outside-load'
  /** The meter was at or past a load's count before the load was made: the count was used by another load. */
  | 'count-conflict'
  /** A load reached the meter before its first counter reading of the period, with no reading before to compare. */
  | 'before-first-reading'
  /** No purchase-counter reading in the period. */
  | 'no-readings'
  /** A card's meter number that no configured meter has: its counter is never read. */
  | 'meter-not-configured'
  /** The counter went down: the meter was replaced or reset. */
  | 'counter-went-back';

export interface ReconciliationFinding {
  readonly kind: FindingKind;
  readonly purchaseCount: number | null;
  readonly requestId: string | null;
  readonly meaning: string;
}

export type ReconciliationStatus = 'balanced' | 'difference' | 'not-reconcilable';

export interface CounterPoint {
  readonly count: number;
  readonly at: number;
  /** A poll of the meter, or a load's own read before / after. */
  readonly source: 'reading' | 'ledger';
}

/** One meter's purchase counter over the period against the loads the books say were applied on it. */
export interface MeterReconciliation {
  /** The configured meter's id, or the card's meter number when no configured meter has it. */
  readonly meterId: string;
  readonly address: string | null;
  /** The last counter value known before the period (else the first one in it). */
  readonly opening: CounterPoint | null;
  /** The last counter value read in the period. */
  readonly closing: CounterPoint | null;
  /** closing − opening, or null when not reconcilable. */
  readonly counterDelta: number | null;
  /** Loads applied in the books in the period on this meter (every channel and operator). */
  readonly booksLoads: number;
  /** booksLoads − counterDelta: positive when the books are ahead of the meter. */
  readonly difference: number | null;
  readonly status: ReconciliationStatus;
  readonly findings: readonly ReconciliationFinding[];
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
}

/** A configured meter as the books need it: the id readings are stored under, the address cards carry. */
export interface BooksMeter {
  readonly id: string;
  readonly address?: string;
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

const CHANNEL_ORDER: readonly LedgerChannel[] = ['remote', 'operator', 'card', 'allowance'];
const UNIT_ORDER: readonly CreditUnit[] = ['money', 'energy'];
/** A counter that jumped further than this is reported as one finding, not one per purchase. */
const MAX_LISTED_STEPS = 100;

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
  private readonly directory: MeterDirectory;

  constructor(private readonly opts: BooksOptions) {
    this.directory = new MeterDirectory(opts.meters);
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
    const entries = filter.operator === undefined ? all : all.filter((e) => e.operator === filter.operator);

    const statusOf = new Map<number, { status: LoadStatus; reason: string }>();
    for (const e of entries) if (e.kind === 'load') statusOf.set(e.id, this.loadStatus(tx, e, asOf));

    const lines = new Map<string, Acc & { operator: string | null; channel: LedgerChannel }>();
    const operators = new Map<string, Acc & { operator: string | null }>();
    const channels = new Map<string, Acc & { channel: LedgerChannel }>();
    const totals = new Map<CreditUnit, Acc & { cashSales: MutableTally; cashRefunds: MutableTally; allowances: MutableTally }>();
    for (const e of entries) {
      const status = e.kind === 'load' ? statusOf.get(e.id)!.status : null;
      const line = getOr(lines, `${e.operator ?? ''}\u0000${e.channel}\u0000${e.unit}`, () => ({
        ...acc(e.unit),
        operator: e.operator,
        channel: e.channel,
      }));
      const op = getOr(operators, `${e.operator ?? ''}\u0000${e.unit}`, () => ({ ...acc(e.unit), operator: e.operator }));
      const ch = getOr(channels, `${e.channel}\u0000${e.unit}`, () => ({ ...acc(e.unit), channel: e.channel }));
      const total = getOr(totals, e.unit, () => ({ ...acc(e.unit), cashSales: tally(), cashRefunds: tally(), allowances: tally() }));
      for (const a of [line, op, ch, total]) add(a, e, status);
      if (e.kind === 'refund') bump(total.cashRefunds, e.amount);
      else if (status !== 'refused') bump(e.channel === 'allowance' ? total.allowances : total.cashSales, e.amount);
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
          },
        ];
      }),
      unconfirmed: unconfirmed.sort((a, b) => a.createdAt - b.createdAt),
      reconciliation: this.reconcile(tx, all, since, until, asOf),
    };
  }

  /** Where one load stands, and for anything short of confirmed, why. */
  private loadStatus(tx: Tx, e: LedgerEntry, asOf: number): { status: LoadStatus; reason: string } {
    if (e.state === 'rejected' || e.state === 'failed') {
      return { status: 'refused', reason: e.error ? `${e.state}: ${e.error.code}: ${e.error.message}` : e.state };
    }
    if (e.state !== 'applied') {
      return { status: 'unsettled', reason: `not settled yet (${e.state})${e.error ? `: ${e.error.code}: ${e.error.message}` : ''}` };
    }
    if (e.after !== null && (e.purchaseCount === null || e.after.count >= e.purchaseCount)) {
      return { status: 'applied', reason: `read back: counter at ${e.after.count}` };
    }
    const notInserted = e.channel === 'card' ? 'card sold but not yet inserted' : 'load not confirmed';
    if (e.purchaseCount === null)
      return { status: 'awaiting', reason: `${notInserted}: no purchase count recorded to compare with the meter's counter` };
    const meter = this.directory.resolve(e.meterId);
    if (!meter) {
      return {
        status: 'awaiting',
        reason: `meter ${e.meterId} is not in the gateway's config: its purchase counter is never read, so the load cannot be confirmed`,
      };
    }
    const seen = purchaseCounterWindow(tx, meter.id, e.createdAt, asOf + 1);
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

  /** Every meter with loads in the period or whose counter moved in it, reconciled. */
  private reconcile(tx: Tx, all: readonly LedgerEntry[], since: number, until: number, asOf: number): MeterReconciliation[] {
    const active = new Map<string, { meter: BooksMeter | null; loads: LedgerEntry[] }>();
    for (const e of all) {
      if (e.kind !== 'load') continue;
      const meter = this.directory.resolve(e.meterId);
      getOr(active, meter?.id ?? e.meterId, () => ({ meter, loads: [] })).loads.push(e);
    }
    for (const meter of this.opts.meters) if (!active.has(meter.id)) active.set(meter.id, { meter, loads: [] });

    const out: MeterReconciliation[] = [];
    for (const [key, { meter, loads }] of active) {
      if (meter && loads.length === 0 && this.counterStill(tx, meter, since, until)) continue;
      const r = meter ? this.reconcileMeter(tx, meter, loads, since, until, asOf) : unconfigured(key, loads);
      // A configured meter with no loads is listed only when its counter moved (a load from outside) or went back.
      if (loads.length === 0 && (r.counterDelta === null || r.counterDelta === 0) && r.findings.every((f) => f.kind === 'no-readings'))
        continue;
      out.push(r);
    }
    return out.sort((a, b) => (a.meterId < b.meterId ? -1 : a.meterId > b.meterId ? 1 : 0));
  }

  /** True when the polls show a meter's counter did not move in the period (or were never read): a cheap skip of idle meters. */
  private counterStill(tx: Tx, meter: BooksMeter, since: number, until: number): boolean {
    const window = purchaseCounterWindow(tx, meter.id, since, until);
    if (!window) return true;
    const opening = purchaseCounterBefore(tx, meter.id, since)?.count ?? window.first.count;
    return window.last.count === opening && window.highest.count === opening;
  }

  private reconcileMeter(
    tx: Tx,
    meter: BooksMeter,
    periodLoads: readonly LedgerEntry[],
    since: number,
    until: number,
    asOf: number,
  ): MeterReconciliation {
    const tz = this.timeZone;
    // Every load this meter ever had up to the period's end, under its id (remote) and its address (cards).
    const history = this.directory
      .keysOf(meter)
      .flatMap((key) => this.opts.store.ledger.list({ meterId: key, until, limit: Number.MAX_SAFE_INTEGER }))
      .filter((e) => e.kind === 'load');
    const observed: CounterPoint[] = [];
    const before = purchaseCounterBefore(tx, meter.id, since);
    if (before) observed.push({ ...before, source: 'reading' });
    const window = purchaseCounterWindow(tx, meter.id, since, until);
    if (window) observed.push({ ...window.first, source: 'reading' }, { ...window.last, source: 'reading' });
    for (const e of history) {
      if (e.before) observed.push({ count: e.before.count, at: e.createdAt, source: 'ledger' });
      if (e.after) observed.push({ count: e.after.count, at: e.finalAt ?? e.updatedAt, source: 'ledger' });
    }
    const inPeriod = observed.filter((o) => o.at >= since && o.at < until).sort((a, b) => a.at - b.at);
    const prior = observed
      .filter((o) => o.at < since)
      .sort((a, b) => a.at - b.at)
      .at(-1);
    const opening = prior ?? inPeriod[0] ?? null;
    const closing = inPeriod.at(-1) ?? null;
    const applied = periodLoads.filter((e) => e.state === 'applied');
    const base = { meterId: meter.id, address: meter.address ?? null, opening, closing, booksLoads: applied.length };

    if (!opening || !closing) {
      return {
        ...base,
        counterDelta: null,
        difference: null,
        status: 'not-reconcilable',
        findings: [finding('no-readings', null, null, 'not reconcilable (no counter readings)')],
      };
    }
    if (closing.count < opening.count) {
      const meaning = `not reconcilable: the counter went back from ${opening.count} to ${closing.count} (meter replaced or reset)`;
      return {
        ...base,
        counterDelta: null,
        difference: null,
        status: 'not-reconcilable',
        findings: [finding('counter-went-back', null, null, meaning)],
      };
    }

    const delta = closing.count - opening.count;
    const findings: ReconciliationFinding[] = [];
    const matched = new Set<number>();
    const byCount = new Map<number, LedgerEntry[]>();
    for (const e of history) if (e.purchaseCount !== null) getOr(byCount, e.purchaseCount, () => []).push(e);
    const outside: ReconciliationFinding[] = [];
    if (delta > MAX_LISTED_STEPS) {
      outside.push(
        finding(
          'outside-load',
          null,
          null,
          `load from outside this system: the counter moved by ${delta} (from ${opening.count} to ${closing.count}), far more than the books can explain`,
        ),
      );
    } else {
      for (let k = opening.count + 1; k <= closing.count; k++) {
        const candidates = byCount.get(k) ?? [];
        const now = candidates.find((e) => e.state === 'applied' && e.createdAt >= since && !matched.has(e.id));
        if (now) {
          matched.add(now.id);
          continue;
        }
        const earlier = candidates.find((e) => e.state === 'applied' && e.createdAt < since);
        if (earlier) {
          const what =
            earlier.channel === 'card'
              ? `card sold on ${localDate(earlier.createdAt, tz)}`
              : `${earlier.channel} load of ${localDate(earlier.createdAt, tz)}`;
          findings.push(
            finding(
              'earlier-load-confirmed',
              k,
              earlier.requestId,
              `${what} (purchase ${k}, ${earlier.requestId}) reached the meter in this period`,
            ),
          );
          continue;
        }
        const open = candidates.find((e) => e.state === 'received' || e.state === 'writing' || e.state === 'verifying');
        if (open) {
          findings.push(
            finding(
              'unsettled-load',
              k,
              open.requestId,
              `load ${open.requestId} (purchase ${k}) is not settled yet (${open.state}), but the counter shows it arrived`,
            ),
          );
          continue;
        }
        const refused = candidates[0];
        const note = refused ? ` (the books have ${refused.requestId} with this count, ${refused.state})` : '';
        outside.push(
          finding(
            'outside-load',
            k,
            null,
            `load from outside this system: the counter reached ${k} with no sale of that count in the books${note} (another station, an old or test card)`,
          ),
        );
      }
    }

    const withoutCount: LedgerEntry[] = [];
    for (const e of applied) {
      if (matched.has(e.id)) continue;
      const p = e.purchaseCount;
      if (p === null) withoutCount.push(e);
      else if (p > closing.count) {
        const later = this.laterConfirmation(tx, meter, p, until, asOf);
        findings.push(
          e.channel === 'card'
            ? finding(
                'card-not-inserted',
                p,
                e.requestId,
                `card sold but not yet inserted (purchase ${p}, ${e.requestId}): the counter was at ${closing.count} at the end of the period${later}`,
              )
            : finding(
                'load-not-confirmed',
                p,
                e.requestId,
                `load not confirmed (purchase ${p}, ${e.requestId}): the counter was at ${closing.count} at the end of the period${later}`,
              ),
        );
      } else if (!prior && e.createdAt <= opening.at) {
        findings.push(
          finding(
            'before-first-reading',
            p,
            e.requestId,
            `purchase ${p} (${e.requestId}) reached the meter before its first counter reading of the period (${opening.count}); there is no earlier reading to compare with`,
          ),
        );
      } else {
        findings.push(
          finding(
            'count-conflict',
            p,
            e.requestId,
            `the counter was already at ${opening.count} before purchase ${p} (${e.requestId}) was sold: that count was used by another load`,
          ),
        );
      }
    }
    // A load with no count recorded can only be paired with an otherwise unexplained step of the counter.
    while (withoutCount.length > 0 && outside.length > 0 && outside.at(-1)!.purchaseCount !== null) {
      withoutCount.pop();
      outside.pop();
    }
    findings.push(...outside);
    for (const e of withoutCount) {
      findings.push(
        finding(
          e.channel === 'card' ? 'card-not-inserted' : 'load-not-confirmed',
          null,
          e.requestId,
          `${e.channel === 'card' ? 'card sold but not yet inserted' : 'load not confirmed'} (${e.requestId}): no purchase count recorded and no counter step left to match it`,
        ),
      );
    }
    findings.sort((a, b) => (a.purchaseCount ?? Number.MAX_SAFE_INTEGER) - (b.purchaseCount ?? Number.MAX_SAFE_INTEGER));
    const difference = applied.length - delta;
    if (findings.length === 0 && difference !== 0) {
      findings.push(
        finding(
          'outside-load',
          null,
          null,
          `the books have ${applied.length} applied load(s), the counter moved by ${delta}; some loads share a purchase count`,
        ),
      );
    }
    return { ...base, counterDelta: delta, difference, status: findings.length === 0 ? 'balanced' : 'difference', findings };
  }

  /** ", inserted later: …" when the meter reached the count after the period (as known now), else "". */
  private laterConfirmation(tx: Tx, meter: BooksMeter, purchaseCount: number, until: number, asOf: number): string {
    if (asOf < until) return '';
    const later = purchaseCounterWindow(tx, meter.id, until, asOf + 1);
    return later && later.highest.count >= purchaseCount
      ? `; reached the meter later (counter at ${later.highest.count} on ${localDateTime(later.highest.at, this.timeZone)})`
      : '';
  }
}

function unconfigured(meterNumber: string, loads: readonly LedgerEntry[]): MeterReconciliation {
  return {
    meterId: meterNumber,
    address: null,
    opening: null,
    closing: null,
    counterDelta: null,
    booksLoads: loads.filter((e) => e.state === 'applied').length,
    difference: null,
    status: 'not-reconcilable',
    findings: [
      finding(
        'meter-not-configured',
        null,
        null,
        `not reconcilable: meter ${meterNumber} is not in the gateway's config, its purchase counter is never read`,
      ),
    ],
  };
}

function finding(kind: FindingKind, purchaseCount: number | null, requestId: string | null, meaning: string): ReconciliationFinding {
  return { kind, purchaseCount, requestId, meaning };
}

/** Card sales name a meter by the number on the card (its address); everything else by the configured id. */
class MeterDirectory {
  private readonly byKey = new Map<string, BooksMeter>();

  constructor(meters: readonly BooksMeter[]) {
    for (const m of meters) if (m.address !== undefined) this.byKey.set(normalizeNumber(m.address), m);
    // An id wins over an address that happens to look the same.
    for (const m of meters) this.byKey.set(m.id, m);
  }

  resolve(meterKey: string): BooksMeter | null {
    return this.byKey.get(meterKey) ?? this.byKey.get(normalizeNumber(meterKey)) ?? null;
  }

  /** The keys ledger entries of this meter may carry. */
  keysOf(meter: BooksMeter): string[] {
    return meter.address === undefined || meter.address === meter.id ? [meter.id] : [meter.id, meter.address];
  }
}

/** Meter numbers as DL/T 645 writes addresses: 12 digits, left-padded with zeros. */
function normalizeNumber(text: string): string {
  const t = text.trim().toUpperCase();
  return /^\d{1,12}$/.test(t) ? t.padStart(12, '0') : t;
}

// ─── Accumulating sums ───────────────────────────────────────────────────────────────────────────────────────────

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

function getOr<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/** Named operators alphabetically, entries without an operator last. */
function compareOperator(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

// ─── Output helpers ──────────────────────────────────────────────────────────────────────────────────────────────

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
    })),
  };
}

// ─── Publishing at day end ───────────────────────────────────────────────────────────────────────────────────────

/** Topic (under the gateway's prefix) of the daily report. */
export const DAILY_REPORT_TOPIC = 'reports/daily';
/** Local time at which a day is closed and published: a few minutes after midnight, once late loads have settled. */
export const DAY_CLOSE_TIME = '00:05';

/**
 * When the next day closes: the next local `closeAt` (00:05) after now, and the date that closes then (the day
 * before it).
 */
export function schedule(clock: Clock, timeZone: string, closeAt: string = DAY_CLOSE_TIME): { at: number; date: string } {
  const at = nextLocalTime(clock.now(), closeAt, timeZone);
  return { at, date: addDays(localDate(at, timeZone), -1) };
}

export interface BooksPublisherOptions extends BooksOptions {
  readonly logger?: Logger;
  /** Wakes the uplink after a report was enqueued. */
  readonly onCommitted?: () => void;
  /** Local time a day is published after its end. Default 00:05. */
  readonly closeAt?: string;
  /** How many closed days back a start catches up on when days were missed (the daemon was down). Default 7. */
  readonly catchUpDays?: number;
}

export interface PublishResult {
  readonly date: string;
  /** False when the date had been published before: nothing was enqueued this time. */
  readonly published: boolean;
  readonly publishedAt: number;
}

/** Checks at least this often whether a day is due, so a clock set late (NTP after boot) never skips a day. */
const RECHECK_MS = 10 * 60_000;

/**
 * Publishes each closed day's report on `reports/daily` (class `report`, durable) exactly once per date: the report,
 * its outbox message and the record that the date is published commit in one transaction.
 *
 * ```ts
 * const publisher = new BooksPublisher({ store, clock, gateway: config.gateway, meters: config.meters, onCommitted: () => drain.notify() });
 * publisher.start(); // catches up on missed days now, then publishes every day at 00:05 local
 * // … on shutdown
 * publisher.stop();
 * ```
 */
export class BooksPublisher {
  private readonly books: Books;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly opts: BooksPublisherOptions) {
    this.books = new Books(opts);
    this.log = (opts.logger ?? silentLogger).child({ component: 'books' });
  }

  /** Enqueue the daily report of a closed day, once: a date published before is left alone. */
  publishDay(date: string): PublishResult {
    parseBooksDate(date);
    const tz = this.opts.gateway.timeZone;
    const { until } = periodBounds({ kind: 'daily', date }, tz);
    const now = this.opts.clock.now();
    if (now < until)
      throw new BooksError(
        'BOOKS_DAY_OPEN',
        `${date} has not ended yet in ${tz} (it ends at ${localDateTime(until, tz)}); a day is published once, after it closes`,
      );
    const result = this.opts.store.transaction(
      (tx) => {
        const before = reportPublishedAt(tx, 'daily', date);
        if (before !== null) return { date, published: false, publishedAt: before };
        const report = this.books.reportIn(tx, { kind: 'daily', date });
        const { id } = enqueue(tx, { topic: DAILY_REPORT_TOPIC, class: 'report', payload: reportJson(report) });
        markReportPublished(tx, 'daily', date, id);
        return { date, published: true, publishedAt: now };
      },
      { durable: true },
    );
    if (result.published) {
      this.log.info({ date }, 'daily report published');
      this.opts.onCommitted?.();
    }
    return result;
  }

  /**
   * Publish every closed day not published yet: from the day after the last published one (at most `catchUpDays`
   * back; only yesterday on a gateway that never published) up to yesterday. Returns the dates published now.
   */
  publishDue(): string[] {
    const tz = this.opts.gateway.timeZone;
    const yesterday = addDays(localDate(this.opts.clock.now(), tz), -1);
    const last = this.opts.store.transaction((tx) => lastPublishedPeriod(tx, 'daily'));
    const earliest = addDays(yesterday, 1 - (this.opts.catchUpDays ?? 7));
    let date = last === null ? yesterday : addDays(last, 1);
    if (date < earliest) date = earliest;
    const out: string[] = [];
    for (; date <= yesterday; date = addDays(date, 1)) if (this.publishDay(date).published) out.push(date);
    return out;
  }

  /** Catch up now, then publish each day at `closeAt` local time until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const run = () => {
      try {
        this.publishDue();
      } catch (err) {
        this.log.error({ err }, 'daily report could not be published; will try again');
      }
    };
    const arm = () => {
      if (!this.running) return;
      const { at } = schedule(this.opts.clock, this.opts.gateway.timeZone, this.opts.closeAt);
      this.timer = setTimeout(
        () => {
          run();
          arm();
        },
        Math.min(Math.max(0, at - this.opts.clock.now()), RECHECK_MS),
      );
      this.timer.unref();
    };
    run();
    arm();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
