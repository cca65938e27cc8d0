import { wait, realTimers, type Clock, type Timers } from '../../clock.js';
import { MeterdError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import type { DeviceProfile } from '../../profiles/types.js';
import { meterAddressKind } from '../../values/index.js';
import {
  advanceReplacement,
  FINAL_STATES,
  installAsset,
  linkSuccessor,
  openReplacement,
  recordOpening,
  removeAsset,
  saveCustomer,
  StoreError,
  type AssetReading,
  type LedgerEntry,
  type MeterAsset,
  type ReplacementRecord,
  type Store,
  type Tx,
} from '../../store/index.js';
import { CreditError, type CreditService } from '../credit.js';
import { openingKey } from '../provisioning/adopt.js';
import { assetView, enqueueAssetMessage } from './register.js';

// Replacing a faulty meter (拆旧换新, docs/lifecycle.md § Replacing a faulty meter): one job per request, its steps
// committed in the store, so a crash at any step resumes where it stood and a money step never runs twice.

/** The request as the doors parse it (the MQTT schema, the CLI), balances in yuan or kWh as the display shows them. */
export interface ReplaceRequest {
  readonly requestId: string;
  readonly meter: string;
  /** Where the new meter answers on the point's bus, as the register writes it: a DL/T 645 address, or `unit N` (Modbus). */
  readonly newAddress: string;
  readonly newProfile?: string;
  readonly newAssetNo?: string;
  readonly operator: string;
  readonly reason: string;
  /** Balance and purchase count are needed when the meter keeps a wallet; a meter without one shows only its energy. */
  readonly final?: {
    readonly importKwh: number;
    readonly exportKwh?: number;
    readonly balance?: number;
    readonly overdraft?: number;
    readonly purchaseCount?: number;
  };
}

export type ReplacementErrorCode =
  | 'UNKNOWN_METER'
  /** The old meter does not answer and the request carries no `final` read off its display. */
  | 'FINAL_READING_NEEDED'
  /** The new meter's profile keeps another kind of wallet (kWh vs money) than the point's. */
  | 'WALLET_KIND_MISMATCH'
  | 'UNKNOWN_PROFILE'
  /** `newAddress` is installed at another point (or is the point's own meter). */
  | 'ADDRESS_IN_USE'
  /** Nothing answers at `newAddress`. */
  | 'NEW_METER_SILENT'
  /** An allowance batch is loading this point now: wait for the row to end. */
  | 'ALLOWANCE_RUNNING'
  /** The new meter's account could not be opened (the meter refused it, the encryption machine did not answer). */
  | 'ACCOUNT_OPEN_FAILED'
  /** Another replacement of this point has not finished. */
  | 'REPLACEMENT_RUNNING'
  /** A load of the old meter could not be settled by reading it: its outcome must be known before credit moves. */
  | 'LOADS_PENDING'
  /** `newAddress` is not of the bus's kind: a DL/T 645 point takes a 12-digit address, a Modbus point `unit N`. */
  | 'ADDRESS_INVALID'
  /** The new meter's profile speaks another protocol than the point's bus (a DL/T 645 meter on a Modbus line). */
  | 'PROTOCOL_MISMATCH'
  /** The remaining credit could not be loaded onto the new meter (the meter refused it): the amount is owed. */
  | 'TRANSFER_FAILED';

export class ReplacementError extends MeterdError<ReplacementErrorCode> {
  override readonly name = 'ReplacementError';
}

/** A point as the job sees it: its id, bus, profile, customer number and verification period. */
export interface ReplaceablePoint {
  readonly id: string;
  readonly busId: string;
  readonly protocol: 'dlt645' | 'modbus';
  readonly customerNo?: string;
  readonly verificationYears: number;
}

/** The wire side, which the composition root provides over the point's bus (src/daemon/replacement.ts). */
export interface PointMeters {
  /** The profile the point is polled with now. */
  profileOf(pointId: string): DeviceProfile;
  /** A profile by id (the new meter's model), or undefined. */
  profile(id: string): DeviceProfile | undefined;
  /**
   * Read a meter's energy registers and wallet: the point's own meter (`address` undefined) or another on its bus (a
   * DL/T 645 address or `unit N`). Balance, overdraft and count are null when the profile keeps no wallet. Throws
   * when it does not answer.
   */
  read(pointId: string, address: string | undefined, profile: DeviceProfile, signal: AbortSignal): Promise<AssetReading>;
  /** Poll, load and switch the point at this address with this profile from now on. */
  rebind(pointId: string, address: string, profile: DeviceProfile): void;
}

/** How the job opens the new meter's account; the composition root provides it over account-open's code path. */
export interface NewMeterAccounts {
  /** The account method of this profile that the gateway drives, or undefined: nothing to open. */
  methodOf(profile: DeviceProfile): 'dlt645-customer-number' | 'dlt645-esam-opening' | undefined;
  /**
   * What the meter at `address` says of its account now: the customer number it holds (12 digits; null when its profile
   * names no such register) and its purchase count (null without a wallet). Throws when it does not answer.
   */
  inspect(pointId: string, address: string, profile: DeviceProfile, signal: AbortSignal): Promise<HeldAccount>;
  /** Open it for this customer without money (account-open's code path), verified on the meter. Throws when it did not open. */
  open(pointId: string, address: string, profile: DeviceProfile, customerNo: string, signal: AbortSignal): Promise<HeldAccount>;
}

/** A meter's account as read off it. */
export interface HeldAccount {
  readonly customerNo: string | null;
  readonly purchaseCount: number | null;
}

export interface ReplacementOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly timers?: Timers;
  readonly logger?: Logger;
  readonly credit: CreditService;
  readonly points: ReadonlyMap<string, ReplaceablePoint>;
  readonly meters: PointMeters;
  /** True while an allowance row of this point is being loaded. */
  readonly allowanceBusy: (pointId: string) => boolean;
  /** In the swap's transaction: the detectors forget the old meter's registers, pending allowance rows follow the point. */
  readonly onSwap?: (tx: Tx, pointId: string, oldAsset: MeterAsset, newAsset: MeterAsset) => void;
  /** After the swap committed (in memory: the allowance service's identity of the point). */
  readonly afterSwap?: (pointId: string, newAsset: MeterAsset) => void;
  readonly onCommitted?: () => void;
  /**
   * Opens the new meter's account (开户) before the swap, the way account-open opens one
   * (docs/lifecycle.md § What carries on across the swap): ESAM meters through the station's encryption machine,
   * plain meters whose profile has an account method by writing the point's customer number. Without it (or for a
   * profile without an account method) nothing is opened: plain meters carry the customer number with every load.
   */
  readonly accounts?: NewMeterAccounts;
  /**
   * For crash tests only (`meterd run` with METERD_TEST_HOLD_REPLACEMENT): after committing this step the job waits
   * until the gateway stops, so a test can kill the process exactly between two steps. Besides the steps:
   * `account-sending` (the opening recorded as about to be sent), `account-unrecorded` (the meter opened the account,
   * the job has not recorded it yet) and `account-opened` (recorded).
   */
  readonly holdAfter?: string;
}

/** The steps in order; each is committed with what it learned before the next begins. */
export const REPLACEMENT_STEPS = ['received', 'checked', 'settled', 'final', 'initial', 'bound', 'transferred', 'done'] as const;
export type ReplacementStep = (typeof REPLACEMENT_STEPS)[number];

interface Facts {
  newProfile?: string;
  final?: AssetReading;
  finalSource?: 'read' | 'manual';
  initial?: AssetReading;
  oldAsset?: number;
  newAsset?: number;
  transfer?: { requestId: string; amount: number; state: string; purchaseCount: number | null } | null;
  owed?: number;
  unit?: 'money' | 'energy';
  /**
   * The new meter's account: `sending` is committed before the opening goes to the meter (with the purchase count it
   * stood at), `opened` once the meter showed it, `found` when the meter already held the customer's account.
   */
  account?: AccountFacts;
}

interface AccountFacts {
  method: 'dlt645-customer-number' | 'dlt645-esam-opening';
  customerNo: string;
  state: 'sending' | 'opened' | 'found';
  /** The purchase count before the opening (ESAM: the opening takes count + 1). */
  before: number | null;
  /** The purchase count after it. */
  after?: number | null;
}

/** The job's outcome: the result for the station, or a refusal (nothing changed) or a failure with its code. */
export type ReplacementOutcome =
  | { readonly status: 'done'; readonly result: Record<string, unknown> }
  | { readonly status: 'rejected' | 'failed'; readonly code: string; readonly message: string; readonly result?: Record<string, unknown> };

/**
 * The meter-replace job. `run` is called once per request, and again after a restart for a job that had not ended:
 * it reads where the job stands from the store and goes on from there.
 */
export class MeterReplacement {
  private readonly log: Logger;
  /** Points with a job running in this process: their loads (other than the transfer) are refused meanwhile. */
  private readonly replacing = new Set<string>();

  constructor(private readonly opts: ReplacementOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'replacement' });
  }

  /** Why a load onto this point must wait, while its meter is being replaced; undefined when it may go ahead. */
  blocksLoad(pointId: string, channel: string): string | undefined {
    if (channel === 'transfer') return undefined;
    if (!this.replacing.has(pointId) && this.opts.store.replacements.runningOn(pointId) === null) return undefined;
    return `meter ${pointId} is being replaced: load again once the replacement has finished (meterd meter history --meter ${pointId})`;
  }

  async run(req: ReplaceRequest, signal: AbortSignal): Promise<ReplacementOutcome> {
    const point = this.opts.points.get(req.meter);
    if (!point) return refused('UNKNOWN_METER', `no meter ${req.meter} in the config`);
    let job: ReplacementRecord;
    try {
      job = this.opts.store.transaction((tx) => openReplacement(tx, req.requestId, point.id).record, { durable: true });
    } catch (err) {
      if (err instanceof StoreError && err.code === 'STORE_CONFLICT') return refused('REPLACEMENT_RUNNING', err.message);
      throw err;
    }
    if (job.step === 'done') return { status: 'done', result: { ...(job.result ?? {}) } };
    if (job.step === 'refused') return refused(job.errorCode ?? 'REFUSED', String(job.result?.message ?? 'refused'));
    this.replacing.add(point.id);
    try {
      return await this.steps(point, req, job, signal);
    } catch (err) {
      if (err instanceof ReplacementError) {
        // Refusals happen before the swap: nothing changed; the point may be replaced again with another request.
        this.commit(req.requestId, 'refused', {}, { result: { message: err.message }, errorCode: err.code });
        this.log.warn({ meter: point.id, requestId: req.requestId, code: err.code }, err.message);
        return refused(err.code, err.message);
      }
      throw err;
    } finally {
      this.replacing.delete(point.id);
    }
  }

  private async steps(
    point: ReplaceablePoint,
    req: ReplaceRequest,
    job: ReplacementRecord,
    signal: AbortSignal,
  ): Promise<ReplacementOutcome> {
    const store = this.opts.store;
    let facts = job.facts as Facts;
    let step = job.step as ReplacementStep;
    const next = async (to: ReplacementStep, learned: Facts) => {
      facts = { ...facts, ...learned };
      this.commit(req.requestId, to, learned);
      step = to;
      this.log.info({ meter: point.id, requestId: req.requestId, step: to }, `replacement step ${to} committed`);
      await this.hold(point, req, to, signal);
    };
    const oldProfile = this.opts.meters.profileOf(point.id);
    const newProfile = (facts.newProfile ? this.opts.meters.profile(facts.newProfile) : undefined) ?? this.newProfileOf(req, oldProfile);

    if (step === 'received') {
      // A Modbus meter is reached by its unit id on the same bus (`unit N`, as the register writes it), a DL/T 645 one
      // by its 12-digit address; the new meter is read, bound and loaded through the same drivers either way.
      if (meterAddressKind(req.newAddress) !== point.protocol)
        throw new ReplacementError(
          'ADDRESS_INVALID',
          point.protocol === 'modbus'
            ? `${point.id} is a Modbus meter: give the new meter's unit id as newAddress, e.g. "unit 7", not ${req.newAddress}`
            : `${point.id} is a DL/T 645 meter: give the new meter's 12-digit address as newAddress, not ${req.newAddress}`,
        );
      const current = store.register.active(point.id);
      if (current?.address === req.newAddress)
        throw new ReplacementError(
          'ADDRESS_IN_USE',
          `${req.newAddress} is the meter installed at ${point.id} now: give the new meter's address`,
        );
      const holder = store.register.atAddress(point.busId, req.newAddress);
      if (holder)
        throw new ReplacementError(
          'ADDRESS_IN_USE',
          `${req.newAddress} is installed at point ${holder.pointId}; a meter serves one point at a time`,
        );
      if (this.opts.allowanceBusy(point.id))
        throw new ReplacementError(
          'ALLOWANCE_RUNNING',
          `an allowance is being loaded onto ${point.id} right now: send the replacement again in a minute`,
        );
      try {
        await this.opts.meters.read(point.id, req.newAddress, newProfile, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        throw new ReplacementError(
          'NEW_METER_SILENT',
          `no meter answers at ${req.newAddress} on bus ${point.busId} (${(err as Error).message}): check its wiring and address; nothing was changed`,
        );
      }
      await next('checked', { newProfile: newProfile.id, unit: oldProfile.credit?.unit });
    }

    if (step === 'checked') {
      // Loads still open for the old meter are settled by reading it, never moved silently.
      for (const e of store.ledger.open().filter((e) => e.meterId === point.id)) await this.opts.credit.settleOne(e.requestId, signal);
      const open = store.ledger.open().filter((e) => e.meterId === point.id);
      if (open.length > 0)
        throw new ReplacementError(
          'LOADS_PENDING',
          `load ${open.map((e) => e.requestId).join(', ')} of ${point.id} is not settled (the meter did not answer its read-back): its outcome must be known before the credit moves; try again when the old meter answers, or settle it by hand`,
        );
      await next('settled', {});
    }

    if (step === 'settled') {
      let final: AssetReading;
      let finalSource: 'read' | 'manual' = 'read';
      try {
        final = await this.opts.meters.read(point.id, undefined, oldProfile, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        const wallet = oldProfile.credit !== undefined;
        if (!req.final || (wallet && (req.final.balance === undefined || req.final.purchaseCount === undefined)))
          throw new ReplacementError(
            'FINAL_READING_NEEDED',
            wallet
              ? `the old meter of ${point.id} does not answer (${(err as Error).message}): read its forward energy, balance and purchase count off its display and send them as final`
              : `the old meter of ${point.id} does not answer (${(err as Error).message}): read its forward energy off its display and send it as final`,
          );
        final = manualReading(req.final, wallet);
        finalSource = 'manual';
      }
      await next('final', { final, finalSource });
    }

    if (step === 'final') {
      // The account first, so that the initial reading (and the new meter's books) start with it open.
      const account = await this.openAccount(point, req, newProfile, facts.account, signal);
      if (account) facts = { ...facts, account };
      let initial: AssetReading;
      try {
        initial = await this.opts.meters.read(point.id, req.newAddress, newProfile, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        throw new ReplacementError(
          'NEW_METER_SILENT',
          `the new meter at ${req.newAddress} stopped answering (${(err as Error).message}); nothing was changed`,
        );
      }
      await next('initial', { initial });
    }

    if (step === 'initial') {
      const now = this.opts.clock.now();
      const bound = store.transaction(
        (tx) => {
          const old = store.register.active(point.id);
          const removed = old
            ? removeAsset(tx, old.id, {
                removedAt: now,
                final: facts.final ?? null,
                finalSource: facts.finalSource ?? null,
                reason: req.reason,
                operator: req.operator,
                requestId: req.requestId,
              })
            : undefined;
          const installed = installAsset(tx, {
            pointId: point.id,
            busId: point.busId,
            address: req.newAddress,
            ...(req.newAssetNo !== undefined ? { assetNo: req.newAssetNo } : {}),
            profile: newProfile.id,
            installedAt: now,
            ...(facts.initial ? { initial: facts.initial } : {}),
            initialSource: 'read',
            operator: req.operator,
            requestId: req.requestId,
          });
          if (removed) linkSuccessor(tx, removed.id, installed.id);
          // The books of the new meter start at its own counter (an opening entry, as meterd adopt records one).
          if (newProfile.credit && facts.initial?.purchaseCount !== null && facts.initial?.purchaseCount !== undefined)
            recordOpening(tx, {
              meterId: booksKey(point, req.newAddress),
              unit: newProfile.credit.unit,
              wallet: { count: facts.initial.purchaseCount, balance: facts.initial.balance ?? 0, overdraft: facts.initial.overdraft ?? 0 },
              lastAmount: 0,
              operator: req.operator,
              ...(point.customerNo !== undefined ? { customerNo: point.customerNo } : {}),
              source: 'remote-read',
            });
          if (removed) {
            // The customer's meter in the archive follows the point: cards are (re)written for the new meter number.
            const customer = store.archive.byMeter(removed.address);
            if (customer)
              saveCustomer(tx, customer.customerNo, { meterAddress: req.newAddress }, { operator: req.operator, action: 'meter-replaced' });
            this.opts.onSwap?.(tx, point.id, removed, installed);
          }
          enqueueAssetMessage(tx, installed, point.verificationYears, now, removed && store.register.byId(removed.id)!);
          advanceReplacement(tx, req.requestId, 'bound', { oldAsset: removed?.id, newAsset: installed.id });
          return { installed, removedId: removed?.id };
        },
        { durable: true },
      );
      this.opts.meters.rebind(point.id, req.newAddress, newProfile);
      this.opts.afterSwap?.(point.id, bound.installed);
      this.opts.onCommitted?.();
      facts = { ...facts, oldAsset: bound.removedId, newAsset: bound.installed.id };
      step = 'bound';
      this.log.info(
        { meter: point.id, requestId: req.requestId, address: req.newAddress },
        'replacement step bound committed: the point polls the new meter',
      );
      await this.hold(point, req, 'bound', signal);
    }

    if (step === 'bound') {
      const final = facts.final;
      const remaining = final && final.balance !== null ? final.balance - (final.overdraft ?? 0) : 0;
      const owed = final && final.balance !== null && remaining < 0 ? -remaining : 0;
      let transfer: Facts['transfer'] = null;
      if (remaining > 0 && facts.unit) {
        const entry = await this.transfer(point, req, remaining, facts.unit, signal);
        transfer = { requestId: entry.requestId, amount: entry.amount, state: entry.state, purchaseCount: entry.purchaseCount };
        if (entry.state === 'applied' && entry.after) {
          // Card books name a meter by its number: they stand at the new meter's count after the transfer, so the next
          // card sale carries count + 1 (recorded again after a crash: an opening at the same count is the same entry).
          const after = entry.after;
          store.transaction(
            (tx) =>
              recordOpening(tx, {
                meterId: booksKey(point, req.newAddress),
                unit: facts.unit!,
                wallet: after,
                lastAmount: entry.amount,
                operator: req.operator,
                ...(point.customerNo !== undefined ? { customerNo: point.customerNo } : {}),
                source: 'transfer',
              }),
            { durable: true },
          );
        }
        if (entry.state !== 'applied') {
          const message = `the new meter did not take the ${amountText(remaining, facts.unit)} moved from the old one (${entry.error?.code ?? entry.state}: ${entry.error?.message ?? ''}); the amount is owed to the customer: load it by hand once the cause is fixed`;
          await next('transferred', { transfer, owed: remaining });
          const result = this.result(point, req, { ...facts, transfer, owed: remaining });
          this.commit(req.requestId, 'done', {}, { result, errorCode: 'TRANSFER_FAILED' });
          return { status: 'failed', code: 'TRANSFER_FAILED', message, result };
        }
      }
      await next('transferred', { transfer, owed });
    }

    if (step === 'transferred') {
      const result = this.result(point, req, facts);
      this.commit(req.requestId, 'done', {}, { result });
      this.log.info({ meter: point.id, requestId: req.requestId, address: req.newAddress }, 'meter replaced');
      return { status: 'done', result };
    }
    // A job found at `done` or `refused` was answered before it got here.
    const ended = store.replacements.get(req.requestId);
    if (ended?.errorCode)
      return {
        status: 'failed',
        code: ended.errorCode,
        message: 'the replacement ended with an error',
        result: { ...(ended.result ?? {}) },
      };
    return { status: 'done', result: { ...(ended?.result ?? {}) } };
  }

  /**
   * The new meter's account, opened once for the point's customer (step 3 of the issue), its progress committed in the
   * job's facts. After a crash with the opening `sending` its outcome is read off the meter, never sent blind: an ESAM
   * meter whose purchase count went past the count recorded before (nothing else loads a meter not yet bound), or a
   * meter holding the customer's number, is open; otherwise the opening is sent again (an ESAM meter refuses a second
   * opening anyway, and a customer number written twice is the same number). Undefined: nothing to open.
   */
  private async openAccount(
    point: ReplaceablePoint,
    req: ReplaceRequest,
    profile: DeviceProfile,
    known: AccountFacts | undefined,
    signal: AbortSignal,
  ): Promise<AccountFacts | undefined> {
    const accounts = this.opts.accounts;
    const method = accounts?.methodOf(profile);
    if (known && known.state !== 'sending') return known;
    if (!accounts || !method) return undefined;
    const customerNo = known?.customerNo ?? point.customerNo;
    if (customerNo === undefined) {
      this.log.warn(
        { meter: point.id, address: req.newAddress },
        'the point has no customer number in the config: the new meter account is not opened; the transfer may be refused',
      );
      return undefined;
    }
    const fail = (err: unknown): never => {
      if (signal.aborted) throw err;
      throw new ReplacementError(
        'ACCOUNT_OPEN_FAILED',
        `the account of the new meter at ${req.newAddress} could not be opened for customer ${customerNo} (${(err as Error).message}); the point still has its old meter: fix the cause and send the replacement again`,
      );
    };
    let held: HeldAccount;
    try {
      held = await accounts.inspect(point.id, req.newAddress, profile, signal);
    } catch (err) {
      return fail(err);
    }
    const holds = held.customerNo === customerNo.padStart(12, '0');
    const counted =
      known?.before !== null && known?.before !== undefined && held.purchaseCount !== null && held.purchaseCount > known.before;
    if (holds || counted) {
      const account: AccountFacts = {
        method,
        customerNo,
        state: known ? 'opened' : 'found',
        before: known?.before ?? held.purchaseCount,
        after: held.purchaseCount,
      };
      this.commit(req.requestId, 'final', { account });
      this.log.info(
        { meter: point.id, address: req.newAddress, customer: customerNo, state: account.state },
        known ? 'the new meter shows the account opened before the restart' : 'the new meter holds the account already',
      );
      await this.hold(point, req, 'account-opened', signal);
      return account;
    }
    const sending: AccountFacts = { method, customerNo, state: 'sending', before: known?.before ?? held.purchaseCount };
    this.commit(req.requestId, 'final', { account: sending });
    await this.hold(point, req, 'account-sending', signal);
    let after: HeldAccount;
    try {
      after = await accounts.open(point.id, req.newAddress, profile, customerNo, signal);
    } catch (err) {
      return fail(err);
    }
    await this.hold(point, req, 'account-unrecorded', signal);
    const account: AccountFacts = { ...sending, state: 'opened', after: after.purchaseCount };
    this.commit(req.requestId, 'final', { account });
    this.log.info({ meter: point.id, address: req.newAddress, customer: customerNo, method }, 'the new meter account opened');
    await this.hold(point, req, 'account-opened', signal);
    return account;
  }

  /** Crash tests: wait here until the gateway stops when told to hold at this point; a stopping gateway ends the run. */
  private async hold(point: ReplaceablePoint, req: ReplaceRequest, at: string, signal: AbortSignal): Promise<void> {
    if (this.opts.holdAfter === at) {
      this.log.warn({ meter: point.id, requestId: req.requestId, step: at }, 'replacement held after this step (crash test)');
      await wait(this.opts.timers ?? realTimers, 2 ** 31 - 1, signal);
    }
    if (signal.aborted) throw new Error('the gateway is stopping; the replacement resumes at the next start');
  }

  /** The remaining credit onto the new meter, once: a ledger entry of channel `transfer`, proved by the purchase counter. */
  private async transfer(
    point: ReplaceablePoint,
    req: ReplaceRequest,
    amount: number,
    unit: 'money' | 'energy',
    signal: AbortSignal,
  ): Promise<LedgerEntry> {
    const requestId = `${req.requestId}:transfer`;
    for (;;) {
      let entry: LedgerEntry;
      try {
        ({ entry } = await this.opts.credit.topUpSettled(
          {
            requestId,
            meterId: point.id,
            channel: 'transfer',
            operator: req.operator,
            ...(point.customerNo !== undefined ? { customerNo: point.customerNo } : {}),
            ...(unit === 'money' ? { amountFen: amount } : { energyKwh: amount / 100 }),
          },
          signal,
        ));
      } catch (err) {
        if (err instanceof CreditError) throw new ReplacementError('TRANSFER_FAILED', err.message);
        throw err;
      }
      if (FINAL_STATES.includes(entry.state)) return entry;
      // Still open (the new meter did not answer the read-back): the counter will tell; never a second write.
      this.log.warn({ meter: point.id, requestId }, 'the transfer is not settled yet: reading the new meter again');
      if (!(await wait(this.opts.timers ?? realTimers, 5000, signal)))
        throw new Error('the gateway is stopping; the transfer settles at the next start');
    }
  }

  private result(point: ReplaceablePoint, req: ReplaceRequest, facts: Facts): Record<string, unknown> {
    const store = this.opts.store;
    const oldAsset = facts.oldAsset !== undefined ? store.register.byId(facts.oldAsset) : null;
    const newAsset = facts.newAsset !== undefined ? store.register.byId(facts.newAsset) : null;
    const unit = facts.unit;
    const display = (v: number | null | undefined) => (v === null || v === undefined ? null : v / 100);
    return {
      meter: point.id,
      old: oldAsset && assetView(oldAsset),
      new: newAsset && assetView(newAsset, point.verificationYears),
      final: facts.final && {
        ...facts.final,
        balance: display(facts.final.balance),
        overdraft: display(facts.final.overdraft),
        source: facts.finalSource,
      },
      initial: facts.initial && { ...facts.initial, balance: display(facts.initial.balance), overdraft: display(facts.initial.overdraft) },
      moved: {
        amount: facts.transfer && facts.transfer.state === 'applied' ? facts.transfer.amount / 100 : 0,
        // A meter without a wallet (an energy meter, one with free-energy registers only) has no credit to move.
        unit: unit === undefined ? null : unit === 'energy' ? 'kWh' : 'CNY',
        requestId: facts.transfer?.requestId ?? null,
        purchaseCount: facts.transfer?.purchaseCount ?? null,
        ...(facts.transfer ? {} : { nothing: unit === undefined ? 'no-wallet' : (facts.owed ?? 0) > 0 ? 'overdraft' : 'nothing-left' }),
      },
      owed: display(facts.owed ?? 0),
      account: facts.account
        ? {
            method: facts.account.method,
            customerNo: facts.account.customerNo,
            opened: facts.account.state === 'opened',
            purchaseCount: facts.account.after ?? null,
          }
        : null,
      operator: req.operator,
      reason: req.reason,
    };
  }

  private newProfileOf(req: ReplaceRequest, oldProfile: DeviceProfile): DeviceProfile {
    if (req.newProfile === undefined || req.newProfile === oldProfile.id) return oldProfile;
    const p = this.opts.meters.profile(req.newProfile);
    if (!p) throw new ReplacementError('UNKNOWN_PROFILE', `no profile "${req.newProfile}" (meterd profile list)`);
    if (protocolOf(p) !== protocolOf(oldProfile))
      throw new ReplacementError(
        'PROTOCOL_MISMATCH',
        `profile ${p.id} is a ${protocolOf(p) === 'modbus' ? 'Modbus' : 'DL/T 645'} meter and ${req.meter}'s bus speaks ${protocolOf(oldProfile) === 'modbus' ? 'Modbus' : 'DL/T 645'}: a bus carries one protocol`,
      );
    // Free-energy registers count as a wallet: the point's allowances load there, and must find them on the new meter.
    if (
      (p.credit?.unit ?? 'none') !== (oldProfile.credit?.unit ?? 'none') ||
      (p.subsidy === undefined) !== (oldProfile.subsidy === undefined)
    )
      throw new ReplacementError(
        'WALLET_KIND_MISMATCH',
        `the new meter's profile ${p.id} keeps ${walletText(p)}, the point's meter ${walletText(oldProfile)}: its credit cannot move across; use a meter of the same wallet kind`,
      );
    return p;
  }

  private commit(requestId: string, step: string, facts: Facts, end?: { result?: Record<string, unknown>; errorCode?: string }): void {
    this.opts.store.transaction((tx) => advanceReplacement(tx, requestId, step, facts as Record<string, unknown>, end), { durable: true });
  }
}

function refused(code: string, message: string): ReplacementOutcome {
  return { status: 'rejected', code, message };
}

/** A reading off the display: kWh as shown, balances into ledger units; no wallet figures for a meter without one. */
function manualReading(f: NonNullable<ReplaceRequest['final']>, wallet: boolean): AssetReading {
  return {
    importKwh: f.importKwh,
    exportKwh: f.exportKwh ?? null,
    balance: wallet ? Math.round(f.balance! * 100) : null,
    overdraft: wallet ? Math.round((f.overdraft ?? 0) * 100) : null,
    purchaseCount: wallet ? f.purchaseCount! : null,
  };
}

function walletText(p: DeviceProfile): string {
  const wallet = p.credit ? (p.credit.unit === 'money' ? 'a money wallet (yuan)' : 'a kWh wallet') : 'no wallet';
  return p.subsidy ? `${wallet} and free-energy registers` : wallet;
}

function protocolOf(p: DeviceProfile): 'dlt645' | 'modbus' {
  return p.protocol.startsWith('dlt645') ? 'dlt645' : 'modbus';
}

/**
 * The key the new meter's books are opened under: its number on a DL/T 645 bus (card sales name a meter by it), the
 * point's id on a Modbus bus, where a unit id names no meter beyond its bus (as meterd adopt keys them).
 */
function booksKey(point: ReplaceablePoint, newAddress: string): string {
  return openingKey(point.protocol === 'dlt645' ? { id: point.id, address: newAddress } : { id: point.id });
}

function amountText(units: number, unit: 'money' | 'energy'): string {
  return unit === 'money' ? `${(units / 100).toFixed(2)} yuan` : `${(units / 100).toFixed(2)} kWh`;
}
