import { isSubsidyLoad, purchaseCounterBefore, purchaseCounterWindow, type LedgerEntry, type Store, type Tx } from '../../store/index.js';
import { counterScope, normalizeNumber, type AssetSpan, type PointAssets } from './assets.js';
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
  /** The counter of one meter went down: the meter was reset (a replacement is reconciled meter by meter, not this). */
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
  /** A poll of the meter, a load's own read before / after, or the register's reading when a meter was put up or taken down. */
  readonly source: 'reading' | 'ledger' | 'register';
}

/** A meter replaced in the period (docs/lifecycle.md): the old meter's counter up to its removal, the new one's from its install. */
export interface MeterSwap {
  /** When the old meter was taken down and the new one put up. */
  readonly at: number;
  readonly oldAddress: string;
  readonly newAddress: string;
  /** The old meter's purchase counter in its final reading, or null when it was not read. */
  readonly finalCount: number | null;
  /** The new meter's purchase counter in its initial reading. */
  readonly initialCount: number | null;
  /** The new meter's last counter value in the period. */
  readonly closingCount: number | null;
  /** Transfers of the old meter's credit applied on the new one in the period: expected steps of its counter. */
  readonly transfers: number;
  /** The swap in plain words, e.g. "meter replaced at 2026-12-04 10:42 (…): old meter's counter 5 at removal, new meter's 0 → 1 (transfer)". */
  readonly text: string;
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
  /** Each meter's own findings; a point whose meter was replaced has those of the old and of the new meter. */
  readonly findings: readonly ReconciliationFinding[];
  /** The meters replaced at this point in the period, oldest first; opening is the first meter's, closing the last one's. */
  readonly swaps: readonly MeterSwap[];
}

/** A counter that jumped further than this is reported as one finding, not one per purchase. */
const MAX_LISTED_STEPS = 100;

/** What the books know of the points in one report: meter numbers and which meter served each point when. */
export interface BooksView {
  readonly directory: MeterDirectory;
  readonly assets: PointAssets;
}

/**
 * Reconciles meters' purchase counters with the ledger. The report runs it inside its own transaction, so the
 * counters and the loads are one snapshot. A point whose meter was replaced is reconciled meter by meter: the old
 * meter's counter up to its final reading, the new meter's from its initial reading (docs/books.md § A replaced meter).
 */
export class Reconciler {
  constructor(private readonly opts: { readonly store: Store; readonly meters: readonly BooksMeter[]; readonly timeZone: string }) {}

  private get timeZone(): string {
    return this.opts.timeZone;
  }

  /** Every meter with loads in the period, whose counter moved in it, or that was replaced in it, reconciled. */
  reconcile(tx: Tx, all: readonly LedgerEntry[], since: number, until: number, asOf: number, view: BooksView): MeterReconciliation[] {
    const active = new Map<string, { meter: BooksMeter | null; loads: LedgerEntry[] }>();
    for (const e of all) {
      // A free-energy load does not move the purchase counter: it is in the books, not in this reconciliation.
      if (e.kind !== 'load' || isSubsidyLoad(e)) continue;
      const meter = view.directory.resolve(e.meterId);
      getOr(active, meter?.id ?? e.meterId, () => ({ meter, loads: [] })).loads.push(e);
    }
    for (const meter of this.opts.meters) if (!active.has(meter.id)) active.set(meter.id, { meter, loads: [] });
    const openings = this.opts.store.ledger.openings(until);

    const out: MeterReconciliation[] = [];
    for (const [key, { meter, loads }] of active) {
      if (!meter) {
        out.push(unconfigured(key, loads));
        continue;
      }
      const spans = view.assets.spansOf({ id: meter.id, keys: view.directory.keysOf(meter) });
      const touched = spans.filter((s) => s.from < until && s.to >= since);
      if (touched.length === 0) touched.push(spans.at(-1)!);
      // A meter put up or taken down in the period: the report says so, whatever the counters did.
      const swapped = touched.some((s) => (s.predecessor !== null && s.from >= since) || s.to < until);
      if (!swapped && loads.length === 0 && this.counterStill(tx, meter, touched[0]!, since, until, openings)) continue;
      const r = this.reconcilePoint(tx, meter, spans, touched, loads, since, until, asOf, view.assets);
      // A configured meter with no loads is listed only when its counter moved (a load from outside) or went back.
      if (
        !swapped &&
        loads.length === 0 &&
        (r.counterDelta === null || r.counterDelta === 0) &&
        r.findings.every((f) => f.kind === 'no-readings')
      )
        continue;
      out.push(r);
    }
    return out.sort((a, b) => (a.meterId < b.meterId ? -1 : a.meterId > b.meterId ? 1 : 0));
  }

  /** True when the polls show a meter's counter did not move in the period (or were never read): a cheap skip of idle meters. */
  private counterStill(
    tx: Tx,
    meter: BooksMeter,
    span: AssetSpan,
    since: number,
    until: number,
    openings: ReadonlyMap<string, { count: number; at: number }>,
  ): boolean {
    const window = purchaseCounterWindow(tx, meter.id, Math.max(since, span.from), Math.min(until, span.to), counterScope(span));
    if (!window) return true;
    const before = purchaseCounterBefore(tx, meter.id, since, counterScope(span));
    const start = span.keys
      .map((k) => openings.get(k))
      .filter((o) => o !== undefined && o.at >= span.from)
      .sort((a, b) => a!.at - b!.at)
      .at(-1);
    // The books start at an opening entry made after the last reading before the period (or inside it).
    const opening = start && start.at >= (before?.at ?? 0) ? start.count : (before?.count ?? window.first.count);
    return window.last.count === opening && window.highest.count === opening;
  }

  /** A point's counter check: one per meter that served it in the period, joined with each swap in plain words. */
  private reconcilePoint(
    tx: Tx,
    meter: BooksMeter,
    spans: readonly AssetSpan[],
    touched: readonly AssetSpan[],
    loads: readonly LedgerEntry[],
    since: number,
    until: number,
    asOf: number,
    assets: PointAssets,
  ): MeterReconciliation {
    // Every load this point ever had up to the period's end, under its id (remote) and its meters' numbers (cards),
    // and the period's loads the directory found for it (a meter number written another way).
    const seen = new Set<number>();
    const entries: LedgerEntry[] = [];
    const keep = (e: LedgerEntry) => {
      if (seen.has(e.id)) return;
      seen.add(e.id);
      entries.push(e);
    };
    for (const key of new Set(spans.flatMap((s) => s.keys)))
      for (const e of this.opts.store.ledger.list({ meterId: key, until, limit: Number.MAX_SAFE_INTEGER })) keep(e);
    for (const e of loads) keep(e);
    const ofSpan = new Map<AssetSpan, LedgerEntry[]>();
    for (const e of entries) getOr(ofSpan, assets.spanOf(spans, e), () => []).push(e);
    const parts = touched.map((span) => {
      const own = ofSpan.get(span) ?? [];
      const periodLoads = own.filter((e) => e.kind === 'load' && !isSubsidyLoad(e) && e.createdAt >= since && e.createdAt < until);
      return { span, periodLoads, r: this.reconcileMeter(tx, meter, span, own, periodLoads, since, until, asOf) };
    });
    if (parts.length === 1 && !(touched[0]!.predecessor !== null && touched[0]!.from >= since) && !(touched[0]!.to < until))
      return parts[0]!.r;

    const swaps: MeterSwap[] = [];
    for (let i = 1; i < parts.length; i++) {
      const { span, periodLoads, r } = parts[i]!;
      const old = parts[i - 1]!.span.asset;
      if (!span.asset || !old) continue;
      const transfers = periodLoads.filter((e) => e.channel === 'transfer' && e.state === 'applied').length;
      const others = periodLoads.filter((e) => e.channel !== 'transfer' && e.state === 'applied').length;
      const finalCount = old.final?.purchaseCount ?? null;
      const initialCount = span.asset.initial?.purchaseCount ?? null;
      const closingCount = r.closing?.count ?? null;
      const loads = [
        ...(transfers > 0 ? [transfers === 1 ? 'transfer' : `${transfers} transfers`] : []),
        ...(others > 0 ? [`${others} load${others === 1 ? '' : 's'}`] : []),
      ];
      const newText =
        initialCount === null
          ? 'the new meter had no counter reading when put up'
          : `new meter's ${initialCount} → ${closingCount ?? initialCount}${loads.length > 0 ? ` (${loads.join(', ')})` : ''}`;
      const text = `meter replaced at ${localDateTime(span.from, this.timeZone)} (${old.address} → ${span.asset.address}): ${
        finalCount === null ? "old meter's counter not read at removal" : `old meter's counter ${finalCount} at removal`
      }, ${newText}`;
      swaps.push({
        at: span.from,
        oldAddress: old.address,
        newAddress: span.asset.address,
        finalCount,
        initialCount,
        closingCount,
        transfers,
        text,
      });
    }
    // A meter with neither a counter reading nor a load in the period (an old meter that had died) has nothing to check.
    const results = parts.map((p) =>
      p.r.booksLoads === 0 && p.r.findings.length === 1 && p.r.findings[0]!.kind === 'no-readings'
        ? { ...p.r, counterDelta: 0, difference: 0, status: 'balanced' as const, findings: [] }
        : p.r,
    );
    const sum = (pick: (r: MeterReconciliation) => number | null): number | null =>
      results.some((r) => pick(r) === null) ? null : results.reduce((n, r) => n + pick(r)!, 0);
    const status: ReconciliationStatus = results.some((r) => r.status === 'not-reconcilable')
      ? 'not-reconcilable'
      : results.some((r) => r.status === 'difference')
        ? 'difference'
        : 'balanced';
    return {
      meterId: meter.id,
      address: touched.at(-1)!.asset?.address ?? meter.address ?? null,
      opening: results[0]!.opening,
      closing: results.at(-1)!.closing,
      counterDelta: sum((r) => r.counterDelta),
      booksLoads: results.reduce((n, r) => n + r.booksLoads, 0),
      difference: sum((r) => r.difference),
      status,
      findings: results.flatMap((r) => r.findings),
      swaps,
    };
  }

  /** One meter's counter over its part of the period against the loads the books say it took. */
  private reconcileMeter(
    tx: Tx,
    meter: BooksMeter,
    span: AssetSpan,
    entries: readonly LedgerEntry[],
    periodLoads: readonly LedgerEntry[],
    since: number,
    until: number,
    asOf: number,
  ): MeterReconciliation {
    const tz = this.timeZone;
    const history = entries.filter((e) => e.kind === 'load' && !isSubsidyLoad(e));
    // An opening entry (meterd adopt, a card meter's first visit, a new meter put up) is where the books of this meter
    // start: counter values before it are another system's history, not loads to explain. The opening a replacement
    // records after its transfer is at the count the transfer itself explains: not a new start.
    const start = entries
      .filter((e) => e.kind === 'opening' && e.state === 'applied' && e.after !== null && e.request.source !== 'transfer')
      .sort((a, b) => a.createdAt - b.createdAt)
      .at(-1);
    const observed: CounterPoint[] = [];
    const before = purchaseCounterBefore(tx, meter.id, since, counterScope(span));
    if (before) observed.push({ ...before, source: 'reading' });
    const window = purchaseCounterWindow(tx, meter.id, Math.max(since, span.from), Math.min(until, span.to), counterScope(span));
    if (window) observed.push({ ...window.first, source: 'reading' }, { ...window.last, source: 'reading' });
    // The register's readings when the meter was put up by a replacement and when it was taken down.
    const initial = span.predecessor !== null ? (span.asset?.initial?.purchaseCount ?? null) : null;
    if (initial !== null) observed.push({ count: initial, at: span.from, source: 'register' });
    const final = span.asset?.removedAt != null ? (span.asset.final?.purchaseCount ?? null) : null;
    if (final !== null) observed.push({ count: final, at: span.to, source: 'register' });
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
    const address = span.asset?.address ?? meter.address ?? null;
    const base = { meterId: meter.id, address, opening, closing, booksLoads: applied.length, swaps: [] };

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
        const later = this.laterConfirmation(tx, meter, span, p, until, asOf);
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
  private laterConfirmation(tx: Tx, meter: BooksMeter, span: AssetSpan, purchaseCount: number, until: number, asOf: number): string {
    // A meter taken down is not read again: the next meter's counter says nothing of this one's.
    if (asOf < until || span.to <= until) return '';
    const later = purchaseCounterWindow(tx, meter.id, until, Math.min(asOf + 1, span.to), counterScope(span));
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
    swaps: [],
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
  private readonly numbers = new Map<string, string[]>();

  /** `assets`: the register, so a replaced meter's number and its successor's name the same point. */
  constructor(meters: readonly BooksMeter[], assets?: PointAssets) {
    for (const m of meters) {
      const numbers = [...(m.address !== undefined ? [m.address] : []), ...(assets?.addressesOf(m.id) ?? [])];
      this.numbers.set(m.id, [...new Set(numbers)]);
      for (const n of numbers) this.byKey.set(normalizeNumber(n), m);
    }
    // An id wins over an address that happens to look the same.
    for (const m of meters) this.byKey.set(m.id, m);
  }

  resolve(meterKey: string): BooksMeter | null {
    return this.byKey.get(meterKey) ?? this.byKey.get(normalizeNumber(meterKey)) ?? null;
  }

  /** The keys ledger entries of this meter may carry: its id and every meter number it had. */
  keysOf(meter: BooksMeter): string[] {
    return [...new Set([meter.id, ...(this.numbers.get(meter.id) ?? (meter.address !== undefined ? [meter.address] : []))])];
  }
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
