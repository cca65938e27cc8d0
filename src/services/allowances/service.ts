import { realTimers, repeat, type Clock, type Timers } from '../../clock.js';
import { allowanceTargets, type AllowanceConfig } from '../../config/index.js';
import { MeterdError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  allowanceCounts,
  allowanceRound,
  allowanceRounds,
  allowanceRow,
  allowanceRows,
  carryAllowanceRow,
  completeAllowanceRound,
  enqueue,
  FINAL_STATES,
  moveAllowanceRow,
  nextAllowanceRetryAt,
  nextAllowanceRow,
  OPEN_ALLOWANCE_STATES,
  retargetAllowanceRows,
  openAllowanceRounds,
  overdueAllowanceRows,
  planAllowanceRound,
  refreshAllowanceIdentity,
  reopenAllowanceRound,
  type AllowanceCounts,
  type AllowanceRound,
  type AllowanceRoundKey,
  type AllowanceRow,
  type AllowanceRowPatch,
  type AllowanceRowState,
  type LedgerEntry,
  type Store,
  type Tx,
} from '../../store/index.js';
import { splitByShares } from '../../devices/subsidy-port.js';
import { CreditError, type TopUpRequest, type TopUpResult } from '../credit.js';
import { allowanceReportTopic, allowanceTopic, progressMessage, reportMessage } from './messages.js';
import { allowanceRequestId, dueRounds, retryDelayMs, roundDueAt, roundLabel } from './rounds.js';

/** What the allowance service knows of a configured meter. */
export interface AllowanceMeter {
  readonly id: string;
  readonly busId: string;
  readonly address?: string;
  readonly customerNo?: string;
  readonly tags: readonly string[];
  readonly district?: string;
  /** The unit of the meter's credit method; undefined when its profile takes no credit. */
  readonly creditUnit?: 'money' | 'energy';
  /** The free-energy registers an allowance is written to, with their shares, when the profile has them. */
  readonly freeEnergy?: readonly { readonly point: string; readonly share: number }[];
}

export type AllowanceErrorCode =
  /** No allowance, term or round by that id in the config. */
  | 'UNKNOWN_ALLOWANCE'
  /** The round was never planned, or the meter is not in its plan. */
  | 'NOT_PLANNED'
  /** The row is not in a state the action applies to (it is still running, or already applied). */
  | 'NOT_RESOLVABLE'
  /** carry-over: the allowance has no later round, or the meter's row there has already started. */
  | 'NO_NEXT_ROUND';

export class AllowanceError extends MeterdError<AllowanceErrorCode> {
  override readonly name = 'AllowanceError';
}

export interface AllowanceServiceOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly timers?: Timers;
  readonly logger?: Logger;
  /** gateway.timeZone: the zone of every round's date and `at`. */
  readonly timeZone: string;
  readonly allowances: readonly AllowanceConfig[];
  readonly meters: readonly AllowanceMeter[];
  /** One worker per bus: the rows of a bus run one at a time. */
  readonly busIds: readonly string[];
  /** The credit service's loads (each row is an ordinary load with channel `allowance`). */
  readonly credit: {
    topUp(req: TopUpRequest, signal?: AbortSignal): Promise<TopUpResult>;
    /** Whether the meter answers now, recording nothing. */
    reachable(meterId: string, priority: 'batch', signal?: AbortSignal): Promise<boolean>;
  };
  /** After a row is applied (e.g. close a relay the empty meter had opened); its failure is logged, never the row's. */
  readonly afterApplied?: (row: AllowanceRow, entry: LedgerEntry, signal: AbortSignal) => Promise<unknown>;
  /** Wakes the uplink after progress or a report was enqueued. */
  readonly onCommitted?: () => void;
  /** Progress of a running round is published at most this often (a completed round at once). Default 5 s. */
  readonly progressEveryMs?: number;
  /** How often the calendar and the deadlines are looked at, on the monotonic timers. Default 60 s. */
  readonly tickMs?: number;
}

export type ResolveAction = 'retry' | 'carry-over' | 'cancel';

/** One round as `meterd allowance status` shows it. */
export interface RoundStatus extends AllowanceRound {
  readonly counts: AllowanceCounts;
  readonly complete: boolean;
}

/** A meter a round would load, before its date (`meterd allowance plan --dry-run`). */
export interface PlannedLoad {
  readonly meter: string;
  readonly bus: string;
  readonly address?: string;
  readonly customerNo?: string;
  readonly unit: 'money' | 'energy';
  readonly amount: number;
  /** False when the meter's credit unit differs: its row would be parked, never converted. */
  readonly unitMatches: boolean;
  /** Meters with free-energy registers: what each register would get (ledger units) instead of a purchase. */
  readonly freeEnergy?: readonly { readonly register: string; readonly amount: number }[];
}

/** Rejections after which the meter is left alone until a person decides; others are retried until the deadline. */
const RETRIED_REJECTIONS = new Set(['HSM_TIMEOUT', 'HSM_FAILED']);
/** Failures that may have touched the meter's books in a way a retry must not guess about. */
const PARKED_FAILURES = new Set(['COUNT_JUMPED', 'METER_NOT_CREDITABLE', 'SUBSIDY_UNDECIDED', 'SUBSIDY_MISMATCH', 'SUBSIDY_PARTIAL']);

/**
 * Free electricity allowances: plans each round when it is due (also late, after downtime), then loads every row as an
 * ordinary credit load at batch priority, one meter at a time per bus; offline meters are retried with backoff until
 * the deadline, typed refusals are parked for a person. The plan rows and the ledger's request ids make every step
 * safe to repeat: nothing a crash, a second run or a clock step does can load a row twice.
 */
export class AllowanceService {
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly meters: Map<string, AllowanceMeter>;
  /** Meters a worker is loading a row onto now: a meter replacement waits for them. */
  private readonly loadingMeters = new Set<string>();
  private readonly byId: Map<string, AllowanceConfig>;
  private readonly wakers = new Map<string, () => void>();
  /** The row each bus's worker is on, so the deadline sweep leaves it to the worker. */
  private readonly current = new Map<string, number>();
  private readonly workers: Promise<void>[] = [];
  /** Progress waiting for its throttle window, and when each round's progress last went out (monotonic ms). */
  private readonly progressTimers = new Map<string, unknown>();
  private readonly lastProgress = new Map<string, number>();
  private abort = new AbortController();
  private ticker: { stop(): void } | undefined;
  private running = false;

  constructor(private readonly opts: AllowanceServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'allowances' });
    this.timers = opts.timers ?? realTimers;
    this.meters = new Map(opts.meters.map((m) => [m.id, m]));
    this.byId = new Map(opts.allowances.map((a) => [a.id, a]));
  }

  /** Plan what is due now (catching up on rounds missed while the gateway was off), then work every bus. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.tick();
    // The retained progress of every round still running, as it stands after the restart.
    for (const key of this.opts.store.transaction((tx) => openAllowanceRounds(tx))) this.changed(key, false);
    this.ticker = repeat(this.timers, this.opts.tickMs ?? 60_000, () => this.tick());
    for (const busId of this.opts.busIds) this.workers.push(this.work(busId, this.abort.signal));
  }

  /** Stop after the row in flight (its load ends or is left for the ledger to settle at the next start). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.ticker?.stop();
    for (const [label, handle] of this.progressTimers) {
      this.timers.clearTimeout(handle);
      this.progressTimers.delete(label);
    }
    this.abort.abort(new Error('the gateway is stopping'));
    for (const wake of this.wakers.values()) wake();
    await Promise.allSettled(this.workers.splice(0));
  }

  /** Rounds with planned or pending rows. */
  /** True while a row of this meter is being loaded: a meter replacement must not interleave with it. */
  loading(meterId: string): boolean {
    return this.loadingMeters.has(meterId);
  }

  /**
   * The point's meter was replaced (docs/lifecycle.md): its rows not yet applied load onto the new meter, once (rows
   * keep the address they were planned with, so they are moved to the new one in the swap's transaction).
   */
  meterReplaced(tx: Tx, meterId: string, address: string): void {
    retargetAllowanceRows(tx, meterId, address);
  }

  /** After the swap committed: the point's identity as the workers check it before each row. */
  meterRebound(meterId: string, address: string): void {
    const m = this.meters.get(meterId);
    if (m) this.meters.set(meterId, { ...m, address });
  }

  /**
   * The point is served by a meter of another model from now on (a replacement's rebind): rounds planned from now use
   * its unit and free-energy registers. Rows already planned keep what they were planned with.
   */
  pointRebound(meter: AllowanceMeter): void {
    if (this.meters.has(meter.id)) this.meters.set(meter.id, meter);
  }

  inProgress(): number {
    return this.opts.store.transaction((tx) => openAllowanceRounds(tx)).length;
  }

  /** Plan every round whose start has passed and that was never planned. Returns the rounds planned now. */
  planDue(): AllowanceRoundKey[] {
    const now = this.opts.clock.now();
    const out: AllowanceRoundKey[] = [];
    for (const r of dueRounds(this.opts.allowances, this.opts.timeZone, now)) {
      if (this.opts.store.transaction((tx) => allowanceRound(tx, r)) !== null) continue;
      // A round first seen after its deadline is a gateway installed or restored late: its rows are recorded as
      // expired, so nobody gets an old allowance by surprise; a person may force it (docs/allowances.md).
      const late = now >= r.deadlineAt;
      this.plan(r, { dueAt: r.dueAt, deadlineAt: r.deadlineAt, late, by: 'schedule' });
      out.push(r);
    }
    return out;
  }

  /** The meters a round would load, from the config as it is now; nothing is written. */
  preview(key: AllowanceRoundKey): PlannedLoad[] {
    return previewRound(this.opts.allowances, this.opts.meters, key);
  }

  /**
   * Start a round now (allowance-run): plan it if it is not planned, then run every planned and pending row at once,
   * without waiting for their backoff. Safe to repeat and safe beside the automatic run: rows are keyed, loads are
   * keyed. `force` also reopens rows that expired (a round first seen after its deadline, or meters that stayed
   * offline), with a fresh deadline.
   */
  runNow(of: AllowanceRoundKey, opts: { by: string; force?: boolean }): RoundStatus {
    const key = keyOf(of);
    const a = this.allowance(key);
    const now = this.opts.clock.now();
    if (this.opts.store.transaction((tx) => allowanceRound(tx, key)) === null) {
      const dueAt = Math.min(now, roundDueAt(this.roundDate(key), a.at, this.opts.timeZone));
      this.plan(key, { dueAt, deadlineAt: Math.max(now, dueAt) + a.deadlineMs, late: false, by: opts.by });
    }
    const touched = this.opts.store.transaction(
      (tx) => {
        let n = 0;
        for (const row of allowanceRows(tx, { ...key, states: ['pending'] })) {
          moveAllowanceRow(tx, row.id, 'pending', { nextAttemptAt: null, tries: 0 }, `run now by ${opts.by}`);
          n++;
        }
        if (opts.force) {
          for (const row of allowanceRows(tx, { ...key, states: ['expired'] })) {
            moveAllowanceRow(
              tx,
              row.id,
              'pending',
              {
                attempt: this.nextAttempt(row),
                tries: 0,
                nextAttemptAt: null,
                deadlineAt: now + a.deadlineMs,
                reasonCode: null,
                reason: null,
              },
              `forced by ${opts.by}`,
            );
            n++;
          }
        }
        if (n > 0) reopenAllowanceRound(tx, key);
        return n;
      },
      { durable: true },
    );
    this.log.info({ round: roundLabel(key), by: opts.by, force: opts.force === true, rows: touched }, 'allowance round run now');
    this.wakeAll();
    this.changed(key, false);
    return this.roundStatus(key)!;
  }

  /**
   * A person's decision on an expired or parked row: `retry` (take the meter as the config now describes it and load
   * it again), `carry-over` (give it with the next round of the allowance instead) or `cancel`.
   */
  resolve(of: AllowanceRoundKey, meterId: string, action: ResolveAction, by: string): AllowanceRow {
    const key = keyOf(of);
    const a = this.allowance(key);
    const now = this.opts.clock.now();
    const result = this.opts.store.transaction(
      (tx) => {
        const row = allowanceRow(tx, key, meterId);
        if (!row) throw new AllowanceError('NOT_PLANNED', `meter ${meterId} is not in the plan of ${roundLabel(key)}`);
        if (row.state !== 'expired' && row.state !== 'needs-attention')
          throw new AllowanceError(
            'NOT_RESOLVABLE',
            `the row of ${meterId} in ${roundLabel(key)} is ${row.state}; only expired and needs-attention rows wait for a decision`,
          );
        if (action === 'cancel') return moveAllowanceRow(tx, row.id, 'cancelled', { nextAttemptAt: null }, `cancelled by ${by}`);
        if (action === 'retry') {
          const meter = this.meters.get(meterId);
          if (!meter) throw new AllowanceError('NOT_RESOLVABLE', `meter ${meterId} is no longer configured; cancel its row instead`);
          const attempt = this.nextAttempt(row);
          // The person has looked at the meter: its identity now is the one to load.
          const moved = moveAllowanceRow(
            tx,
            row.id,
            'pending',
            { attempt, tries: 0, nextAttemptAt: null, deadlineAt: now + a.deadlineMs, reasonCode: null, reason: null },
            `retry by ${by}`,
          );
          refreshAllowanceIdentity(tx, moved.id, meter.address ?? null, meter.customerNo ?? null);
          reopenAllowanceRound(tx, key);
          return allowanceRow(tx, key, meterId)!;
        }
        return this.carryOver(tx, a, row, by);
      },
      { durable: true },
    );
    this.log.info({ round: roundLabel(key), meter: meterId, action, by }, 'allowance row resolved');
    this.wakeAll();
    this.afterMove(key);
    return result;
  }

  /** Counts of every planned round (of one allowance), newest due first. */
  status(allowance?: string): RoundStatus[] {
    return this.opts.store.transaction((tx) =>
      allowanceRounds(tx, allowance)
        .reverse()
        .map((r) => withCounts(tx, r)),
    );
  }

  roundStatus(key: AllowanceRoundKey): RoundStatus | null {
    return this.opts.store.transaction((tx) => {
      const r = allowanceRound(tx, key);
      return r ? withCounts(tx, r) : null;
    });
  }

  /** Rows waiting for a person (needs-attention, expired), of every round or one allowance. */
  attention(allowance?: string): AllowanceRow[] {
    return this.opts.store.transaction((tx) =>
      allowanceRows(tx, { ...(allowance ? { allowance } : {}), states: ['needs-attention', 'expired'] }),
    );
  }

  /** Wake every bus's worker (a bus came back, a round was forced). */
  wakeAll(): void {
    for (const wake of this.wakers.values()) wake();
  }

  private tick(): void {
    try {
      const planned = this.planDue();
      this.expireOverdue();
      if (planned.length > 0) {
        for (const k of planned) this.changed(k, false);
        this.wakeAll();
      }
    } catch (err) {
      this.log.error({ err }, 'allowance schedule failed; trying again at the next tick');
    }
  }

  private plan(key: AllowanceRoundKey, p: { dueAt: number; deadlineAt: number; late: boolean; by: string }): void {
    const a = this.allowance(key);
    const targets = allowanceTargets(a, this.opts.meters);
    const r = this.opts.store.transaction(
      (tx) =>
        planAllowanceRound(
          tx,
          { ...key, dueAt: p.dueAt, deadlineAt: p.deadlineAt, lateOnPlan: p.late, createdBy: p.by },
          targets.map((m) => ({
            meterId: m.id,
            busId: m.busId,
            ...(m.address !== undefined ? { address: m.address } : {}),
            ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
            unit: a.unit,
            amount: a.amount,
          })),
        ),
      { durable: true },
    );
    if (r.created)
      this.log[p.late ? 'warn' : 'info'](
        { round: roundLabel(key), rows: r.rows, late: p.late, by: p.by },
        p.late
          ? 'allowance round first seen after its deadline: planned as expired, nothing loaded (force it with allowance-run force)'
          : 'allowance round planned',
      );
    // A round with no meters, or planned late, is complete at once.
    this.afterMove(key);
  }

  /** Expire the rows whose deadline passed, unless a load of theirs is still unsettled (the worker settles it). */
  private expireOverdue(): void {
    const now = this.opts.clock.now();
    const busy = new Set(this.current.values());
    const rows = this.opts.store.transaction((tx) => overdueAllowanceRows(tx, now));
    for (const row of rows) if (!busy.has(row.id)) this.expireIfSafe(row);
  }

  /** True when the row ended (expired, or found applied); false when its load is unsettled and must be settled first. */
  private expireIfSafe(row: AllowanceRow): boolean {
    const entry = this.opts.store.ledger.get(allowanceRequestId(row));
    if (entry?.state === 'applied') {
      this.move(row, 'applied', {}, `load ${entry.requestId} applied (count ${entry.purchaseCount})`);
      return true;
    }
    if (entry && !FINAL_STATES.includes(entry.state)) return false;
    this.move(
      row,
      'expired',
      {
        nextAttemptAt: null,
        reasonCode: row.reasonCode ?? 'EXPIRED',
        reason: row.reason ?? 'the meter did not answer before the deadline',
      },
      'deadline passed',
    );
    return true;
  }

  private async work(busId: string, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let row: AllowanceRow | null;
      try {
        row = this.opts.store.transaction((tx) => nextAllowanceRow(tx, busId, this.opts.clock.now()));
      } catch (err) {
        this.log.error({ err, bus: busId }, 'cannot read the allowance plan; trying again shortly');
        await this.sleep(busId, 5000);
        continue;
      }
      if (!row) {
        await this.sleep(busId, this.idleMs(busId));
        continue;
      }
      this.current.set(busId, row.id);
      this.loadingMeters.add(row.meterId);
      try {
        await this.execute(row, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.log.error({ err, bus: busId, meter: row.meterId }, 'allowance row failed unexpectedly; retried later');
        try {
          this.move(
            row,
            'pending',
            { nextAttemptAt: this.opts.clock.now() + this.allowance(row).retryMs },
            `error: ${(err as Error).message}`,
          );
        } catch {
          await this.sleep(busId, 5000);
        }
      } finally {
        this.current.delete(busId);
        this.loadingMeters.delete(row.meterId);
      }
    }
  }

  /** How long a bus's worker sleeps with nothing due: until its next retry, at most one tick (a clock step is followed). */
  private idleMs(busId: string): number {
    const tick = this.opts.tickMs ?? 60_000;
    const at = this.opts.store.transaction((tx) => nextAllowanceRetryAt(tx, busId));
    if (at === null) return tick;
    return Math.max(50, Math.min(tick, at - this.opts.clock.now()));
  }

  private sleep(busId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.timers.clearTimeout(handle);
        if (this.wakers.get(busId) === done) this.wakers.delete(busId);
        resolve();
      };
      const handle = this.timers.setTimeout(done, ms);
      this.wakers.set(busId, done);
      if (this.abort.signal.aborted) done();
    });
  }

  /** One row: checks, one ordinary load through the credit service, and the row's next state from the ledger's answer. */
  private async execute(row: AllowanceRow, signal: AbortSignal): Promise<void> {
    const now = this.opts.clock.now();
    if (row.deadlineAt <= now && this.expireIfSafe(row)) return;
    const meter = this.meters.get(row.meterId);
    if (!meter) return this.park(row, 'METER_REMOVED', `meter ${row.meterId} is no longer in the config`);
    if ((meter.address ?? null) !== row.address || (meter.customerNo ?? null) !== row.customerNo) {
      return this.park(
        row,
        'METER_CHANGED',
        `meter ${row.meterId} was planned as address ${row.address ?? '-'}, customer ${row.customerNo ?? '-'} and is now ${meter.address ?? '-'}, ${meter.customerNo ?? '-'}: a replaced meter is loaded only after a person retries it`,
      );
    }
    const requestId = allowanceRequestId(row);
    // A meter that did not answer last time is asked before a new ledger entry is opened for it: a room offline for
    // two weeks leaves one failed load in the books, not one per retry.
    if (row.reasonCode === 'METER_UNREACHABLE' && this.opts.store.ledger.get(requestId) === null) {
      if (!(await this.opts.credit.reachable(row.meterId, 'batch', signal))) {
        if (signal.aborted) return;
        return this.retry(row, false, 'METER_UNREACHABLE', `meter ${row.meterId} still does not answer`);
      }
    }
    let entry: LedgerEntry;
    try {
      ({ entry } = await this.opts.credit.topUp(
        {
          requestId,
          meterId: row.meterId,
          channel: 'allowance',
          operator: 'system',
          priority: 'batch',
          ...(row.customerNo !== null ? { customerNo: row.customerNo } : {}),
          // Back to the door's units: the credit service parses them with the same rules as every other load.
          ...(row.unit === 'money' ? { amountFen: row.amount } : { energyKwh: row.amount / 100 }),
        },
        signal,
      ));
    } catch (err) {
      // A replacement running on the meter: the row waits for it and loads onto the new meter.
      if (err instanceof CreditError && err.code === 'METER_BEING_REPLACED') return this.retry(row, false, err.code, err.message);
      if (err instanceof CreditError) return this.park(row, err.code, err.message);
      if (signal.aborted) return;
      // The load may be open in the ledger: the same request id settles it next time; never a new attempt here.
      return this.retry(row, false, 'LOAD_INTERRUPTED', (err as Error).message);
    }
    const code = entry.error?.code ?? entry.state.toUpperCase();
    const message = entry.error?.message ?? '';
    switch (entry.state) {
      case 'applied': {
        this.move(row, 'applied', { nextAttemptAt: null, reasonCode: null, reason: null }, `loaded: count ${entry.purchaseCount}`);
        if (this.opts.afterApplied)
          await this.opts
            .afterApplied(row, entry, signal)
            .catch((err: unknown) => this.log.warn({ meter: row.meterId, err: (err as Error).message }, 'after the allowance load'));
        return;
      }
      case 'rejected':
        if (RETRIED_REJECTIONS.has(code)) return this.retry(row, true, code, message);
        return this.park(row, code, message);
      case 'failed':
        if (PARKED_FAILURES.has(code)) return this.park(row, code, message);
        return this.retry(row, true, code, message);
      default:
        // Sent but not verified: the meter's counter decides later, under the same request id.
        return this.retry(row, false, code, message);
    }
  }

  private park(row: AllowanceRow, code: string, reason: string): void {
    this.move(row, 'needs-attention', { nextAttemptAt: null, reasonCode: code, reason }, `parked: ${code}`);
  }

  /** Try again later: with a new attempt only when the last load ended without reaching the meter. */
  private retry(row: AllowanceRow, newAttempt: boolean, code: string, reason: string): void {
    const a = this.allowance(row);
    const now = this.opts.clock.now();
    if (newAttempt && row.deadlineAt <= now) {
      this.move(row, 'expired', { nextAttemptAt: null, reasonCode: code, reason }, 'deadline passed');
      return;
    }
    const attempt = newAttempt ? row.attempt + 1 : row.attempt;
    const tries = row.tries + 1;
    const next = now + retryDelayMs(a.retryMs, tries);
    this.move(
      row,
      'pending',
      { attempt, tries, nextAttemptAt: next, reasonCode: code, reason },
      `${code}; next try ${new Date(next).toISOString()}`,
    );
  }

  /** The attempt a reopened row loads under: a new one unless its last load is unsettled or never happened. */
  private nextAttempt(row: AllowanceRow): number {
    const entry = this.opts.store.ledger.get(allowanceRequestId(row));
    return entry && FINAL_STATES.includes(entry.state) && entry.state !== 'applied' ? row.attempt + 1 : row.attempt;
  }

  private carryOver(tx: Tx, a: AllowanceConfig, row: AllowanceRow, by: string): AllowanceRow {
    const rounds = a.terms.flatMap((t) => t.rounds.map((r) => ({ term: t.id, round: r.id })));
    const i = rounds.findIndex((r) => r.term === row.term && r.round === row.round);
    const next = rounds[i + 1];
    if (!next)
      throw new AllowanceError('NO_NEXT_ROUND', `${a.id} has no round after ${row.term}/${row.round} to carry ${row.meterId} over to`);
    const nextKey = { allowance: a.id, ...next };
    const there = allowanceRow(tx, nextKey, row.meterId);
    if (there && (there.state !== 'planned' || this.opts.store.ledger.get(allowanceRequestId(there)) !== null))
      throw new AllowanceError(
        'NO_NEXT_ROUND',
        `the row of ${row.meterId} in ${roundLabel(nextKey)} has already started (${there.state}); carry-over can only add to a row not yet loaded`,
      );
    carryAllowanceRow(tx, row, nextKey);
    return moveAllowanceRow(
      tx,
      row.id,
      'cancelled',
      { nextAttemptAt: null, reasonCode: 'CARRIED_OVER', reason: `carried over to ${next.term}/${next.round}` },
      `carried over to ${next.term}/${next.round} by ${by}`,
    );
  }

  private move(row: AllowanceRow, state: AllowanceRowState, patch: AllowanceRowPatch, detail: string): void {
    const completed = this.opts.store.transaction(
      (tx) => {
        moveAllowanceRow(tx, row.id, state, patch, detail);
        return OPEN_ALLOWANCE_STATES.includes(state) ? false : this.completeIfDone(tx, row);
      },
      { durable: true },
    );
    this.log[state === 'needs-attention' ? 'warn' : 'info'](
      { round: roundLabel(row), meter: row.meterId, bus: row.busId, state, code: patch.reasonCode ?? undefined },
      `allowance ${state}`,
    );
    if (completed) this.log.info({ round: roundLabel(row) }, 'allowance round complete');
    this.changed(row, completed);
  }

  /** After a plan or a person's decision: the round may have become complete. */
  private afterMove(key: AllowanceRoundKey): void {
    const completed = this.opts.store.transaction((tx) => this.completeIfDone(tx, key), { durable: true });
    if (completed) this.log.info({ round: roundLabel(key) }, 'allowance round complete');
    this.changed(key, completed);
  }

  /**
   * Marks a round complete when nothing is planned or pending, with its report and final progress in the same commit:
   * each completion is reported exactly once (a round a person reopens completes, and reports, again).
   */
  private completeIfDone(tx: Tx, of: AllowanceRoundKey): boolean {
    const key = keyOf(of);
    const counts = allowanceCounts(tx, key);
    if (counts.planned + counts.pending > 0 || !completeAllowanceRound(tx, key)) return false;
    const round = allowanceRound(tx, key)!;
    const now = this.opts.clock.now();
    enqueue(tx, {
      topic: allowanceReportTopic(key.allowance),
      class: 'report',
      payload: reportMessage(round, counts, allowanceRows(tx, key), now),
    });
    enqueue(tx, { topic: allowanceTopic(key.allowance), class: 'state', retain: true, payload: progressMessage(round, counts, now) });
    return true;
  }

  /** A row moved: the round's progress goes out now, or at the end of the throttle window (its counts then). */
  private changed(key: AllowanceRoundKey, completed: boolean): void {
    const label = roundLabel(key);
    const timer = this.progressTimers.get(label);
    if (completed) {
      if (timer !== undefined) this.timers.clearTimeout(timer);
      this.progressTimers.delete(label);
      this.lastProgress.set(label, this.timers.now());
      this.opts.onCommitted?.();
      return;
    }
    if (timer !== undefined) return;
    const every = this.opts.progressEveryMs ?? 5000;
    const wait = Math.max(0, (this.lastProgress.get(label) ?? -Infinity) + every - this.timers.now());
    if (wait === 0) {
      this.publishProgress(key);
      return;
    }
    const handle = this.timers.setTimeout(() => {
      this.progressTimers.delete(label);
      this.publishProgress(key);
    }, wait);
    (handle as { unref?: () => void }).unref?.();
    this.progressTimers.set(label, handle);
  }

  private publishProgress(key: AllowanceRoundKey): void {
    this.lastProgress.set(roundLabel(key), this.timers.now());
    try {
      this.opts.store.transaction((tx) => {
        const round = allowanceRound(tx, key);
        if (!round) return;
        enqueue(tx, {
          topic: allowanceTopic(key.allowance),
          class: 'state',
          retain: true,
          payload: progressMessage(round, allowanceCounts(tx, key), this.opts.clock.now()),
        });
      });
      this.opts.onCommitted?.();
    } catch (err) {
      this.log.error({ err, round: roundLabel(key) }, 'allowance progress could not be stored');
    }
  }

  private allowance(key: Pick<AllowanceRoundKey, 'allowance'> & Partial<AllowanceRoundKey>): AllowanceConfig {
    const a = this.byId.get(key.allowance);
    if (!a) throw new AllowanceError('UNKNOWN_ALLOWANCE', `no allowance "${key.allowance}" in the config`);
    if (key.term !== undefined && key.round !== undefined) this.roundDate(key as AllowanceRoundKey);
    return a;
  }

  private roundDate(key: AllowanceRoundKey): string {
    const a = this.byId.get(key.allowance);
    const r = a?.terms.find((t) => t.id === key.term)?.rounds.find((x) => x.id === key.round);
    if (!r) throw new AllowanceError('UNKNOWN_ALLOWANCE', `allowance ${key.allowance} has no round ${key.term}/${key.round} in the config`);
    return r.date;
  }
}

/** The meters a round would load, from the config as it is now (`meterd allowance plan --dry-run`). Pure. */
export function previewRound(
  allowances: readonly AllowanceConfig[],
  meters: readonly AllowanceMeter[],
  key: AllowanceRoundKey,
): PlannedLoad[] {
  const a = allowances.find((x) => x.id === key.allowance);
  if (!a) throw new AllowanceError('UNKNOWN_ALLOWANCE', `no allowance "${key.allowance}" in the config`);
  if (!a.terms.find((t) => t.id === key.term)?.rounds.some((r) => r.id === key.round))
    throw new AllowanceError('UNKNOWN_ALLOWANCE', `allowance ${key.allowance} has no round ${key.term}/${key.round} in the config`);
  return allowanceTargets(a, meters).map((m) => ({
    meter: m.id,
    bus: m.busId,
    ...(m.address !== undefined ? { address: m.address } : {}),
    ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
    unit: a.unit,
    amount: a.amount,
    unitMatches: m.creditUnit === a.unit,
    ...(m.freeEnergy && m.creditUnit === a.unit ? { freeEnergy: freeEnergyShares(m.freeEnergy, a.amount) } : {}),
  }));
}

function freeEnergyShares(registers: NonNullable<AllowanceMeter['freeEnergy']>, amount: number): PlannedLoad['freeEnergy'] {
  const parts = splitByShares(
    amount,
    registers.map((r) => r.share),
  );
  return registers.map((r, i) => ({ register: r.point, amount: parts[i]! }));
}

/** Only the key of a round: a row or a command carries more fields, which a query must not take as filters. */
function keyOf(k: AllowanceRoundKey): AllowanceRoundKey {
  return { allowance: k.allowance, term: k.term, round: k.round };
}

function withCounts(tx: Tx, r: AllowanceRound): RoundStatus {
  const counts = allowanceCounts(tx, r);
  return { ...r, counts, complete: counts.planned + counts.pending === 0 };
}
