import type { CreditPort, Wallet } from '../../devices/credit-port.js';
import type { CustomerNumberPort, CustomerNumberReader } from '../../devices/account-port.js';
import type { Priority } from '../../devices/dlt645-meter.js';
import { silentLogger, type Logger } from '../../log.js';
import { type LedgerEntry, noteCustomer, recordOpening, saveCustomer, StoreError, type Store } from '../../store/index.js';
import type { CreditService } from '../credit.js';
import { booksCount, openingKey } from './adopt.js';
import { ProvisioningError } from './errors.js';

/** A configured meter that can have an account opened remotely, with the ports its profile's `account` method uses. */
export interface AccountMeter {
  readonly id: string;
  /** The DL/T 645 address: the archive and the books name the meter by it. */
  readonly address?: string;
  readonly method: 'dlt645-customer-number' | 'dlt645-esam-opening';
  /** The meter's credit port: its wallet, and for ESAM the opening itself. */
  readonly credit?: CreditPort;
  /** dlt645-customer-number: where the customer number is written and read back. */
  readonly customerNumber?: CustomerNumberPort;
  /**
   * The register the meter holds its customer number in, read only, when the profile names one (ESAM: `customer.number`,
   * set by the opening): how a meter replacement tells an account already open from one to open.
   */
  readonly heldCustomerNumber?: CustomerNumberReader;
}

/**
 * The points' account meters by point id, looked up at each opening: after a meter replacement a point's account
 * meter is the new meter's (src/daemon/accounts.ts).
 */
export interface AccountMeters {
  get(meterId: string): AccountMeter | undefined;
}

export interface AccountOpenRequest {
  /** The station's request id: the opening purchase's ledger entry is keyed by it (never loaded twice). */
  readonly requestId: string;
  readonly meterId: string;
  readonly customerNo: string;
  /** For a customer not in the archive yet. */
  readonly name?: string;
  readonly room?: string;
  readonly operator: string;
  /** An opening purchase (money taken): kWh for energy meters, fen for money meters. */
  readonly energyKwh?: number;
  readonly amountFen?: number;
}

export interface AccountOpened {
  readonly meterId: string;
  readonly customerNo: string;
  readonly method: AccountMeter['method'];
  /** The meter's purchase count and balance after the opening (ledger units). */
  readonly purchaseCount: number | null;
  readonly balance: number | null;
  /** True when an opening entry started (or restarted) the meter's books. */
  readonly openedBooks: boolean;
  /** The opening purchase, when money was taken: its ledger entry. */
  readonly sale?: {
    readonly requestId: string;
    readonly state: LedgerEntry['state'];
    readonly purchaseCount: number | null;
    readonly amount: number;
  };
}

/**
 * Opening an account on a remote meter (docs/provisioning.md § Opening an account on a remote meter): a plain meter gets
 * the customer number written and read back; an ESAM meter runs account opening (070101FF) with the station's
 * encryption machine, through the credit service's exactly-once chain when money is taken. The archive binds customer
 * and meter with an `open-account` history line; the books get an opening entry, and a sale only if money was taken.
 */
export class AccountOpening {
  readonly #store: () => Store;
  readonly #credit: Pick<CreditService, 'topUpSettled'>;
  readonly #meters: AccountMeters;
  readonly #log: Logger;

  constructor(opts: {
    store: () => Store;
    credit: Pick<CreditService, 'topUpSettled'>;
    meters: AccountMeters;
    logger?: Logger;
  }) {
    this.#store = opts.store;
    this.#credit = opts.credit;
    this.#meters = opts.meters;
    this.#log = (opts.logger ?? silentLogger).child({ component: 'account-opening' });
  }

  async open(req: AccountOpenRequest, signal?: AbortSignal): Promise<AccountOpened> {
    const meter = this.#meters.get(req.meterId);
    if (!meter)
      throw new ProvisioningError(
        'ACCOUNT_NOT_OPENABLE',
        `meter ${req.meterId} cannot have an account opened remotely: its profile has no account method (or, for ESAM meters, no encryption machine to drive it); open a card for a card meter instead`,
      );
    const store = this.#store();
    const key = openingKey(meter);
    const address = meter.address ?? meter.id;
    const customer = store.archive.get(req.customerNo);
    if (!customer && (req.name === undefined || req.room === undefined))
      throw new ProvisioningError(
        'UNKNOWN_CUSTOMER',
        `customer ${req.customerNo} is not in the archive: give the name and room to add them (--name, --room), or import the archive first`,
      );
    if (customer && customer.state !== 'active')
      throw new ProvisioningError(
        'ARCHIVE_CONFLICT',
        `customer ${req.customerNo} is ${customer.state}: reactivate them first (meterd archive reactivate ${req.customerNo})`,
      );
    if (customer?.meterAddress && customer.meterAddress !== address)
      throw new ProvisioningError(
        'ARCHIVE_CONFLICT',
        `customer ${req.customerNo} is bound to meter ${customer.meterAddress}; move them out of it first (meterd archive move-out ${req.customerNo})`,
      );
    const holder = store.archive.byMeter(address);
    if (holder && holder.customerNo !== req.customerNo)
      throw new ProvisioningError(
        'ARCHIVE_CONFLICT',
        `meter ${req.meterId} is bound to active customer ${holder.customerNo}; move that customer out first (meterd archive move-out ${holder.customerNo})`,
      );
    const money = req.energyKwh !== undefined || req.amountFen !== undefined;
    // A request run again (resumed after a restart) starts the books where its opening purchase found the meter.
    const earlier = money ? (store.ledger.get(req.requestId)?.before ?? null) : null;
    const opts = { priority: 'operator' as const, ...(signal ? { signal } : {}) };

    let wallet: Wallet | null = null;
    let opening: Wallet | null = null;
    let sale: AccountOpened['sale'];
    if (meter.method === 'dlt645-esam-opening' && money) {
      // The books start where the meter stands; the opening purchase is then a load like any other, exactly once.
      opening = earlier ?? (await meter.credit!.readWallet(opts));
    } else {
      wallet = await openMeterAccount(meter, req.customerNo, req.meterId, opts);
      opening = earlier ?? wallet;
    }

    const prior = booksCount(store, [key, meter.id]);
    const openedBooks = opening !== null && (prior === null || prior.count < opening.count);
    // An ESAM opening with money is recorded once the meter took it: until then the account is not open.
    const esamWithMoney = meter.method === 'dlt645-esam-opening' && money;
    if (!esamWithMoney) this.#record(req, meter, key, address, opening, openedBooks);

    if (money) {
      const r = await this.#credit.topUpSettled(
        {
          requestId: req.requestId,
          meterId: req.meterId,
          channel: 'operator',
          ...(req.energyKwh !== undefined ? { energyKwh: req.energyKwh } : {}),
          ...(req.amountFen !== undefined ? { amountFen: req.amountFen } : {}),
          customerNo: req.customerNo,
          operator: req.operator,
          ...(meter.method === 'dlt645-esam-opening' ? { opening: true } : {}),
        },
        signal,
      );
      const e = r.entry;
      sale = { requestId: e.requestId, state: e.state, purchaseCount: e.purchaseCount, amount: e.amount };
      if (e.state === 'rejected' || e.state === 'failed')
        throw new ProvisioningError(
          'ACCOUNT_OPEN_REFUSED',
          `the opening purchase was not loaded (${e.error?.code ?? e.state}: ${e.error?.message ?? ''}); nothing was taken${meter.method === 'dlt645-esam-opening' ? ' and the account is not open' : ', the customer number is set'}`,
        );
      if (e.state !== 'applied')
        throw new ProvisioningError(
          'ACCOUNT_NOT_VERIFIED',
          `the opening purchase may have reached meter ${req.meterId} but its counter could not be read back; the entry ${e.requestId} is settled by reading the meter (meterd ledger): check it before opening again`,
        );
      if (e.after) wallet = e.after;
      if (esamWithMoney) this.#record(req, meter, key, address, opening, openedBooks);
    }
    this.#log.info(
      { meter: req.meterId, customer: req.customerNo, method: meter.method, sale: sale?.state },
      'account opened on the meter',
    );
    return {
      meterId: req.meterId,
      customerNo: req.customerNo,
      method: meter.method,
      purchaseCount: wallet?.count ?? null,
      balance: wallet?.balance ?? null,
      openedBooks,
      ...(sale ? { sale } : {}),
    };
  }

  /** The archive binding with its history line, and the opening entry when the books start here; one commit. */
  #record(req: AccountOpenRequest, meter: AccountMeter, key: string, address: string, opening: Wallet | null, openBooks: boolean): void {
    const store = this.#store();
    const unit = meter.credit?.unit ?? 'money';
    try {
      store.transaction(
        (tx) => {
          if (openBooks && opening)
            recordOpening(tx, {
              meterId: key,
              unit,
              wallet: opening,
              lastAmount: 0,
              operator: req.operator,
              customerNo: req.customerNo,
              source: 'account-open',
            });
          const saved = saveCustomer(
            tx,
            req.customerNo,
            {
              ...(store.archive.get(req.customerNo) ? {} : { name: req.name!, room: req.room! }),
              meterAddress: address,
              state: 'active',
            },
            { operator: req.operator, action: 'open-account' },
          );
          if (Object.keys(saved.changes).length === 0)
            noteCustomer(tx, req.customerNo, { operator: req.operator, action: 'open-account' }, { account: [null, meter.method] });
        },
        { durable: true },
      );
    } catch (err) {
      if (err instanceof StoreError && err.code === 'STORE_CONFLICT') throw new ProvisioningError('ARCHIVE_CONFLICT', err.message);
      throw err;
    }
  }
}

/**
 * The meter side of opening an account without money, verified on the meter (account-open, and a meter replacement
 * opening the new meter: docs/lifecycle.md): a plain meter gets the customer number written and read back; an ESAM
 * meter runs account opening 070101FF (amount 0, purchase count + 1) with the station's encryption machine and must
 * show the count + 1 afterwards. Returns the wallet after (null for a meter without credit port). Throws a
 * ProvisioningError when the meter did not open the account; the error of a silent meter or encryption machine
 * otherwise.
 */
export async function openMeterAccount(
  meter: AccountMeter,
  customerNo: string,
  meterId: string,
  opts: { priority: Priority; signal?: AbortSignal },
): Promise<Wallet | null> {
  if (meter.method === 'dlt645-customer-number') {
    const port = meter.customerNumber!;
    await port.write(customerNo, opts);
    const back = await port.read(opts);
    if (back !== customerNo.padStart(12, '0'))
      throw new ProvisioningError(
        'ACCOUNT_NOT_VERIFIED',
        `meter ${meterId} took the customer number but reads back ${back}, not ${customerNo.padStart(12, '0')}; check the meter and open the account again`,
      );
    return meter.credit ? await meter.credit.readWallet(opts) : null;
  }
  const credit = meter.credit!;
  const before = await credit.readWallet(opts);
  const outcome = await credit.load({ opening: true, amount: 0, purchaseCount: before.count + 1, customerNo }, opts);
  const wallet = await credit.readWallet(opts);
  if (wallet.count !== before.count + 1)
    throw new ProvisioningError(
      'ACCOUNT_OPEN_REFUSED',
      `meter ${meterId} did not open the account (its purchase count stayed at ${wallet.count})${outcome.kind === 'accepted' ? '' : `: ${outcome.code}, ${outcome.message}`}; an ESAM meter opens only once, while it is not yet in service`,
    );
  return wallet;
}
