import { MeterdError } from '../errors.js';

export type StoreErrorCode =
  /** The database file was written by a newer meterd; opening it could corrupt data the newer code relies on. */
  | 'STORE_TOO_NEW'
  /** The file could not be opened as a WAL-mode SQLite database. */
  | 'STORE_OPEN_FAILED'
  /** The file or its folder cannot be written (immutable flag, read-only mount, permissions); found at open. */
  | 'STORE_READ_ONLY'
  /** PRAGMA quick_check found damaged pages at open; the message says how to restore or rescue the file. */
  | 'STORE_CORRUPT'
  /** A migration failed; the database stays at the last version that applied. */
  | 'STORE_MIGRATION_FAILED'
  /** A transaction was started inside another one, or a Tx was used after its transaction ended. */
  | 'STORE_TX_MISUSE'
  /** A value that cannot be stored faithfully (NaN, a payload with its own seq, …). */
  | 'STORE_INVALID_VALUE'
  /** A change the data refuses: a meter bound to another active customer. */
  | 'STORE_CONFLICT'
  /** The store was used after close(). */
  | 'STORE_CLOSED';

/** Every failure the store raises on purpose: `code` is stable, `message` says what to do. */
export class StoreError extends MeterdError<StoreErrorCode> {
  override readonly name = 'StoreError';

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
