import type { CardSale, SaleBooks, SaleRecorder } from './sale.js';
import { openLedgerEntry, transitionLedger, type Store } from '../store/index.js';

/**
 * The books side of card sales: a verified sale becomes a ledger entry (channel `card`), keyed by meter and purchase
 * count, so the same purchase can never be recorded twice. It is final in the books at once; whether the meter has
 * taken it (the card inserted) is the daily reconciliation's job, from the meter's own purchase counter.
 */
export class LedgerCardSales implements SaleRecorder, SaleBooks {
  constructor(private readonly store: () => Store) {}

  async record(sale: CardSale): Promise<void> {
    const store = this.store();
    store.transaction(
      (tx) => {
        const { entry, created } = openLedgerEntry(tx, {
          requestId: `card-${sale.meterNumber}-${sale.purchaseCount}`,
          channel: 'card',
          meterId: sale.meterNumber,
          unit: sale.unit === 'fen' ? 'money' : 'energy',
          amount: sale.amount,
          operator: sale.operator,
          customerNo: sale.customerNumber,
          request: { ...sale },
        });
        if (created)
          transitionLedger(tx, entry.id, 'applied', {
            purchaseCount: sale.purchaseCount,
            detail: `written to card ${sale.cardSerial ?? ''} by ${sale.encoder}; awaiting insertion in the meter`,
          });
      },
      { durable: true },
    );
  }

  async lastSale(meterNumber: string): Promise<{ count: number; amount: number } | undefined> {
    const entries = this.store()
      .ledger.list({ meterId: meterNumber })
      .filter((e) => e.state === 'applied' && e.purchaseCount !== null);
    const last = entries.sort((a, b) => b.purchaseCount! - a.purchaseCount!)[0];
    return last ? { count: last.purchaseCount!, amount: last.amount } : undefined;
  }
}
