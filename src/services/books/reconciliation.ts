import { isSubsidyLoad, purchaseCounterBefore, purchaseCounterWindow, type LedgerEntry, type Store, type Tx } from '../../store/index.js';
import { localDate, localDateTime } from './periods.js';

// The purchase-counter reconciliation of the books: each active meter's counter over a period against the loads the
// books say it took (docs/reference/prepaid.md § Books and reconciliation).

/** A configured meter as the books need it: the id readings are stored under, the address cards carry. */
export interface BooksMeter {
  readonly id: string;
  readonly address?: string;
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

/** A counter that jumped further than this is reported as one finding, not one per purchase. */
const MAX_LISTED_STEPS = 100;

/**
 * Reconciles meters' purchase counters with the ledger. The report runs it inside its own transaction, so the
 * counters and the loads are one snapshot.
 */
export class Reconciler {
  constructor(
    private readonly opts: { readonly store: Store; readonly meters: readonly BooksMeter[]; readonly timeZone: string },
    private readonly directory: MeterDirectory,
  ) {}

  private get timeZone(): string {
    return this.opts.timeZone;
  }

  /** Every meter with loads in the period or whose counter moved in it, reconciled. */
  reconcile(tx: Tx, all: readonly LedgerEntry[], since: number, until: number, asOf: number): MeterReconciliation[] {
    const active = new Map<string, { meter: BooksMeter | null; loads: LedgerEntry[] }>();
    for (const e of all) {
      // A free-energy load does not move the purchase counter: it is in the books, not in this reconciliation.
      if (e.kind !== 'load' || isSubsidyLoad(e)) continue;
      const meter = this.directory.resolve(e.meterId);
      getOr(active, meter?.id ?? e.meterId, () => ({ meter, loads: [] })).loads.push(e);
    }
    for (const meter of this.opts.meters) if (!active.has(meter.id)) active.set(meter.id, { meter, loads: [] });
    const openings = this.opts.store.ledger.openings(until);

    const out: MeterReconciliation[] = [];
    for (const [key, { meter, loads }] of active) {
      if (meter && loads.length === 0 && this.counterStill(tx, meter, since, until, openings)) continue;
      const r = meter ? this.reconcileMeter(tx, meter, loads, since, until, asOf) : unconfigured(key, loads);
      // A configured meter with no loads is listed only when its counter moved (a load from outside) or went back.
      if (loads.length === 0 && (r.counterDelta === null || r.counterDelta === 0) && r.findings.every((f) => f.kind === 'no-readings'))
        continue;
      out.push(r);
    }
    return out.sort((a, b) => (a.meterId < b.meterId ? -1 : a.meterId > b.meterId ? 1 : 0));
  }

  /** True when the polls show a meter's counter did not move in the period (or were never read): a cheap skip of idle meters. */
  private counterStill(
    tx: Tx,
    meter: BooksMeter,
    since: number,
    until: number,
    openings: ReadonlyMap<string, { count: number; at: number }>,
  ): boolean {
    const window = purchaseCounterWindow(tx, meter.id, since, until);
    if (!window) return true;
    const before = purchaseCounterBefore(tx, meter.id, since);
    const start = this.directory
      .keysOf(meter)
      .map((k) => openings.get(k))
      .filter((o) => o !== undefined)
      .sort((a, b) => a.at - b.at)
      .at(-1);
    // The books start at an opening entry made after the last reading before the period (or inside it).
    const opening = start && start.at >= (before?.at ?? 0) ? start.count : (before?.count ?? window.first.count);
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
    const entries = this.directory
      .keysOf(meter)
      .flatMap((key) => this.opts.store.ledger.list({ meterId: key, until, limit: Number.MAX_SAFE_INTEGER }));
    const history = entries.filter((e) => e.kind === 'load' && !isSubsidyLoad(e));
    // An opening entry (meterd adopt, a card meter's first visit) is where the books of this meter start: counter
    // values before it are another system's history, not loads to explain.
    const start = entries
      .filter((e) => e.kind === 'opening' && e.state === 'applied' && e.after !== null)
      .sort((a, b) => a.createdAt - b.createdAt)
      .at(-1);
    const observed: CounterPoint[] = [];
    const before = purchaseCounterBefore(tx, meter.id, since);
    if (before) observed.push({ ...before, source: 'reading' });
    const window = purchaseCounterWindow(tx, meter.id, since, until);
    if (window) observed.push({ ...window.first, source: 'reading' }, { ...window.last, source: 'reading' });
    for (const e of history) {
      if (e.before) observed.push({ count: e.before.count, at: e.createdAt, source: 'ledger' });
      if (e.after) observed.push({ count: e.after.count, at: e.finalAt ?? e.updatedAt, source: 'ledger' });
    }
    if (start) {
      for (let i = observed.length - 1; i >= 0; i--) if (observed[i]!.at < start.createdAt) observed.splice(i, 1);
      observed.unshift({ count: start.after!.count, at: start.createdAt, source: 'ledger' });
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
export class MeterDirectory {
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

/** The value under `key`, made and stored first when missing. */
export function getOr<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}
