import { realTimers, type Clock, type Timers } from '../../clock.js';
import type { LinelossSettings } from '../../config/lineloss.js';
import type { DailyFreezeSource } from '../../devices/dlt645-freezes.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  activeLinelossAlert,
  clearLinelossAlert,
  enqueue,
  findFigure,
  freezesAt,
  incompleteDays,
  lastFigureDate,
  listFigures,
  memberDays,
  pruneLineloss,
  raiseLinelossAlert,
  saveFigure,
  saveMemberDays,
  upsertFreeze,
  type StoredFigure,
  type StoredFreeze,
  type Store,
  type Tx,
} from '../../store/index.js';
import { addDays, localDate, periodBounds } from '../books/periods.js';
import { nextLocalTime } from '../schedule.js';
import { publishLinelossAlert, type LinelossAlert, type LinelossAlertKind } from './alerts.js';
import { computeFigure, contributors, expectedFreezeTime, type DistrictShape, type LinelossFigure, type MeterSwap } from './compute.js';

// The daemon's line-loss job: after each midnight it reads every district meter's daily freezes, computes each
// district's day (and month, when one closed), stores it and hands it to the outbox once; days a start missed are
// caught up, and days with members that did not answer are recalled (补召) for a while and republished with a new
// revision when they become computable.

/** Freezes a meter keeps by the standard's numbering: day N back is freeze N (05060001…0506003E). */
export const FREEZE_HORIZON = 62;
/** No gateway of this software ran before this date: a wall clock before it is not set yet (as for the books). */
export const EARLIEST_LINELOSS_DATE = '2026-01-01';
/** The longest the job sleeps between looks at the wall clock. */
export const LINELOSS_TICK_MS = 60_000;
/** Members listed as top contributors on a high or negative day. */
export const TOP_CONTRIBUTORS = 5;

/** A meter that takes part in line loss, as the job reaches it. */
export interface LinelossMeter {
  readonly busId: string;
  /** Undefined for a meter whose profile keeps no daily freezes: it is never read and always missing. */
  readonly freezes?: DailyFreezeSource;
}

export interface LinelossServiceOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly timeZone: string;
  readonly districts: readonly DistrictShape[];
  /** Every supply and member meter by id. */
  readonly meters: ReadonlyMap<string, LinelossMeter>;
  readonly settings: LinelossSettings;
  /** storage.retentionDays: freezes and member days older than this are deleted; no catch-up goes further back. */
  readonly retentionDays: number;
  readonly timers?: Timers;
  readonly logger?: Logger;
  /** Wakes the uplink after something was enqueued. */
  readonly onCommitted?: () => void;
  readonly earliestDate?: string;
  /**
   * Where a district's alert goes: the gateway's alerts service (meters/<supply>/alerts and alerts/active) when it
   * is composed in; else the line-loss feature's own message in the same shape (`publishLinelossAlert`).
   */
  readonly alertSink?: (tx: Tx, alert: LinelossAlert) => void;
}

/** What one run did, for logs and tests. */
export interface LinelossRunResult {
  /** Daily figures published (new, or a new revision), as `district/date#revision`. */
  readonly published: string[];
  readonly monthly: string[];
  /** Freeze reads that got an answer, and meters that did not answer. */
  reads: number;
  readonly silent: string[];
}

type Outcome = 'freeze' | 'none' | 'silent';

/**
 * Computes and publishes each district's daily line loss from the meters' own freezes.
 *
 * ```ts
 * const lineloss = new LinelossService({ store, clock, timeZone, districts, meters, settings: config.lineloss, retentionDays: 90 });
 * lineloss.start();            // catches up now, then reads after config.lineloss.readAt each day and recalls every few hours
 * await lineloss.runDue();     // or one run by hand (tests, the CLI's recall)
 * ```
 */
export class LinelossService {
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly earliestDate: string;
  private timer: unknown;
  private running = false;
  private current: Promise<LinelossRunResult> | undefined;
  private abort = new AbortController();
  private lastFailure: string | undefined;

  constructor(private readonly opts: LinelossServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'lineloss' });
    this.timers = opts.timers ?? realTimers;
    this.earliestDate = opts.earliestDate ?? EARLIEST_LINELOSS_DATE;
  }

  /** Catch up now, then look every LINELOSS_TICK_MS for a due read or recall. */
  start(): void {
    if (this.running || this.opts.districts.length === 0) return;
    this.running = true;
    this.abort = new AbortController();
    this.tick();
  }

  /** Stops the schedule and the reads in flight (what was read is kept); resolves when the run has ended. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort();
    await this.current?.catch(() => undefined);
  }

  /** Resolves when the run in progress (if any) has ended. */
  async idle(): Promise<void> {
    await this.current?.catch(() => undefined);
  }

  /** One run now, or the one in progress: reads what is due, computes, publishes. */
  runDue(): Promise<LinelossRunResult> {
    this.current ??= this.run().finally(() => {
      this.current = undefined;
    });
    return this.current;
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.running) return;
    if (this.current === undefined && this.due()) {
      void this.runDue().then(
        (r) => {
          this.lastFailure = undefined;
          if (r.published.length > 0 || r.silent.length > 0)
            this.log.info(
              { published: r.published, monthly: r.monthly, reads: r.reads, silent: r.silent.slice(0, 20) },
              'line loss computed',
            );
        },
        (err: unknown) => {
          const message = (err as Error).message;
          if (message !== this.lastFailure) this.log.error({ err }, 'line loss could not be computed; will try again');
          this.lastFailure = message;
        },
      );
    }
    this.timer = this.timers.setTimeout(() => this.tick(), LINELOSS_TICK_MS);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** The last day whose freezes can be read now: yesterday after today's readAt, else the day before. */
  lastDueDate(now = this.opts.clock.now()): string {
    const tz = this.opts.timeZone;
    const today = localDate(now, tz);
    const readAt = nextLocalTime(now, this.opts.settings.readAt, tz);
    // Before today's readAt the next one is today: yesterday's freezes are not read yet.
    return localDate(readAt, tz) === today ? addDays(today, -2) : addDays(today, -1);
  }

  /** Whether a run has work: a district missing its last due day, or a recall whose time has come. */
  private due(): boolean {
    const now = this.opts.clock.now();
    const last = this.lastDueDate(now);
    if (last < this.earliestDate) return false;
    return this.opts.store.transaction((tx) =>
      this.opts.districts.some((d) => {
        const latest = lastFigureDate(tx, d.id);
        return latest === null || latest < last || this.recallDue(tx, d, now).length > 0;
      }),
    );
  }

  private recallDue(tx: Tx, d: DistrictShape, now: number): StoredFigure[] {
    const { recallDays, recallEveryMs } = this.opts.settings;
    if (recallDays === 0) return [];
    const today = localDate(now, this.opts.timeZone);
    return incompleteDays(tx, d.id, addDays(today, -recallDays)).filter((f) => f.computedAt + recallEveryMs <= now);
  }

  private async run(): Promise<LinelossRunResult> {
    const now = this.opts.clock.now();
    const tz = this.opts.timeZone;
    const today = localDate(now, tz);
    const last = this.lastDueDate(now);
    const result: LinelossRunResult = { published: [], monthly: [], reads: 0, silent: [] };
    if (last < this.earliestDate) return result;
    // Freeze N is day N back; a day needs its own midnight and the next, and nothing older than the retention.
    const horizon = maxDate(addDays(today, -Math.min(FREEZE_HORIZON - 1, this.opts.retentionDays)), this.earliestDate);
    const signal = this.abort.signal;
    const outcomes = new Map<string, Map<string, Outcome>>();

    // Which days each district needs: the ones not computed yet (from the day after its last, or, the first time,
    // as far back as its supply meter keeps freezes), and the incomplete ones whose recall is due.
    const plan = new Map<string, string[]>();
    for (const d of this.opts.districts) {
      const { latest, recall } = this.opts.store.transaction((tx) => ({
        latest: lastFigureDate(tx, d.id),
        recall: this.recallDue(tx, d, now).map((f) => f.period),
      }));
      let first: string;
      if (latest !== null) first = maxDate(addDays(latest, 1), horizon);
      else first = await this.supplyHistoryStart(d, today, horizon, last, outcomes, result, signal);
      const days = new Set(recall);
      for (let day = first; day <= last; day = addDays(day, 1)) days.add(day);
      plan.set(d.id, [...days].sort());
    }

    await this.readFreezes(plan, today, outcomes, result, signal);

    for (const d of this.opts.districts) {
      for (const date of plan.get(d.id) ?? []) {
        if (signal.aborted) return result;
        this.computeDay(d, date, result);
      }
    }
    this.opts.store.transaction((tx) => pruneLineloss(tx, addDays(today, -Math.max(this.opts.retentionDays, FREEZE_HORIZON))));
    return result;
  }

  /**
   * The first day a district never computed before can be computed from: the supply meter's oldest freeze within the
   * horizon (read newest first until it has no more). A supply meter that does not answer gives only the last day.
   */
  private async supplyHistoryStart(
    d: DistrictShape,
    today: string,
    horizon: string,
    last: string,
    outcomes: Map<string, Map<string, Outcome>>,
    result: LinelossRunResult,
    signal: AbortSignal,
  ): Promise<string> {
    const boundaries: string[] = [];
    for (let b = today; b >= horizon; b = addDays(b, -1)) boundaries.push(b);
    await this.readMeter(d.supplyMeter, boundaries, today, outcomes, result, signal);
    const got = outcomes.get(d.supplyMeter);
    let oldest: string | undefined;
    for (const b of boundaries) if (got?.get(b) === 'freeze') oldest = b;
    return oldest === undefined || oldest > last ? last : oldest;
  }

  /** Reads every planned meter's missing freezes, one sequence per bus, the buses in parallel. */
  private async readFreezes(
    plan: ReadonlyMap<string, readonly string[]>,
    today: string,
    outcomes: Map<string, Map<string, Outcome>>,
    result: LinelossRunResult,
    signal: AbortSignal,
  ): Promise<void> {
    const wanted = new Map<string, Set<string>>();
    for (const d of this.opts.districts) {
      const days = plan.get(d.id) ?? [];
      if (days.length === 0) continue;
      const boundaries = new Set(days.flatMap((day) => [day, addDays(day, 1)]));
      for (const id of [d.supplyMeter, ...d.members]) {
        const set = wanted.get(id) ?? new Set<string>();
        wanted.set(id, set);
        for (const b of boundaries) set.add(b);
      }
    }
    // Only what is not stored usable yet: a freeze read once is never read again.
    const needed = this.opts.store.transaction((tx) => {
      const byBoundary = new Map<string, ReturnType<typeof freezesAt>>();
      const out = new Map<string, string[]>();
      for (const [id, set] of wanted) {
        const list = [...set]
          .filter((b) => {
            const at = byBoundary.get(b) ?? freezesAt(tx, b);
            byBoundary.set(b, at);
            return at.get(id)?.frozenAt !== expectedFreezeTime(b) && outcomes.get(id)?.get(b) === undefined;
          })
          .sort()
          .reverse();
        if (list.length > 0) out.set(id, list);
      }
      return out;
    });
    const byBus = new Map<string, string[]>();
    for (const id of needed.keys()) {
      const bus = this.opts.meters.get(id)?.busId ?? '';
      byBus.set(bus, [...(byBus.get(bus) ?? []), id]);
    }
    await Promise.all(
      [...byBus.values()].map(async (ids) => {
        for (const id of ids) {
          if (signal.aborted) return;
          await this.readMeter(id, needed.get(id)!, today, outcomes, result, signal);
        }
      }),
    );
  }

  /**
   * Reads a meter's freezes for `boundaries` (newest first) and stores each one it has. Stops at the first freeze it
   * does not keep (older ones are gone too) and when it does not answer (a silent meter is not asked 60 times).
   */
  private async readMeter(
    meterId: string,
    boundaries: readonly string[],
    today: string,
    outcomes: Map<string, Map<string, Outcome>>,
    result: LinelossRunResult,
    signal: AbortSignal,
  ): Promise<void> {
    const seen = outcomes.get(meterId) ?? new Map<string, Outcome>();
    outcomes.set(meterId, seen);
    const source = this.opts.meters.get(meterId)?.freezes;
    if (source === undefined) return;
    // A meter's freezes are stored together when its reads end (one commit per meter, not per freeze): a stop or a
    // crash in between loses only reads, which the next run makes again.
    const got: StoredFreeze[] = [];
    try {
      for (let i = 0; i < boundaries.length; i++) {
        const b = boundaries[i]!;
        if (seen.has(b)) continue;
        const n = daysBetween(b, today) + 1;
        if (n < 1 || n > FREEZE_HORIZON) continue;
        try {
          const r = await source.read(n, { priority: 'poll', signal });
          result.reads++;
          if (r.kind === 'none') {
            // Newest first: every later boundary is older, and gone too.
            for (const rest of boundaries.slice(i)) seen.set(rest, 'none');
            return;
          }
          seen.set(b, 'freeze');
          got.push({
            meterId,
            boundary: b,
            frozenAt: r.frozenAt,
            importCenti: r.importCenti,
            ...(r.exportCenti !== undefined ? { exportCenti: r.exportCenti } : {}),
            readAt: this.opts.clock.now(),
          });
        } catch (err) {
          if (signal.aborted) return;
          for (const rest of boundaries.slice(i)) seen.set(rest, 'silent');
          result.silent.push(meterId);
          this.log.debug({ meter: meterId, err: (err as Error).message }, 'meter did not answer for its daily freezes');
          return;
        }
      }
    } finally {
      if (got.length > 0)
        this.opts.store.transaction((tx) => {
          for (const f of got) upsertFreeze(tx, f);
        });
    }
  }

  /** Computes one day of a district and publishes it when it is new, or newly computable (a new revision). */
  private computeDay(d: DistrictShape, date: string, result: LinelossRunResult): void {
    const published = this.opts.store.transaction(
      (tx) => {
        const figure = computeFigure(d, {
          kind: 'daily',
          period: date,
          startBoundary: date,
          endBoundary: addDays(date, 1),
          start: freezesAt(tx, date),
          end: freezesAt(tx, addDays(date, 1)),
          swaps: this.swapsIn(date, addDays(date, 1)),
        });
        const rev = this.save(tx, d, figure, () => this.dailyExtras(tx, d, figure));
        if (rev === undefined) return undefined;
        this.evaluateAlert(tx, d, date);
        // The month closes with its last day: its figure comes from the freezes at its two first-of-month midnights.
        const month = date.slice(0, 7);
        let monthRev: number | undefined;
        if (addDays(date, 1).slice(0, 7) !== month) monthRev = this.computeMonth(tx, d, month);
        return { rev, month: monthRev === undefined ? undefined : `${d.id}/${month}#${monthRev}` };
      },
      { durable: true },
    );
    if (published === undefined) return;
    result.published.push(`${d.id}/${date}#${published.rev}`);
    if (published.month !== undefined) result.monthly.push(published.month);
    this.opts.onCommitted?.();
  }

  /**
   * Meters replaced between two midnights (docs/lifecycle.md): the old meter's final and the new meter's initial
   * register, from the meter register. A swap without both readings is left out, and the point's register then went
   * backwards: not computable, never guessed.
   */
  private swapsIn(startBoundary: string, endBoundary: string): Map<string, MeterSwap[]> {
    const tz = this.opts.timeZone;
    const since = periodBounds({ kind: 'daily', date: startBoundary }, tz).since;
    const until = periodBounds({ kind: 'daily', date: endBoundary }, tz).since;
    const out = new Map<string, MeterSwap[]>();
    for (const s of this.opts.store.register.swapsBetween(since, until)) {
      const finalKwh = s.final?.importKwh;
      const initialKwh = s.initial?.importKwh;
      if (finalKwh === null || finalKwh === undefined || initialKwh === null || initialKwh === undefined) continue;
      const exportCenti = (v: number | null | undefined) => (v === null || v === undefined ? undefined : Math.round(v * 100));
      const finalExport = exportCenti(s.final?.exportKwh);
      const initialExport = exportCenti(s.initial?.exportKwh);
      out.set(s.pointId, [
        ...(out.get(s.pointId) ?? []),
        {
          finalImportCenti: Math.round(finalKwh * 100),
          initialImportCenti: Math.round(initialKwh * 100),
          ...(finalExport !== undefined && initialExport !== undefined
            ? { finalExportCenti: finalExport, initialExportCenti: initialExport }
            : {}),
        },
      ]);
    }
    return out;
  }

  private computeMonth(tx: Tx, d: DistrictShape, month: string): number | undefined {
    const start = `${month}-01`;
    const end = addDays(`${month}-28`, 7).slice(0, 7).concat('-01');
    const figure = computeFigure(d, {
      kind: 'monthly',
      period: month,
      startBoundary: start,
      endBoundary: end,
      start: freezesAt(tx, start),
      end: freezesAt(tx, end),
      swaps: this.swapsIn(start, end),
    });
    return this.save(tx, d, figure, () => {
      const days = listFigures(tx, { district: d.id, kind: 'daily', from: start, to: addDays(end, -1) });
      const count = (c: string) => days.filter((f) => f.class === c).length;
      return {
        days: { qualified: count('qualified'), high: count('high'), negative: count('negative'), notComputable: count('not-computable') },
      };
    });
  }

  /**
   * Stores a figure and enqueues it when it is the period's first, or when a period that was not computable (or had
   * members missing) now is computable with fewer missing: a new revision. Returns the revision published, or
   * undefined when nothing was published (the stored figure is refreshed all the same, for the recall's clock).
   */
  private save(tx: Tx, d: DistrictShape, f: LinelossFigure, extras: () => Record<string, unknown>): number | undefined {
    const before = findFigure(tx, d.id, f.kind, f.period);
    const now = this.opts.clock.now();
    let revision: number;
    if (before === null) revision = 1;
    else {
      const missingBefore = Array.isArray(before.figure.missing) ? before.figure.missing.length : Number.POSITIVE_INFINITY;
      const improved = f.class !== 'not-computable' && (before.class === 'not-computable' || f.missing.length < missingBefore);
      if (!improved) {
        saveFigure(tx, { ...before, computedAt: now });
        return undefined;
      }
      revision = before.revision + 1;
    }
    const payload = { ...figurePayload(f, revision), ...extras() };
    saveFigure(tx, { district: d.id, kind: f.kind, period: f.period, revision, class: f.class, figure: payload, computedAt: now });
    if (f.kind === 'daily') saveMemberDays(tx, d.id, f.period, f.memberCenti);
    enqueue(tx, {
      topic: `lineloss/${d.id}/${f.kind}`,
      class: 'report',
      payload: { ...payload, ts: new Date(now).toISOString() },
    });
    return revision;
  }

  /** A high or negative day names the members whose consumption moved most against their previous week. */
  private dailyExtras(tx: Tx, d: DistrictShape, f: LinelossFigure): Record<string, unknown> {
    if (f.class !== 'high' && f.class !== 'negative') return {};
    const previous = memberDays(tx, d.id, addDays(f.period, -7), addDays(f.period, -1));
    return { topContributors: contributors(f.memberCenti, previous, TOP_CONTRIBUTORS) };
  }

  /**
   * Raises the district's alert after `alertAfterDays` days in a row of the same abnormal class (not-computable
   * days neither count nor break the run: they say nothing about the loss), and clears it at the next qualified day.
   */
  private evaluateAlert(tx: Tx, d: DistrictShape, date: string): void {
    // A run longer than the freeze horizon adds nothing: the alert was raised long before.
    const days = listFigures(tx, { district: d.id, kind: 'daily', from: addDays(date, -FREEZE_HORIZON) })
      .filter((f) => f.class !== 'not-computable')
      .reverse();
    const latest = days[0];
    if (latest === undefined) return;
    const active = activeLinelossAlert(tx, d.id);
    const now = this.opts.clock.now();
    const ts = new Date(now).toISOString();
    const band = d.lineloss.qualified;
    const clear = (why: string) => {
      if (active === null) return;
      clearLinelossAlert(tx, d.id);
      (this.opts.alertSink ?? publishLinelossAlert)(tx, {
        alertId: active.alertId,
        meter: d.supplyMeter,
        district: d.id,
        kind: active.kind,
        severity: 'warning',
        state: 'cleared',
        ts,
        evidence: { date: latest.period, ratePct: latest.figure.ratePct, class: latest.class, why },
      });
    };
    if (latest.class === 'qualified') {
      clear(`${latest.period} is qualified again`);
      return;
    }
    let streak = 0;
    while (streak < days.length && days[streak]!.class === latest.class) streak++;
    const kind: LinelossAlertKind = latest.class === 'high' ? 'line-loss-high' : 'line-loss-negative';
    if (active?.kind === kind) return;
    if (streak < d.lineloss.alertAfterDays) {
      if (active !== null) clear(`${latest.period} is ${latest.class}, not ${active.kind.slice('line-loss-'.length)}`);
      return;
    }
    clear(`${latest.period} is ${latest.class}`);
    const run = days.slice(0, streak).reverse();
    const sinceDate = run[0]!.period;
    const alertId = `lineloss-${d.id}-${kind.slice('line-loss-'.length)}-${sinceDate}`;
    raiseLinelossAlert(tx, { district: d.id, alertId, kind, raisedAt: now, sinceDate });
    (this.opts.alertSink ?? publishLinelossAlert)(tx, {
      alertId,
      meter: d.supplyMeter,
      district: d.id,
      kind,
      severity: 'warning',
      state: 'raised',
      ts,
      evidence: {
        days: run.map((f) => ({ date: f.period, ratePct: f.figure.ratePct, class: f.class })),
        alertAfterDays: d.lineloss.alertAfterDays,
        qualified: band,
        topContributors: latest.figure.topContributors ?? [],
      },
    });
  }
}

/** The figure as published (without ts): kWh with two decimals, null where not computable. */
export function figurePayload(f: LinelossFigure, revision: number): Record<string, unknown> {
  const kwh = (centi: number | null) => (centi === null ? null : centi / 100);
  return {
    district: f.district,
    [f.kind === 'daily' ? 'date' : 'month']: f.period,
    supplyKwh: kwh(f.supplyCenti),
    salesKwh: kwh(f.salesCenti),
    lossKwh: kwh(f.lossCenti),
    ratePct: f.ratePct,
    class: f.class,
    flagged20: f.flagged20,
    ...(f.target !== undefined ? { target: f.target, diffPct: f.diffPct ?? null } : {}),
    members: f.members,
    missing: f.missing,
    ...(Object.keys(f.why).length > 0 ? { why: f.why } : {}),
    ...(f.reason !== undefined ? { reason: f.reason } : {}),
    revision,
  };
}

function maxDate(a: string, b: string): string {
  return a > b ? a : b;
}

/** Calendar days from `a` to `b` ('YYYY-MM-DD'). */
export function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
}
