import { realTimers, wait, type Clock, type Timers } from '../clock.js';
import type { CreditLoad, CreditPort, LoadOutcome, Wallet } from '../devices/credit-port.js';
import type { SubsidyPort, SubsidyReading } from '../devices/subsidy-port.js';
import { MeterdError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { centiKwhFromNumber, fenFromNumber } from '../values/index.js';
import {
  enqueue,
  FINAL_STATES,
  isSubsidyLoad,
  openLedgerEntry,
  subsidyStateOf,
  type SubsidyRegisterState,
  transitionLedger,
  type LedgerChannel,
  type LedgerEntry,
  type Store,
} from '../store/index.js';
import type { Priority } from './poller.js';

export interface TopUpRequest {
  readonly requestId: string;
  readonly meterId: string;
  readonly channel: LedgerChannel;
  /** Exactly one: kWh with at most two decimals for energy meters, whole fen for money meters. */
  readonly energyKwh?: number;
  readonly amountFen?: number;
  /** The count the station expects the load to carry; refused when the meter says otherwise. */
  readonly purchaseCount?: number;
  readonly customerNo?: string;
  readonly operator?: string;
  /** Account opening (070101FF): the meter's first load, which also sets its customer number (docs/provisioning.md). */
  readonly opening?: boolean;
  /** ESAM meters: the station's identity-authentication data (ciphertext1, random1, diversifier, hex) for the first try. */
  readonly esam?: CreditLoad['esam'];
  /** `batch` for the rows of a batch (allowances): behind every single top-up on the bus. Default `credit`. */
  readonly priority?: 'credit' | 'batch';
}

/** What a caller (MQTT command, CLI) learns: the ledger entry as it now stands. */
export interface TopUpResult {
  readonly entry: LedgerEntry;
  /** False when this request id was seen before: nothing was written this time. */
  readonly fresh: boolean;
}

export type CreditErrorCode =
  /** The meter's profile has no credit method (or the method needs what this gateway lacks). */
  | 'METER_NOT_CREDITABLE'
  /** Energy given for a money wallet, or money for a kWh wallet. */
  | 'UNIT_MISMATCH'
  /** Not positive, or finer than 0.01 kWh / 1 fen. */
  | 'INVALID_AMOUNT'
  /** The point's meter is being replaced (docs/lifecycle.md): load again once the replacement has finished. */
  | 'METER_BEING_REPLACED';

/** A load refused before anything reached the meter. */
export class CreditError extends MeterdError<CreditErrorCode> {
  override readonly name = 'CreditError';
}

export interface CreditServiceOptions {
  store: Store;
  clock: Clock;
  /** The credit port of each meter that takes credit, by meter id. */
  ports: ReadonlyMap<string, CreditPort>;
  /** The free-energy registers of meters whose profile has them (modbus-subsidy): allowances load there instead. */
  subsidyPorts?: ReadonlyMap<string, SubsidyPort>;
  logger?: Logger;
  /** Wakes the uplink after a commit that enqueued a message. */
  onCommitted?: () => void;
  /** How many times a load that did not reach the meter is sent again before the entry fails. Default 2. */
  maxAttempts?: number;
  /** Energy used between the two reads that a balance check tolerates, in ledger units. Default 100 (1 yuan or 1 kWh). */
  balanceTolerance?: number;
  /** Paces the read-backs of `topUpSettled`; default Node's timers. */
  timers?: Timers;
  /** Why a new load onto this meter must wait (a replacement running on it), or undefined. */
  blocked?: (meterId: string, channel: LedgerChannel) => string | undefined;
}

/** How long `topUpSettled` keeps reading a meter that did not answer the read-back: 10 tries, 3 s apart. */
export interface SettlePolicy {
  readonly tries: number;
  readonly pauseMs: number;
}

const SETTLE_POLICY: SettlePolicy = { tries: 10, pauseMs: 3000 };

/** The bus priority of a load, kept with its request so a load settled after a restart keeps it. */
function priorityOf(entry: LedgerEntry): Priority {
  return entry.request.priority === 'batch' ? 'batch' : 'credit';
}

/**
 * Loads purchased credit onto meters exactly once. The ledger row (keyed by the station's request id) is committed
 * before anything touches the wire; the purchase count sent is the meter's own + 1, committed before the frame
 * leaves; the result is decided only by reading the meter's counter back, never by assuming. Entries left open by
 * a crash are settled the same way (`settleOpen`).
 */
export class CreditService {
  private readonly log: Logger;
  /** One load at a time per meter: two loads computing the same "meter + 1" would collide. */
  private readonly meterLocks = new Map<string, Promise<unknown>>();
  /** Loads running in this process, so a duplicate request waits for the first instead of writing again. */
  private readonly running = new Map<string, Promise<LedgerEntry>>();

  constructor(private readonly opts: CreditServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'credit' });
  }

  /** Load credit onto a meter once per request id; a repeated id returns the first result and never writes again. */
  async topUp(req: TopUpRequest, signal?: AbortSignal): Promise<TopUpResult> {
    // An allowance goes to the meter's free-energy registers when its profile names them; everything else is a purchase.
    const subsidy = req.channel === 'allowance' ? this.opts.subsidyPorts?.get(req.meterId) : undefined;
    const port = this.opts.ports.get(req.meterId);
    const unit = subsidy?.unit ?? port?.unit;
    if (!unit) throw new CreditError('METER_NOT_CREDITABLE', `meter ${req.meterId} has no credit method in its profile`);
    const amount = amountOf(req, unit);
    // A request seen before settles as always; only a new load waits for a replacement to finish.
    const blocked = this.opts.store.ledger.get(req.requestId) === null ? this.opts.blocked?.(req.meterId, req.channel) : undefined;
    if (blocked !== undefined) throw new CreditError('METER_BEING_REPLACED', blocked);
    const { entry, created } = this.opts.store.transaction(
      (tx) =>
        openLedgerEntry(tx, {
          requestId: req.requestId,
          channel: req.channel,
          meterId: req.meterId,
          unit,
          amount,
          operator: req.operator,
          customerNo: req.customerNo,
          request: { ...req, ...(subsidy ? { wallet: 'subsidy' } : {}) },
        }),
      { durable: true },
    );
    if (!created) {
      if (entry.meterId !== req.meterId || entry.amount !== amount) {
        this.log.warn(
          { requestId: req.requestId, meter: req.meterId },
          'request id reused with a different meter or amount; returning the first request',
        );
      }
      const inFlight = this.running.get(req.requestId);
      if (inFlight) return { entry: await inFlight, fresh: false };
      if (FINAL_STATES.includes(entry.state)) return { entry, fresh: false };
      return { entry: await this.track(entry, () => this.settleAny(entry, signal)), fresh: false };
    }
    if (subsidy) return { entry: await this.track(entry, () => this.loadSubsidy(entry, subsidy, signal)), fresh: true };
    return { entry: await this.track(entry, () => this.load(entry, port!, req.purchaseCount, signal)), fresh: true };
  }

  /**
   * A top-up whose caller waits for a definite answer: when the meter did not answer the read-back, read it again a
   * few times before returning, so a station gets `applied` or `rejected` whenever the meter comes back soon. An
   * entry still open afterwards stays open and is settled later (`settleOpen`); an abort ends the waiting, not the load.
   */
  async topUpSettled(req: TopUpRequest, signal?: AbortSignal, policy: SettlePolicy = SETTLE_POLICY): Promise<TopUpResult> {
    const first = await this.topUp(req, signal);
    let entry = first.entry;
    for (let i = 0; i < policy.tries && !FINAL_STATES.includes(entry.state) && !signal?.aborted; i++) {
      if (!(await wait(this.opts.timers ?? realTimers, policy.pauseMs, signal))) break;
      entry = (await this.settleOne(entry.requestId, signal)) ?? entry;
    }
    return { entry, fresh: first.fresh };
  }

  /**
   * Whether a meter answers a read of its wallet now, without recording anything: a batch asks before it opens a new
   * ledger entry for a meter that did not answer last time, so an offline meter costs one entry, not one per retry.
   */
  async reachable(meterId: string, priority: Priority, signal?: AbortSignal): Promise<boolean> {
    const port = this.opts.ports.get(meterId);
    const subsidy = this.opts.subsidyPorts?.get(meterId);
    if (!port && !subsidy) return false;
    try {
      if (port) await port.readWallet({ priority, signal });
      else await subsidy!.read({ priority, signal });
      return true;
    } catch {
      return false;
    }
  }

  /** True when a load with this request id was ever recorded. */
  known(requestId: string): boolean {
    return this.opts.store.ledger.get(requestId) !== null;
  }

  /** Try once more to settle one open entry by reading its meter (a command waiting for its final answer). */
  async settleOne(requestId: string, signal?: AbortSignal): Promise<LedgerEntry | null> {
    const inFlight = this.running.get(requestId);
    if (inFlight) return inFlight;
    const entry = this.opts.store.ledger.get(requestId);
    if (!entry || FINAL_STATES.includes(entry.state)) return entry;
    if (!this.hasPort(entry)) return entry;
    return this.track(entry, () => this.settleAny(entry, signal));
  }

  /** Settle every entry a crash or an unreachable meter left open, by reading the meters. */
  async settleOpen(signal?: AbortSignal): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    for (const entry of this.opts.store.ledger.open()) {
      if (this.running.has(entry.requestId)) continue;
      try {
        if (!this.hasPort(entry)) {
          out.push(
            this.move(entry, 'failed', {
              error: { code: 'METER_NOT_CREDITABLE', message: `meter ${entry.meterId} is no longer configured for credit` },
            }),
          );
          continue;
        }
        out.push(await this.track(entry, () => this.settleAny(entry, signal)));
      } catch (err) {
        this.log.warn(
          { meter: entry.meterId, requestId: entry.requestId, err: (err as Error).message },
          'could not settle yet; will try again',
        );
      }
    }
    return out;
  }

  /** The port an entry was opened for: the free-energy registers for a free-energy load, else the purchase wallet. */
  private hasPort(entry: LedgerEntry): boolean {
    return isSubsidyLoad(entry) ? this.opts.subsidyPorts?.has(entry.meterId) === true : this.opts.ports.has(entry.meterId);
  }

  /** Settle an open entry through the port it was opened for. */
  private settleAny(entry: LedgerEntry, signal?: AbortSignal): Promise<LedgerEntry> {
    if (isSubsidyLoad(entry)) {
      const port = this.opts.subsidyPorts?.get(entry.meterId);
      if (!port) throw new CreditError('METER_NOT_CREDITABLE', `meter ${entry.meterId} no longer has free-energy registers`);
      return subsidyStateOf(entry) === null ? this.loadSubsidy(entry, port, signal) : this.verifySubsidy(entry, port, undefined, signal);
    }
    const port = this.opts.ports.get(entry.meterId);
    if (!port) throw new CreditError('METER_NOT_CREDITABLE', `meter ${entry.meterId} has no credit method in its profile`);
    return this.settle(entry, port, signal);
  }

  /**
   * A free-energy load: read the registers and the import energy, commit each register's value and the absolute value
   * it will be set to, write, read back, decide (docs/allowances.md § Exactly once without a purchase counter). No purchase count: the
   * write is absolute, so a repeat adds nothing, and the committed values say whether it landed.
   */
  private async loadSubsidy(entry: LedgerEntry, port: SubsidyPort, signal?: AbortSignal): Promise<LedgerEntry> {
    let before: SubsidyReading;
    try {
      before = await port.read({ priority: priorityOf(entry), signal });
    } catch (err) {
      return this.move(entry, 'failed', {
        error: { code: 'METER_UNREACHABLE', message: `could not read the meter before loading: ${(err as Error).message}` },
      });
    }
    const parts = port.split(entry.amount);
    const registers = port.names.map((name, i) => ({
      name,
      before: before.registers[i]!,
      target: before.registers[i]! + parts[i]!,
      consumedBefore: before.consumed,
    }));
    const writing = this.move(entry, 'writing', {
      subsidy: { registers },
      attempts: entry.attempts + 1,
      detail: `free energy ${registers.map((r) => `${r.name} ${r.before} → ${r.target}`).join(', ')}`,
    });
    // A register whose share rounds to nothing (a tiny amount over many circuits) is not written at all.
    return this.writeSubsidy(
      writing,
      port,
      registers.flatMap((r, i) => (r.target > r.before ? [i] : [])),
      signal,
    );
  }

  private async writeSubsidy(
    entry: LedgerEntry,
    port: SubsidyPort,
    indices: readonly number[],
    signal?: AbortSignal,
  ): Promise<LedgerEntry> {
    const state = subsidyStateOf(entry)!;
    const outcome = await port.write(
      indices.map((index) => ({ index, value: state.registers[index]!.target })),
      { priority: priorityOf(entry), signal },
    );
    return this.verifySubsidy(this.move(entry, 'verifying', { detail: describe(outcome) }), port, outcome, signal);
  }

  /** Read the registers back and decide each one from its committed values: landed, not landed, or not decidable. */
  private async verifySubsidy(
    entry: LedgerEntry,
    port: SubsidyPort,
    outcome: LoadOutcome | undefined,
    signal?: AbortSignal,
  ): Promise<LedgerEntry> {
    const state = subsidyStateOf(entry)!;
    let now: SubsidyReading;
    try {
      now = await port.read({ priority: priorityOf(entry), signal });
    } catch (err) {
      this.log.warn(
        { meter: entry.meterId, requestId: entry.requestId },
        'free energy not verified yet: the meter did not answer the read-back',
      );
      return this.move(entry, 'verifying', {
        error: {
          code: 'UNSETTLED',
          message: `the write may have reached the meter; its registers could not be read (${(err as Error).message}); it will be settled by reading the meter`,
        },
      });
    }
    const registers: SubsidyRegisterState[] = state.registers.map((r, i) => ({ ...r, after: now.registers[i]! }));
    const verdicts = registers.map((r) => subsidyVerdict(r, now.consumed));
    const subsidy = { registers };
    const told = registers.map((r, i) => `${r.name} ${r.before} → ${r.after} (${verdicts[i]!.kind})`).join(', ');
    const odd = verdicts.find((v) => v.kind === 'undecided' || v.kind === 'mismatch');
    if (odd && 'code' in odd) {
      // Never written again on a guess: a person reads the meter and decides (the allowance row is parked).
      return this.move(entry, 'failed', { subsidy, error: { code: odd.code, message: odd.message }, detail: told });
    }
    const missing = verdicts.flatMap((v, i) => (v.kind === 'not-landed' ? [i] : []));
    if (missing.length === 0) return this.move(entry, 'applied', { subsidy, error: null, detail: `free energy written: ${told}` });
    const landedSome = missing.length < registers.length;
    if (!landedSome && outcome?.kind === 'refused')
      return this.move(entry, 'rejected', { subsidy, error: { code: outcome.code, message: outcome.message }, detail: told });
    if (entry.attempts >= (this.opts.maxAttempts ?? 2)) {
      return this.move(entry, 'failed', {
        subsidy,
        error: landedSome
          ? {
              code: 'SUBSIDY_PARTIAL',
              message: `free energy reached ${registers.length - missing.length} of ${registers.length} registers after ${entry.attempts} attempt(s): ${told}`,
            }
          : {
              code: outcome?.kind === 'unknown' ? outcome.code : 'NOT_LOADED',
              message: `the free-energy registers did not rise after ${entry.attempts} attempt(s); nothing was loaded`,
            },
        detail: told,
      });
    }
    // The registers that did not rise are written again from their value now, committed first, so a crash during this
    // write is decided against the new values; the ones that rose keep theirs.
    const again = registers.map((r, i) => {
      if (!missing.includes(i)) return r;
      const share = r.target - r.before;
      return { name: r.name, before: r.after!, target: r.after! + share, consumedBefore: now.consumed };
    });
    const writing = this.move(entry, 'writing', {
      subsidy: { registers: again },
      attempts: entry.attempts + 1,
      detail: `not risen: ${missing.map((i) => registers[i]!.name).join(', ')}; writing them again from their value now`,
    });
    return this.writeSubsidy(writing, port, missing, signal);
  }

  private track(entry: LedgerEntry, run: () => Promise<LedgerEntry>): Promise<LedgerEntry> {
    const p = this.withMeterLock(entry.meterId, run).finally(() => this.running.delete(entry.requestId));
    this.running.set(entry.requestId, p);
    return p;
  }

  private async withMeterLock<T>(meterId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.meterLocks.get(meterId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.meterLocks.set(
      meterId,
      next.catch(() => undefined),
    );
    return next;
  }

  /** A new load: read the meter, commit the count, write once, read back, decide. */
  private async load(entry: LedgerEntry, port: CreditPort, expectedCount: number | undefined, signal?: AbortSignal): Promise<LedgerEntry> {
    let before: Wallet;
    try {
      before = await port.readWallet({ priority: priorityOf(entry), signal });
    } catch (err) {
      // Nothing was sent: a definite failure, safe to retry with a new request.
      return this.move(entry, 'failed', {
        error: { code: 'METER_UNREACHABLE', message: `could not read the meter before loading: ${(err as Error).message}` },
      });
    }
    if (expectedCount !== undefined && expectedCount !== before.count + 1) {
      return this.move(entry, 'rejected', {
        before,
        error: {
          code: 'PURCHASE_COUNT_MISMATCH',
          message: `the station expects purchase count ${expectedCount}, the meter is at ${before.count} (so the next load is ${before.count + 1})`,
        },
      });
    }
    return this.write(
      this.move(entry, 'writing', {
        before,
        purchaseCount: before.count + 1,
        attempts: entry.attempts + 1,
        detail: `meter at count ${before.count}`,
      }),
      port,
      signal,
    );
  }

  /** Send the load (count already committed), then decide from the meter's own counter. */
  private async write(entry: LedgerEntry, port: CreditPort, signal?: AbortSignal): Promise<LedgerEntry> {
    const count = entry.purchaseCount!;
    const esam = esamOf(entry.request);
    const outcome = await port.load(
      {
        purchaseCount: count,
        amount: entry.amount,
        customerNo: entry.customerNo ?? undefined,
        ...(esam ? { esam } : {}),
        // Kept with the request, so an opening settled or sent again after a restart is still an opening.
        ...(entry.request.opening === true ? { opening: true } : {}),
      },
      { priority: priorityOf(entry), signal },
    );
    const verifying = this.move(entry, 'verifying', { detail: describe(outcome) });
    return this.verify(verifying, port, outcome, signal);
  }

  /** Read the meter back: the counter decides, the reply only explains. */
  private async verify(entry: LedgerEntry, port: CreditPort, outcome: LoadOutcome | undefined, signal?: AbortSignal): Promise<LedgerEntry> {
    let after: Wallet;
    try {
      after = await port.readWallet({ priority: priorityOf(entry), signal });
    } catch (err) {
      // The load may have landed: leave the entry open for settlement; never call it failed or applied by guessing.
      this.log.warn({ meter: entry.meterId, requestId: entry.requestId }, 'load not verified yet: the meter did not answer the read-back');
      return this.move(entry, 'verifying', {
        error: {
          code: 'UNSETTLED',
          message: `the load may have reached the meter; its counter could not be read (${(err as Error).message}); it will be settled by reading the meter`,
        },
      });
    }
    const count = entry.purchaseCount!;
    if (after.count === count) return this.applied(entry, after, outcome);
    if (after.count > count) {
      return this.move(entry, 'failed', {
        after,
        error: {
          code: 'COUNT_JUMPED',
          message: `the meter's purchase count is ${after.count}, beyond the ${count} this load carried: a load from outside this gateway; check the books`,
        },
      });
    }
    // The counter did not move: the load did not land.
    if (outcome?.kind === 'refused') {
      return this.move(entry, 'rejected', { after, error: { code: outcome.code, message: outcome.message } });
    }
    if (entry.attempts >= (this.opts.maxAttempts ?? 2)) {
      return this.move(entry, 'failed', {
        after,
        error: {
          code: outcome?.kind === 'unknown' ? outcome.code : 'NOT_LOADED',
          message: `the meter's counter stayed at ${after.count} after ${entry.attempts} attempt(s); nothing was loaded`,
        },
      });
    }
    // Same count again: if the first frame did land after all, the meter answers "repeat recharge" and adds nothing.
    return this.write(
      this.move(entry, 'writing', {
        after,
        attempts: entry.attempts + 1,
        detail: `counter still at ${after.count}; sending count ${count} again`,
      }),
      port,
      signal,
    );
  }

  /** After a crash: an entry is settled from the meter's counter, and resumed only if nothing was sent. */
  private async settle(entry: LedgerEntry, port: CreditPort, signal?: AbortSignal): Promise<LedgerEntry> {
    if (entry.state === 'received' || entry.purchaseCount === null) return this.load(entry, port, undefined, signal);
    return this.verify(entry, port, undefined, signal);
  }

  private applied(entry: LedgerEntry, after: Wallet, outcome: LoadOutcome | undefined): LedgerEntry {
    const before = entry.before;
    let detail =
      outcome?.kind === 'refused' && outcome.code === 'REPEAT_RECHARGE'
        ? 'the meter said repeat recharge: the first frame had landed'
        : 'counter advanced';
    if (before) {
      // The meter repays overdraft first (docs/reference/prepaid.md § Balance and overdraft); energy used between the reads may lower it a little.
      const repaid = Math.min(before.overdraft, entry.amount);
      const expected = before.balance + entry.amount - repaid;
      const tolerance = this.opts.balanceTolerance ?? 100;
      if (after.balance > expected || after.balance < expected - tolerance) {
        detail += `; balance ${after.balance} where ${expected} was expected (tolerance ${tolerance})`;
        this.log.warn(
          { meter: entry.meterId, requestId: entry.requestId, expected, actual: after.balance },
          'load applied but the balance is not what was expected',
        );
      }
    }
    return this.move(entry, 'applied', { after, error: null, detail });
  }

  /** Commit a transition and, for a final state, the credit result message for the station, durably. */
  private move(entry: LedgerEntry, state: LedgerEntry['state'], t: Parameters<typeof transitionLedger>[3]): LedgerEntry {
    const next = this.opts.store.transaction(
      (tx) => {
        const e = transitionLedger(tx, entry.id, state, t);
        if (FINAL_STATES.includes(state)) {
          enqueue(tx, { topic: `meters/${e.meterId}/credit`, class: 'credit', payload: creditMessage(e, this.opts.clock.now()) });
        }
        return e;
      },
      { durable: true },
    );
    this.log.info(
      { meter: entry.meterId, requestId: entry.requestId, state, count: next.purchaseCount, code: next.error?.code },
      `credit ${state}`,
    );
    if (FINAL_STATES.includes(state)) this.opts.onCommitted?.();
    return next;
  }
}

type SubsidyVerdict =
  | { readonly kind: 'landed' }
  | { readonly kind: 'not-landed' }
  | { readonly kind: 'undecided' | 'mismatch'; readonly code: string; readonly message: string };

/**
 * Whether an absolute write of a free-energy register landed, from its committed values and what the meter says now.
 * Between the read and now the register can only have gone down, and by at most the energy the meter counted
 * (`used`). Not landed: it is at or below its value before. Landed: it is within `used` below the value written.
 * The two cannot overlap while `used` is less than the share; when it is not, nobody can tell, and the entry waits
 * for a person. A register above the value written, or risen but not to it, had another writer.
 */
export function subsidyVerdict(r: SubsidyRegisterState, consumedNow: number): SubsidyVerdict {
  const after = r.after!;
  const used = consumedNow - r.consumedBefore;
  const share = r.target - r.before;
  if (used < 0)
    return {
      kind: 'mismatch',
      code: 'SUBSIDY_MISMATCH',
      message: `the meter's import energy went back (${r.consumedBefore} → ${consumedNow}): replaced or reset; ${r.name} is ${after}, written ${r.target}`,
    };
  if (after > r.target)
    return {
      kind: 'mismatch',
      code: 'SUBSIDY_MISMATCH',
      message: `${r.name} is ${after}, above the ${r.target} written: another system writes this register`,
    };
  if (share === 0) return { kind: 'landed' };
  if (after > r.before && after >= r.target - used) return { kind: 'landed' };
  if (after <= r.before) {
    if (used < share) return { kind: 'not-landed' };
    return {
      kind: 'undecided',
      code: 'SUBSIDY_UNDECIDED',
      message: `${r.name} is ${after}, not above its ${r.before} before; the meter counted ${used} used since, as much as the ${share} written, so the write may have landed and been used: read the meter and decide`,
    };
  }
  return {
    kind: 'mismatch',
    code: 'SUBSIDY_MISMATCH',
    message: `${r.name} rose from ${r.before} to ${after}, not to the ${r.target} written (at most ${used} used since): the meter changed the value, or another system wrote it`,
  };
}

function amountOf(req: TopUpRequest, unit: 'money' | 'energy'): number {
  // The doors (MQTT schema, CLI, card counter) parse with the same rules; this is the last line for any caller.
  if (unit === 'energy') {
    if (req.energyKwh === undefined)
      throw new CreditError('UNIT_MISMATCH', `meter ${req.meterId} has a kWh wallet: give energyKwh, not amountFen`);
    const hundredths = centiKwhFromNumber(req.energyKwh);
    if (!hundredths.ok) throw new CreditError('INVALID_AMOUNT', `energyKwh ${req.energyKwh} ${hundredths.reason}`);
    return hundredths.value;
  }
  if (req.amountFen === undefined)
    throw new CreditError('UNIT_MISMATCH', `meter ${req.meterId} has a money wallet: give amountFen, not energyKwh`);
  const fen = fenFromNumber(req.amountFen);
  if (!fen.ok) throw new CreditError('INVALID_AMOUNT', `amountFen ${req.amountFen} ${fen.reason}`);
  return fen.value;
}

/** The station's identity-authentication data kept with the request, when it has the right shape. */
function esamOf(request: Readonly<Record<string, unknown>>): CreditLoad['esam'] {
  const e = request.esam as Record<string, unknown> | undefined;
  if (!e || typeof e !== 'object') return undefined;
  const { ciphertext, random, diversifier } = e;
  if (typeof ciphertext !== 'string' || typeof random !== 'string') return undefined;
  return typeof diversifier === 'string' ? { ciphertext, random, diversifier } : { ciphertext, random };
}

function describe(o: LoadOutcome): string {
  return o.kind === 'accepted' ? 'meter acknowledged the load' : `${o.kind}: ${o.code}: ${o.message}`;
}

/** The credit result the station receives (meters/<id>/credit), in display units beside the exact integers. */
export function creditMessage(e: LedgerEntry, nowMs: number): Record<string, unknown> {
  const unit = e.unit === 'money' ? 'CNY' : 'kWh';
  // A free-energy load has no purchase count or wallet: the station sees each register instead.
  const free = subsidyStateOf(e);
  return {
    requestId: e.requestId,
    meter: e.meterId,
    channel: e.channel,
    state: e.state,
    amount: { value: e.amount / 100, unit, units: e.amount },
    purchaseCount: e.purchaseCount,
    before: e.before && { count: e.before.count, balance: e.before.balance / 100, overdraft: e.before.overdraft / 100 },
    after: e.after && { count: e.after.count, balance: e.after.balance / 100, overdraft: e.after.overdraft / 100 },
    ...(free
      ? {
          freeEnergy: free.registers.map((r) => ({
            register: r.name,
            before: r.before / 100,
            written: r.target / 100,
            after: r.after === undefined ? null : r.after / 100,
          })),
        }
      : {}),
    ...(e.error ? { error: e.error } : {}),
    ts: new Date(nowMs).toISOString(),
  };
}
