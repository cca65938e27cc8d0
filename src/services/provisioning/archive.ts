import { type Customer, type CustomerState, saveCustomer, StoreError, type Store } from '../../store/index.js';
import type { ArchiveRow, BadLine } from './archive-csv.js';
import { ProvisioningError } from './errors.js';

export interface ArchiveImportResult {
  /** False when bad lines stopped the import (nothing was written). */
  readonly imported: boolean;
  readonly created: readonly string[];
  readonly updated: readonly string[];
  readonly unchanged: readonly string[];
  /** Every bad line, from the file and against the archive as it stands. */
  readonly bad: readonly BadLine[];
}

/**
 * Loads a station's archive: every row is checked against the archive first (a meter bound to another active
 * customer is a bad line); with bad lines nothing is written unless `skipBad`, then the good rows are. All rows go in
 * one transaction, each change with its history line (action `import`). Importing the same file again changes nothing.
 */
export function importArchive(
  store: Store,
  rows: readonly ArchiveRow[],
  fileBad: readonly BadLine[],
  opts: { operator: string; skipBad: boolean },
): ArchiveImportResult {
  const bad: BadLine[] = [...fileBad];
  const inFile = new Map(rows.filter((r) => r.meterAddress !== null).map((r) => [r.meterAddress!, r.customerNo]));
  const good: ArchiveRow[] = [];
  for (const r of rows) {
    const holder = r.meterAddress === null ? null : store.archive.byMeter(r.meterAddress);
    // A holder that the same file moves to another meter frees this one.
    if (holder && holder.customerNo !== r.customerNo && inFile.get(holder.meterAddress!) !== holder.customerNo) {
      const moved = rows.find((o) => o.customerNo === holder.customerNo);
      if (!moved) {
        bad.push({
          line: r.line,
          message: `meter ${r.meterAddress} is bound to active customer ${holder.customerNo} in the archive; move that customer out first (meterd archive move-out ${holder.customerNo})`,
        });
        continue;
      }
    }
    good.push(r);
  }
  bad.sort((a, b) => a.line - b.line);
  if (bad.length > 0 && !opts.skipBad) return { imported: false, created: [], updated: [], unchanged: [], bad };
  const created: string[] = [];
  const updated: string[] = [];
  const unchanged: string[] = [];
  store.transaction(
    (tx) => {
      // Unbind first the customers this file moves, so a swap of two meters does not trip the one-customer rule.
      for (const r of good) {
        const current = store.archive.get(r.customerNo);
        if (current?.meterAddress && current.meterAddress !== r.meterAddress)
          saveCustomer(tx, r.customerNo, { meterAddress: null }, { operator: opts.operator, action: 'import' });
      }
      for (const r of good) {
        const existed = store.archive.get(r.customerNo) !== null;
        try {
          const { changes } = saveCustomer(
            tx,
            r.customerNo,
            { name: r.name, room: r.room, meterAddress: r.meterAddress, tags: r.tags },
            { operator: opts.operator, action: 'import' },
          );
          (!existed ? created : Object.keys(changes).length > 0 ? updated : unchanged).push(r.customerNo);
        } catch (err) {
          if (err instanceof StoreError && err.code === 'STORE_CONFLICT')
            throw new StoreError('STORE_CONFLICT', `line ${r.line}: ${err.message}`);
          throw err;
        }
      }
    },
    { durable: true },
  );
  return { imported: true, created, updated, unchanged, bad };
}

/** Moves a customer to another state (moved out, closed, active again), with the history line. */
export function setCustomerState(store: Store, customerNo: string, state: CustomerState, operator: string): Customer {
  if (!store.archive.get(customerNo))
    throw new ProvisioningError(
      'UNKNOWN_CUSTOMER',
      `no customer ${customerNo} in the archive; see meterd archive list, or import it first`,
    );
  return store.transaction((tx) => saveCustomer(tx, customerNo, { state }, { operator, action: state }).customer, { durable: true });
}
