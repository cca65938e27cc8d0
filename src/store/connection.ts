import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { StoreError } from './errors.js';
import type { SeqGuard } from './seq-guard.js';
import type { StoreClock } from './types.js';

type AnyStatement = Database.Statement<unknown[], unknown>;

/** One open SQLite connection with its clock, logger and a cache of prepared statements. Internal to src/store. */
export class Connection {
  readonly #statements = new Map<string, AnyStatement>();

  constructor(
    readonly db: Database.Database,
    readonly path: string,
    readonly clock: StoreClock,
    readonly logger: Logger,
    /** The high-water mark of the seq streams, outside the database. */
    readonly seqGuard: SeqGuard,
  ) {}

  /**
   * Prepares once per connection: parsing SQL costs more than running these small statements. The statement comes
   * back in row mode even if an earlier caller switched it to pluck().
   */
  statement<Params extends unknown[] = unknown[], Row = unknown>(sql: string): Database.Statement<Params, Row> {
    if (!this.db.open) throw new StoreError('STORE_CLOSED', `the store at ${this.path} is closed`);
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.#statements.set(sql, statement);
    } else if (statement.reader) {
      statement.pluck(false);
    }
    return statement as unknown as Database.Statement<Params, Row>;
  }
}

/**
 * Proof that the caller is inside `store.transaction(...)`. Functions that must commit together with other writes
 * (`insertReadings`, `enqueue`, `upsertMeterState`, …) take one, so they cannot be called outside a transaction.
 */
export class Tx {
  #connection: Connection | null;

  /** @internal Created by Store.transaction only. */
  constructor(connection: Connection) {
    this.#connection = connection;
  }

  /** @internal For src/store only. */
  get connection(): Connection {
    if (this.#connection === null) {
      // A Tx kept past its callback (an await, a timer) would write outside any transaction, in autocommit mode.
      throw new StoreError('STORE_TX_MISUSE', 'this transaction has already ended; write only inside the store.transaction callback');
    }
    return this.#connection;
  }

  /** @internal */
  end(): void {
    this.#connection = null;
  }
}
