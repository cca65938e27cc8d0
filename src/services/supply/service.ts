import { wait, type Clock, type Timers } from '../../clock.js';
import type { SupplySettings } from '../../config/supply.js';
import { MeterdError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  appendSupplyRecord,
  enqueue,
  insertSupplyNotice,
  updateSupplyNotice,
  type Store,
  type SupplyNotice,
  type SupplyReason,
  type SupplyStep,
  type Tx,
} from '../../store/index.js';
import type { RelayService } from '../relay.js';
import { firstAllowedAt, protectedWindowAt, windowEnd } from './windows.js';

export type SupplyErrorCode =
  /** No notice with that id on this gateway. */
  | 'UNKNOWN_NOTICE'
  /** The approver is the person who asked for the cut: a cut needs a second person. */
  | 'SAME_PERSON'
  /** The meter has a notice in progress already (waiting, approved, cut or being restored). */
  | 'NOTICE_OPEN'
  /** The notice is not in a state that step applies to (approve a cancelled one, cancel one already cut, …). */
  | 'NOTICE_STATE'
  /** The meter's profile has no relay the gateway can switch. */
  | 'RELAY_UNSUPPORTED';

export class SupplyError extends MeterdError<SupplyErrorCode> {
  override readonly name = 'SupplyError';
}

export interface SupplyServiceOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly relays: Pick<RelayService, 'switch' | 'readState' | 'supports'>;
  readonly settings: SupplySettings;
  /** gateway.timeZone: the protected windows are local hours and dates. */
  readonly timeZone: string;
  readonly logger?: Logger;
  readonly onCommitted?: () => void;
  /** A trip or restore that could not be confirmed is tried again after this long. Default 5 minutes. */
  readonly retryMs?: number;
  /** The longest the scheduler sleeps between passes, so a step of the wall clock is noticed. Default 1 minute. */
  readonly checkEveryMs?: number;
  /**
   * For crash tests only (`meterd run` with METERD_TEST_HOLD_SUPPLY): a notice's trip waits here until the gateway
   * stops, so a test can kill the process while the trip is on its way. `trip-sent`: after `trip-sent` is committed,
   * before the command goes to the meter; `trip-reached`: after the meter's relay opened, before `trip-confirmed` is
   * committed.
   */
  readonly holdAt?: SupplyHold;
}

/** Where a crash test holds a notice's trip (see {@link SupplyServiceOptions.holdAt}). */
export type SupplyHold = 'trip-sent' | 'trip-reached';
export const SUPPLY_HOLDS: readonly SupplyHold[] = ['trip-sent', 'trip-reached'];

export interface SupplyNoticeRequest {
  readonly requestId: string;
  readonly meterId: string;
  readonly reason: SupplyReason;
  readonly operator: string;
  readonly note?: string;
}

/** What a restore, a notice's trip or a plain relay command ended with, for the reply. */
export interface SupplySwitchResult {
  readonly relay: 'open' | 'closed' | 'unknown';
  readonly confirmed: boolean;
  readonly code?: string;
  readonly message?: string;
}

/** A step of a cut is on the disk before the relay moves: after a power cut the record still says what was sent. */
const DURABLE = { durable: true } as const;

const IN_PROGRESS: readonly SupplyNotice['state'][] = ['approved', 'tripping', 'restoring'];

/**
 * Cuts off and restores supply with a notice and a second person's approval (欠费停电: 通知 → 审批 → 停电 → 记录 →
 * 复电). Every step is a line of the 停(送)电 record and a message on `meters/<id>/supply`, committed together. An
 * approved cut is carried out by the scheduler at or after its earliest time, outside the protected windows unless it
 * is for safety, through the relay service (sent once, confirmed from the meter). The state lives in SQLite, so a
 * restart carries on where the gateway stopped: a trip being sent is confirmed from the meter before anything is sent
 * again. A cut for arrears is restored by itself once a load clears the arrears.
 */
export class SupplyService {
  readonly #log: Logger;
  /** One operation per meter at a time: the scheduler and a technician's restore never switch one relay together. */
  readonly #busy = new Set<string>();
  #timer: unknown;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  readonly #abort = new AbortController();

  constructor(private readonly opts: SupplyServiceOptions) {
    this.#log = (opts.logger ?? silentLogger).child({ component: 'supply' });
  }

  /** Records a notice; its earliest cut is `supply.noticeHours` later. */
  notice(req: SupplyNoticeRequest): SupplyNotice {
    if (!this.opts.relays.supports(req.meterId))
      throw new SupplyError('RELAY_UNSUPPORTED', `meter ${req.meterId} has no relay control in its profile: it cannot be cut remotely`);
    const now = this.opts.clock.now();
    const notice = this.opts.store.transaction((tx) => {
      const open = this.opts.store.supply.openNotice(req.meterId);
      if (open !== null)
        throw new SupplyError(
          'NOTICE_OPEN',
          `meter ${req.meterId} has notice ${open.id} ${open.state} already; cancel it (supply-cancel) or restore the meter first`,
          { details: { noticeId: open.id, state: open.state } },
        );
      const n = insertSupplyNotice(tx, {
        meterId: req.meterId,
        reason: req.reason,
        requestedBy: req.operator,
        requestId: req.requestId,
        note: req.note,
        createdAt: now,
        earliestAt: now + this.opts.settings.noticeMs,
      });
      this.#step(tx, n, 'notice', {
        operator: req.operator,
        reason: req.reason,
        requestId: req.requestId,
        detail: req.note ? { note: req.note } : null,
        at: now,
      });
      return n;
    }, DURABLE);
    this.#committed();
    this.#log.info({ meter: req.meterId, noticeId: notice.id, reason: req.reason, operator: req.operator }, 'supply notice recorded');
    return notice;
  }

  /** A second person approves a notice; the scheduler then cuts at or after its earliest time. */
  approve(req: { requestId: string; noticeId: number; operator: string }): SupplyNotice {
    const now = this.opts.clock.now();
    const notice = this.opts.store.transaction((tx) => {
      const n = this.#notice(req.noticeId);
      if (n.state !== 'notified')
        throw new SupplyError('NOTICE_STATE', `notice ${n.id} is ${n.state}; only a notice waiting for approval can be approved`);
      if (samePerson(n.requestedBy, req.operator))
        throw new SupplyError(
          'SAME_PERSON',
          `notice ${n.id} was asked for by ${n.requestedBy}; a cut is approved by a second person, not by the one who asked for it`,
        );
      const approved = updateSupplyNotice(tx, n.id, { state: 'approved', approvedBy: req.operator, approvedAt: now });
      this.#step(tx, approved, 'approve', { operator: req.operator, requestId: req.requestId, at: now });
      return approved;
    }, DURABLE);
    this.#committed();
    this.#log.info({ meter: notice.meterId, noticeId: notice.id, operator: req.operator }, 'supply cut approved');
    this.wake();
    return notice;
  }

  /** Cancels a notice not carried out yet. */
  cancel(req: { requestId: string; noticeId: number; operator: string }): SupplyNotice {
    const now = this.opts.clock.now();
    const notice = this.opts.store.transaction((tx) => {
      const n = this.#notice(req.noticeId);
      if (n.state !== 'notified' && n.state !== 'approved')
        throw new SupplyError(
          'NOTICE_STATE',
          `notice ${n.id} is ${n.state}; only a notice not carried out yet can be cancelled${n.state === 'cut' ? ' (restore the meter: supply-restore)' : ''}`,
        );
      if (this.#busy.has(n.meterId))
        throw new SupplyError('NOTICE_STATE', `notice ${n.id}: the trip is being sent now; restore the meter once it is confirmed`);
      const cancelled = updateSupplyNotice(tx, n.id, { state: 'cancelled', cancelledAt: now, cancelledBy: req.operator, nextTryAt: null });
      this.#step(tx, cancelled, 'cancel', { operator: req.operator, requestId: req.requestId, at: now });
      return cancelled;
    }, DURABLE);
    this.#committed();
    this.#log.info({ meter: notice.meterId, noticeId: notice.id, operator: req.operator }, 'supply notice cancelled');
    return notice;
  }

  /**
   * Closes a meter's relay and confirms it; the meter's cut notice, if any, ends restored. A meter with a notice
   * still waiting (not carried out) is refused: cancel the notice instead.
   */
  async restore(
    req: { requestId: string; meterId: string; operator: string; reason: string },
    signal?: AbortSignal,
  ): Promise<{ notice: SupplyNotice | null; result: SupplySwitchResult }> {
    if (!this.opts.relays.supports(req.meterId))
      throw new SupplyError('RELAY_UNSUPPORTED', `meter ${req.meterId} has no relay control in its profile`);
    const open = this.opts.store.supply.openNotice(req.meterId);
    if (open !== null && (open.state === 'notified' || open.state === 'approved'))
      throw new SupplyError(
        'NOTICE_STATE',
        `meter ${req.meterId} is not cut: notice ${open.id} is ${open.state}; cancel it (supply-cancel) instead`,
      );
    return this.#exclusive(req.meterId, async () => {
      const now = this.opts.clock.now();
      const current = this.opts.store.supply.openNotice(req.meterId);
      const queued = this.opts.store.transaction((tx) => {
        const n =
          current === null
            ? null
            : updateSupplyNotice(tx, current.id, {
                state: 'restoring',
                restoreRequestedAt: now,
                restoredBy: req.operator,
                restoreReason: req.reason,
                nextTryAt: null,
              });
        this.#step(tx, n, 'restore-sent', { operator: req.operator, reason: req.reason, requestId: req.requestId, at: now }, req.meterId);
        if (n !== null) return updateSupplyNotice(tx, n.id, { restoreSentAt: now });
        return null;
      }, DURABLE);
      this.#committed();
      return this.#close(req.meterId, queued, { operator: req.operator, reason: req.reason, requestId: req.requestId }, signal);
    });
  }

  /**
   * A technician's plain relay command, written into the same book with its reason. A confirmed close of a meter cut
   * under a notice ends that notice restored.
   */
  recordRelay(r: {
    requestId: string;
    meterId: string;
    action: 'trip' | 'close';
    operator: string;
    reason?: string;
    result: SupplySwitchResult;
  }): void {
    const now = this.opts.clock.now();
    this.opts.store.transaction((tx) => {
      const open = this.opts.store.supply.openNotice(r.meterId);
      const restores = r.action === 'close' && r.result.confirmed && open !== null && (open.state === 'cut' || open.state === 'restoring');
      const n = restores
        ? updateSupplyNotice(tx, open.id, {
            state: 'restored',
            restoredAt: now,
            restoredBy: open.restoredBy ?? r.operator,
            restoreReason: open.restoreReason ?? r.reason ?? 'relay close',
            nextTryAt: null,
          })
        : null;
      this.#step(
        tx,
        n,
        r.action === 'trip' ? 'relay-trip' : 'relay-close',
        {
          operator: r.operator,
          reason: r.reason ?? null,
          requestId: r.requestId,
          detail: { relay: r.result.relay, confirmed: r.result.confirmed, ...(r.result.code ? { code: r.result.code } : {}) },
          at: now,
        },
        r.meterId,
      );
    }, DURABLE);
    this.#committed();
  }

  /**
   * Whether the meter's relay is this service's to close: cut under a notice (or being cut or restored). A top-up
   * then leaves the relay alone; the service restores an arrears cut once the arrears are cleared, and never a
   * safety cut.
   */
  holdsRelay(meterId: string): boolean {
    const n = this.opts.store.supply.openNotice(meterId);
    return n !== null && (n.state === 'tripping' || n.state === 'cut' || n.state === 'restoring');
  }

  /** The first time the notice's cut may be carried out: its earliest time, moved past protected windows. */
  plannedAt(n: Pick<SupplyNotice, 'earliestAt' | 'reason'>): number {
    return n.reason === 'safety' ? n.earliestAt : firstAllowedAt(n.earliestAt, this.opts.settings.protectedWindows, this.opts.timeZone);
  }

  start(): void {
    this.#stopped = false;
    this.wake();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.opts.timers.clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running?.catch(() => undefined);
  }

  /** Runs a pass soon (after an approval, a load, a restart); passes never overlap. */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.opts.timers.clearTimeout(this.#timer);
    this.#timer = this.opts.timers.setTimeout(() => void this.runDue(), 0);
  }

  /** One pass of the scheduler: carries out what is due now and arms the next pass. Resolves when it is done. */
  runDue(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.opts.timers.clearTimeout(this.#timer);
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#log.error({ err }, 'supply pass failed');
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
      this.#arm();
    });
    return this.#running;
  }

  async #pass(): Promise<void> {
    this.#queueArrearsRestores();
    for (const n of this.opts.store.supply.inStates(IN_PROGRESS)) {
      if (this.#stopped) return;
      if (this.#busy.has(n.meterId)) continue;
      const now = this.opts.clock.now();
      if (n.state === 'approved') {
        if (now < n.earliestAt || (n.nextTryAt !== null && now < n.nextTryAt)) continue;
        if (n.reason !== 'safety') {
          const w = protectedWindowAt(now, this.opts.settings.protectedWindows, this.opts.timeZone);
          if (w !== undefined) {
            const until = windowEnd(now, w, this.opts.timeZone);
            this.opts.store.transaction((tx) => {
              const deferred = updateSupplyNotice(tx, n.id, { nextTryAt: until });
              this.#step(tx, deferred, 'trip-deferred', { detail: { window: w.text, until: new Date(until).toISOString() } });
            }, DURABLE);
            this.#committed();
            this.#log.info({ meter: n.meterId, noticeId: n.id, window: w.text }, 'supply cut held by a protected window');
            continue;
          }
        }
        await this.#exclusive(n.meterId, () => this.#trip(n));
      } else if (n.state === 'tripping') {
        await this.#exclusive(n.meterId, () => this.#trip(n));
      } else if (n.state === 'restoring') {
        if (n.nextTryAt !== null && now < n.nextTryAt) continue;
        await this.#exclusive(n.meterId, async () => {
          const sentAt = this.opts.clock.now();
          const sent = this.opts.store.transaction((tx) => {
            this.#step(tx, n, 'restore-sent', { operator: n.restoredBy, reason: n.restoreReason, at: sentAt });
            return updateSupplyNotice(tx, n.id, { restoreSentAt: sentAt });
          }, DURABLE);
          this.#committed();
          await this.#close(n.meterId, sent, { operator: n.restoredBy, reason: n.restoreReason, requestId: null }, this.#abort.signal);
        });
      }
    }
  }

  /**
   * Sends the notice's trip once and confirms it from the meter. A notice found `tripping` (the gateway stopped while
   * sending) is first read: a relay already open is confirmed without a second trip.
   */
  async #trip(n: SupplyNotice): Promise<void> {
    const signal = this.#abort.signal;
    const current = this.opts.store.supply.notice(n.id)!;
    if (current.state !== 'approved' && current.state !== 'tripping') return;
    // Why a second trip-sent line follows the first: the record is never edited, so it says why the trip went again.
    let again: string | undefined;
    if (current.state === 'tripping') {
      try {
        const state = await this.opts.relays.readState(n.meterId, signal);
        if (state.open) {
          this.#tripConfirmed(current, 'confirmed from the meter after a restart');
          return;
        }
        again = 'sent again after a restart: the relay was still closed';
      } catch (err) {
        this.#log.warn({ meter: n.meterId, noticeId: n.id, err: (err as Error).message }, 'relay not readable; the trip is sent again');
        again = 'sent again after a restart: the relay could not be read';
      }
    }
    const sentAt = this.opts.clock.now();
    const sending = this.opts.store.transaction((tx) => {
      const t = updateSupplyNotice(tx, n.id, { state: 'tripping', tripSentAt: sentAt, nextTryAt: null });
      this.#step(tx, t, 'trip-sent', { operator: t.approvedBy, reason: t.reason, detail: again ? { note: again } : null, at: sentAt });
      return t;
    }, DURABLE);
    this.#committed();
    if (!(await this.#hold('trip-sent', n))) return;
    // A cut for arrears dies when the customer paid after the notice; a safety cut is never cancelled by money.
    const r = await this.opts.relays.switch(
      {
        meterId: n.meterId,
        action: 'trip',
        requestedBy: `supply-notice-${n.id}`,
        receivedAt: n.reason === 'arrears' ? n.createdAt : sentAt,
      },
      signal,
    );
    if (signal.aborted && r.status !== 'done') return;
    if (r.status === 'done') {
      if (!(await this.#hold('trip-reached', n))) return;
      this.#tripConfirmed(sending);
      return;
    }
    const now = this.opts.clock.now();
    if (r.status === 'cancelled') {
      this.opts.store.transaction((tx) => {
        const c = updateSupplyNotice(tx, n.id, { state: 'cancelled', cancelledAt: now, cancelledBy: 'top-up', nextTryAt: null });
        this.#step(tx, c, 'trip-cancelled', { reason: r.reason, at: now });
      }, DURABLE);
      this.#committed();
      return;
    }
    this.opts.store.transaction((tx) => {
      const f = updateSupplyNotice(tx, n.id, {
        state: 'approved',
        nextTryAt: now + (this.opts.retryMs ?? 300_000),
        lastError: `${r.code}: ${r.message}`,
      });
      this.#step(tx, f, 'trip-failed', { detail: { code: r.code, message: r.message } });
    }, DURABLE);
    this.#committed();
    this.#log.warn({ meter: n.meterId, noticeId: n.id, code: r.code }, 'supply cut not confirmed; tried again later');
  }

  /** Crash tests only: waits at `at` until the gateway stops (then false: the trip is left as the store has it). */
  async #hold(at: SupplyHold, n: SupplyNotice): Promise<boolean> {
    if (this.opts.holdAt !== at) return true;
    this.#log.warn({ meter: n.meterId, noticeId: n.id, at }, 'supply trip held here (crash test)');
    await wait(this.opts.timers, 2 ** 31 - 1, this.#abort.signal);
    return false;
  }

  #tripConfirmed(n: SupplyNotice, note?: string): void {
    const now = this.opts.clock.now();
    this.opts.store.transaction((tx) => {
      const cut = updateSupplyNotice(tx, n.id, { state: 'cut', tripConfirmedAt: now, lastError: null });
      this.#step(tx, cut, 'trip-confirmed', { detail: { relay: 'open', ...(note ? { note } : {}) }, at: now });
    }, DURABLE);
    this.#committed();
    this.#log.info({ meter: n.meterId, noticeId: n.id }, 'supply cut confirmed');
    // A load may have cleared the arrears while the trip was on its way.
    if (n.reason === 'arrears') this.wake();
  }

  /** Closes the relay and confirms it; the notice (if any) ends restored, or waits for another try. */
  async #close(
    meterId: string,
    n: SupplyNotice | null,
    who: { operator: string | null; reason: string | null; requestId: string | null },
    signal?: AbortSignal,
  ): Promise<{ notice: SupplyNotice | null; result: SupplySwitchResult }> {
    const r = await this.opts.relays.switch(
      { meterId, action: 'close', requestedBy: who.requestId ?? `supply-restore-${n?.id}`, receivedAt: this.opts.clock.now() },
      signal,
    );
    const now = this.opts.clock.now();
    const result: SupplySwitchResult =
      r.status === 'done'
        ? { relay: r.state.open ? 'open' : 'closed', confirmed: true }
        : {
            relay: r.status !== 'cancelled' && r.state ? (r.state.open ? 'open' : 'closed') : 'unknown',
            confirmed: false,
            code: r.status === 'cancelled' ? 'CANCELLED' : r.code,
            message: r.status === 'cancelled' ? r.reason : r.message,
          };
    const notice = this.opts.store.transaction((tx) => {
      if (result.confirmed) {
        const done =
          n === null ? null : updateSupplyNotice(tx, n.id, { state: 'restored', restoredAt: now, nextTryAt: null, lastError: null });
        this.#step(tx, done, 'restore-confirmed', { ...who, detail: { relay: result.relay }, at: now }, meterId);
        return done;
      }
      const waiting =
        n === null
          ? null
          : updateSupplyNotice(tx, n.id, {
              nextTryAt: now + (this.opts.retryMs ?? 300_000),
              lastError: `${result.code}: ${result.message}`,
            });
      this.#step(tx, waiting, 'restore-failed', { ...who, detail: { code: result.code, message: result.message } }, meterId);
      return waiting;
    }, DURABLE);
    this.#committed();
    if (result.confirmed) this.#log.info({ meter: meterId, noticeId: n?.id, operator: who.operator }, 'supply restored');
    else this.#log.warn({ meter: meterId, noticeId: n?.id, code: result.code }, 'supply restore not confirmed');
    return { notice, result };
  }

  /** Cuts for arrears whose meter has since had a load that cleared the arrears: their restore is queued. */
  #queueArrearsRestores(): void {
    for (const n of this.opts.store.supply.inStates(['cut'])) {
      if (n.reason !== 'arrears') continue;
      const since = n.tripSentAt ?? n.createdAt;
      const loads = this.opts.store.ledger
        .list({ meterId: n.meterId, since })
        .filter((e) => e.kind === 'load' && e.state === 'applied' && e.after !== null);
      const last = loads.at(-1);
      if (last === undefined || !arrearsCleared(last.after!)) continue;
      const at = this.opts.clock.now();
      this.opts.store.transaction((tx) => {
        const q = updateSupplyNotice(tx, n.id, {
          state: 'restoring',
          restoreRequestedAt: at,
          restoredBy: 'gateway',
          restoreReason: `arrears cleared by load ${last.requestId}`,
          nextTryAt: null,
        });
        this.#step(tx, q, 'restore-queued', {
          operator: 'gateway',
          reason: q.restoreReason,
          detail: { load: last.requestId, balance: last.after!.balance, overdraft: last.after!.overdraft, unit: last.unit },
          at,
        });
      }, DURABLE);
      this.#committed();
      this.#log.info({ meter: n.meterId, noticeId: n.id, load: last.requestId }, 'arrears cleared: restore queued');
    }
  }

  /** Arms the next pass: at the earliest due time of a notice, at most `checkEveryMs` away. */
  #arm(): void {
    if (this.#stopped) return;
    const now = this.opts.clock.now();
    let next = now + (this.opts.checkEveryMs ?? 60_000);
    for (const n of this.opts.store.supply.inStates(IN_PROGRESS)) {
      // A meter a technician's restore holds is looked at again when that restore ends (it wakes the scheduler).
      if (this.#busy.has(n.meterId)) continue;
      const due = Math.max(n.state === 'approved' ? n.earliestAt : now, n.nextTryAt ?? now);
      next = Math.min(next, due);
    }
    this.opts.timers.clearTimeout(this.#timer);
    // Never less than a second: a step that could not finish must not turn into a busy loop.
    this.#timer = this.opts.timers.setTimeout(() => void this.runDue(), Math.max(1000, next - now));
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #exclusive<T>(meterId: string, fn: () => Promise<T>): Promise<T> {
    if (this.#busy.has(meterId))
      throw new SupplyError('NOTICE_STATE', `meter ${meterId}: a cut or restore is being carried out now; try again in a minute`);
    this.#busy.add(meterId);
    try {
      return await fn();
    } finally {
      this.#busy.delete(meterId);
      if (!this.#running) this.wake();
    }
  }

  #notice(id: number): SupplyNotice {
    const n = this.opts.store.supply.notice(id);
    if (n === null) throw new SupplyError('UNKNOWN_NOTICE', `no supply notice ${id} on this gateway`);
    return n;
  }

  /** A line of the record and its message on meters/<id>/supply, in the caller's transaction. */
  #step(
    tx: Tx,
    n: SupplyNotice | null,
    step: SupplyStep,
    f: {
      operator?: string | null;
      reason?: string | null;
      requestId?: string | null;
      detail?: Record<string, unknown> | null;
      /** The time the step also wrote into the notice (tripSentAt, …): the line and the notice agree to the millisecond. */
      at?: number;
    },
    meterId = n?.meterId ?? '',
  ): void {
    const at = f.at ?? this.opts.clock.now();
    appendSupplyRecord(tx, {
      noticeId: n?.id ?? null,
      meterId,
      at,
      step,
      operator: f.operator ?? null,
      reason: f.reason ?? null,
      requestId: f.requestId ?? null,
      detail: f.detail ?? null,
    });
    enqueue(tx, {
      topic: `meters/${meterId}/supply`,
      class: 'credit',
      payload: {
        meter: meterId,
        step,
        at: new Date(at).toISOString(),
        ...(n !== null ? { noticeId: n.id, state: n.state, noticeReason: n.reason } : {}),
        ...(f.operator ? { operator: f.operator } : {}),
        ...(f.reason ? { reason: f.reason } : {}),
        ...(f.requestId ? { requestId: f.requestId } : {}),
        ...(n !== null && (step === 'notice' || step === 'approve')
          ? { earliestAt: new Date(n.earliestAt).toISOString(), plannedAt: new Date(this.plannedAt(n)).toISOString() }
          : {}),
        ...(f.detail ? { detail: f.detail } : {}),
      },
    });
  }

  #committed(): void {
    this.opts.onCommitted?.();
  }
}

/** Names compared as people write them: case and surrounding spaces do not make a second person. */
function samePerson(a: string, b: string): boolean {
  return a.trim().toLowerCase() === b.trim().toLowerCase();
}

/** A load cleared the arrears when the meter then holds credit and owes no overdraft (docs/reference/prepaid.md). */
export function arrearsCleared(after: { balance: number; overdraft: number }): boolean {
  return after.balance > 0 && after.overdraft === 0;
}

/** A notice as the station and the CLI see it. */
export function supplyNoticeJson(n: SupplyNotice, plannedAt?: number): Record<string, unknown> {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    noticeId: n.id,
    meter: n.meterId,
    reason: n.reason,
    state: n.state,
    requestedBy: n.requestedBy,
    note: n.note,
    createdAt: iso(n.createdAt),
    earliestAt: iso(n.earliestAt),
    ...(plannedAt !== undefined ? { plannedAt: iso(plannedAt) } : {}),
    approvedBy: n.approvedBy,
    approvedAt: iso(n.approvedAt),
    tripSentAt: iso(n.tripSentAt),
    tripConfirmedAt: iso(n.tripConfirmedAt),
    restoredBy: n.restoredBy,
    restoreReason: n.restoreReason,
    restoredAt: iso(n.restoredAt),
    cancelledBy: n.cancelledBy,
    cancelledAt: iso(n.cancelledAt),
    ...(n.lastError ? { lastError: n.lastError } : {}),
  };
}
