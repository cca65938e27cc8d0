import type { Clock } from '../../clock.js';
import { silentLogger, type Logger } from '../../log.js';
import { type CreditUnit, type LedgerEntry, type MeterWallet, recordOpening, type Store } from '../../store/index.js';

/** A configured meter as adoption sees it. */
export interface AdoptableMeter {
  readonly id: string;
  /** Its DL/T 645 address: cards and the books name card meters by it. */
  readonly address?: string;
  readonly unit: CreditUnit;
  readonly customerNo?: string;
}

export type AdoptionOutcome =
  /** An opening entry was recorded now. */
  | 'adopted'
  /** The books already stand where the meter stands: nothing written. */
  | 'already-adopted'
  /** The meter's count moved since the books last knew it: reported, not re-adopted. */
  | 'moved'
  /** The meter did not answer the read. */
  | 'unreadable';

export interface AdoptionLine {
  readonly meterId: string;
  readonly outcome: AdoptionOutcome;
  /** What the meter showed (absent when unreadable). */
  readonly wallet?: MeterWallet;
  /** The books' last known count for the meter before this run, or null when they had none. */
  readonly booksCount: number | null;
  readonly requestId?: string;
  /** A sentence for the operator. */
  readonly message: string;
}

/**
 * The meter's purchase count as the books know it: the highest count of an applied load or opening under any of its
 * keys, also what a load read back. Null when the books have nothing of the meter.
 */
export function booksCount(store: Store, keys: readonly string[]): { count: number; last: LedgerEntry } | null {
  let best: { count: number; last: LedgerEntry } | null = null;
  for (const key of keys) {
    for (const e of store.ledger.list({ meterId: key, limit: Number.MAX_SAFE_INTEGER })) {
      if (e.state !== 'applied' || e.kind === 'refund') continue;
      const count = Math.max(e.purchaseCount ?? 0, e.after?.count ?? 0);
      if (best === null || count > best.count) best = { count, last: e };
    }
  }
  return best;
}

/** The key openings are recorded under: the card meter number when there is one, so card sales find them. */
export function openingKey(meter: { id: string; address?: string }): string {
  return meter.address ?? meter.id;
}

/**
 * Going live on an existing installation (docs/provisioning.md § Adopting meters): reads each meter's purchase count and
 * balance and records an opening entry (channel `opening`, no money) so the books start where the meter stands. Safe
 * to run again: a meter the books already know at its count is left alone; one whose count moved since is reported
 * (a sale outside meterd, or a load the books missed), never silently re-adopted; a meter that does not answer is
 * reported and tried again at the next run.
 */
export async function adoptMeters(opts: {
  store: Store;
  meters: readonly AdoptableMeter[];
  readWallet: (meter: AdoptableMeter) => Promise<MeterWallet>;
  operator: string;
  clock?: Clock;
  logger?: Logger;
}): Promise<AdoptionLine[]> {
  const log = (opts.logger ?? silentLogger).child({ component: 'adopt' });
  const out: AdoptionLine[] = [];
  for (const meter of opts.meters) {
    let wallet: MeterWallet;
    try {
      wallet = await opts.readWallet(meter);
    } catch (err) {
      const why = (err as Error).message;
      out.push({
        meterId: meter.id,
        outcome: 'unreadable',
        booksCount: booksCount(opts.store, keysOf(meter))?.count ?? null,
        message: `meter ${meter.id} did not answer (${why}); check its line and run meterd adopt again`,
      });
      log.warn({ meter: meter.id, err }, 'adopt: meter unreadable');
      continue;
    }
    out.push(adoptOne(opts.store, meter, wallet, opts.operator, 'remote-read'));
  }
  return out;
}

/** The decision for one meter whose wallet was read, and the opening entry when it is adopted. */
export function adoptOne(
  store: Store,
  meter: AdoptableMeter,
  wallet: MeterWallet,
  operator: string,
  source: string,
  lastAmount = 0,
): AdoptionLine {
  return store.transaction(
    (tx) => {
      const known = booksCount(store, keysOf(meter));
      if (known !== null) {
        if (known.count === wallet.count)
          return {
            meterId: meter.id,
            outcome: 'already-adopted' as const,
            wallet,
            booksCount: known.count,
            message: `meter ${meter.id} is already in the books at purchase count ${wallet.count}; left alone`,
          };
        return {
          meterId: meter.id,
          outcome: 'moved' as const,
          wallet,
          booksCount: known.count,
          message:
            wallet.count > known.count
              ? `meter ${meter.id} counts ${wallet.count} purchases but the books know ${known.count}: ${wallet.count - known.count} load(s) reached it from outside meterd; not re-adopted: see meterd report for the difference and settle it with the station`
              : `meter ${meter.id} counts ${wallet.count} purchases, fewer than the books' ${known.count}: the meter was replaced or reset; not re-adopted: record the meter swap before selling to it`,
        };
      }
      const { entry } = recordOpening(tx, {
        meterId: openingKey(meter),
        unit: meter.unit,
        wallet,
        lastAmount,
        operator,
        ...(meter.customerNo ? { customerNo: meter.customerNo } : {}),
        source,
      });
      return {
        meterId: meter.id,
        outcome: 'adopted' as const,
        wallet,
        booksCount: null,
        requestId: entry.requestId,
        message: `meter ${meter.id} adopted at purchase count ${wallet.count}, balance ${(wallet.balance / 100).toFixed(2)} ${meter.unit === 'money' ? 'CNY' : 'kWh'}`,
      };
    },
    { durable: true },
  );
}

function keysOf(meter: { id: string; address?: string }): string[] {
  return meter.address === undefined || meter.address === meter.id ? [meter.id] : [meter.id, meter.address];
}
