import { AlertStore } from './alerts.js';
import { CustomerArchive } from './archive.js';
import { ParameterCards } from './parameter-cards.js';
import { SupplyBook } from './supply.js';
import { UserStore } from './users.js';
import { WebSessionStore } from './web-sessions.js';
import { Ledger } from './ledger.js';
import { accessSync, constants, existsSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { silentLogger, type Logger } from '../log.js';
import { Connection, Tx } from './connection.js';
import { DeadLetters } from './dead-letters.js';
import { StoreError } from './errors.js';
import { MeterStates } from './meter-state.js';
import { MIGRATIONS, migrate } from './migrations.js';
import { OutboxQueue } from './outbox.js';
import { filesBeforeOpen, SeqGuard, type SeqRewind } from './seq-guard.js';
import { ReadingHistory } from './readings.js';
import { MeterRegister, ReplacementJobs } from './register.js';
import { assertIntact, assertWritable, corruptError, isCorruptError, isReadOnlyError, readOnlyError } from './open-checks.js';
import { enforceLimits, type LimitsPolicy, type LimitsResult } from './retention.js';
import type { StoreClock } from './types.js';
import { walSizing, type WalSizing } from './wal-sizing.js';

export interface StoreOptions {
  /** The database file; its folder is created if missing. */
  readonly path: string;
  readonly clock: StoreClock;
  readonly logger?: Logger;
  /** Readings older than this are deleted by enforceLimits(). Default 90. */
  readonly telemetryRetentionDays?: number;
  /** Disk cap for live data plus WAL; above it enforceLimits() drops the oldest telemetry. No cap by default. */
  readonly maxBytes?: number;
  /**
   * enforceLimits() deletes the records of finished station commands older than this (never inside the replay
   * window, `COMMAND_REPLAY_WINDOW_MS`). Default 30 days.
   */
  readonly commandsKeepForMs?: number;
  /**
   * Run `PRAGMA quick_check` at open and refuse a damaged file (STORE_CORRUPT). Default true: a damaged page found
   * only when a station command needs it leaves the station without an answer.
   */
  readonly checkAtOpen?: boolean;
}

export interface TransactionOptions {
  /**
   * Commit with synchronous=FULL: the commit is on disk (fsync) before `transaction` returns, so it survives a power
   * cut. For credit, alerts, reports and replies. Without it a commit survives a process crash but a power cut may
   * lose the last ones.
   */
  readonly durable?: boolean;
}

export interface IntegrityResult {
  readonly ok: boolean;
  /** `['ok']`, or SQLite's list of problems. */
  readonly messages: readonly string[];
}

/** `full` from a commit that failed for lack of disk space until the next one that succeeds. */
export type StorageState = 'ok' | 'full';

export interface LimitCounters {
  readonly prunedTelemetry: number;
  readonly prunedReadings: number;
}

/** Connection settings as SQLite reports them, for `meterd doctor` and tests. */
export interface StoreSettings {
  readonly journalMode: string;
  readonly synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
  readonly foreignKeys: boolean;
  readonly busyTimeoutMs: number;
  /** The page cache's bound in KiB (PAGE_CACHE_KIB), and the memory-mapped bytes (0: none). */
  readonly pageCacheKib: number;
  readonly mmapBytes: number;
}

const DEFAULT_RETENTION_DAYS = 90;
const DEFAULT_COMMANDS_KEEP_MS = 30 * 86_400_000;
// Another process (the CLI beside the daemon) may hold the write lock briefly; wait rather than fail.
const BUSY_TIMEOUT_MS = 5_000;
const SYNCHRONOUS_NAMES = ['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const;

/**
 * Opens (creating and migrating if needed) the gateway's SQLite store.
 *
 * ```ts
 * const store = openStore({ path: 'data/meterd.db', clock: systemClock, logger, maxBytes: 512 * 1024 * 1024 });
 * store.transaction((tx) => enqueue(tx, { topic: 'meters/room-101/alerts', class: 'alert', payload: alert }), { durable: true });
 * ```
 */
/** SQLite's page cache per connection, in KiB (SQLite's own default; better-sqlite3's build would give 16 MB). */
export const PAGE_CACHE_KIB = 2048;

export function openStore(options: StoreOptions): Store {
  const retentionDays = options.telemetryRetentionDays ?? DEFAULT_RETENTION_DAYS;
  if (!(retentionDays > 0) || !Number.isFinite(retentionDays)) throw new TypeError('telemetryRetentionDays is not greater than 0');
  const keepCommandsMs = options.commandsKeepForMs ?? DEFAULT_COMMANDS_KEEP_MS;
  if (!(keepCommandsMs > 0) || !Number.isFinite(keepCommandsMs)) throw new TypeError('commandsKeepForMs is not greater than 0');
  if (options.maxBytes !== undefined && !(Number.isSafeInteger(options.maxBytes) && options.maxBytes > 0)) {
    throw new TypeError('maxBytes is not a positive whole number of bytes');
  }
  const logger = (options.logger ?? silentLogger).child({ component: 'store' });

  let db: Database.Database;
  let before: ReturnType<typeof filesBeforeOpen>;
  try {
    mkdirSync(dirname(options.path), { recursive: true });
    before = filesBeforeOpen(options.path);
    db = new Database(options.path, { timeout: BUSY_TIMEOUT_MS });
  } catch (error) {
    if (isReadOnlyError(error) || ((error as { code?: unknown }).code === 'SQLITE_CANTOPEN' && !canWrite(dirname(options.path)))) {
      throw readOnlyError(options.path, error);
    }
    throw new StoreError('STORE_OPEN_FAILED', `cannot open ${options.path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    let journalMode: unknown;
    try {
      journalMode = db.pragma('journal_mode = WAL', { simple: true });
    } catch (error) {
      if (isReadOnlyError(error) || ((error as { code?: unknown }).code === 'SQLITE_CANTOPEN' && !canWrite(dirname(options.path)))) {
        throw readOnlyError(options.path, error);
      }
      if (isCorruptError(error)) throw corruptError(options.path, [(error as Error).message], error);
      throw new StoreError('STORE_OPEN_FAILED', `cannot open ${options.path} as a SQLite database: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (journalMode !== 'wal') {
      throw new StoreError(
        'STORE_OPEN_FAILED',
        `${options.path} runs in journal_mode ${String(journalMode)}; the store needs WAL (a file on a local disk, not :memory:)`,
      );
    }
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    db.pragma('synchronous = NORMAL');
    // better-sqlite3 builds SQLite with a 16 MB page cache per connection, which fills page by page as the tables
    // grow: the slow "native" growth of the soak (issue 18). The daemon's work touches the tails of a few indexes;
    // 2 MB holds them.
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    db.pragma('mmap_size = 0');
    const wal = walSizing(volumeBytes(dirname(options.path)), db.pragma('page_size', { simple: true }) as number);
    db.pragma(`wal_autocheckpoint = ${wal.autocheckpointPages}`);
    db.pragma(`journal_size_limit = ${wal.journalSizeLimitBytes}`);
    assertWritable(db, options.path);
    if (options.checkAtOpen !== false) assertIntact(db, options.path);
    const { to } = migrate(db, MIGRATIONS, options.clock, logger);
    const { guard, rewinds } = SeqGuard.open(db, options.path, before, logger);
    return new Store(
      new Connection(db, options.path, options.clock, logger, guard),
      to,
      { telemetryRetentionDays: retentionDays, maxBytes: options.maxBytes, commandsKeepForMs: keepCommandsMs },
      rewinds,
    );
  } catch (error) {
    db.close();
    throw error;
  }
}

function volumeBytes(dir: string): number {
  const fs = statfsSync(dir);
  return fs.blocks * fs.bsize;
}

function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}

/** False for a folder that exists but cannot be written; a missing one is another problem. */
function canWrite(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export class Store {
  /** Past readings. */
  readonly readings: ReadingHistory;
  /** Messages waiting for the uplink. */
  readonly outbox: OutboxQueue;
  /** Last known state of each meter. */
  readonly meterStates: MeterStates;
  /** The credit ledger. */
  readonly ledger: Ledger;
  /** Messages the broker refused for ever, out of the outbox. */
  readonly deadLetters: DeadLetters;
  /** Meter-fault alerts, their repair notes, the detectors' memory and the clock broadcasts. */
  readonly alerts: AlertStore;
  /** The customer archive and the card serials reported lost. */
  readonly archive: CustomerArchive;
  /** The parameter cards written at the counter. */
  readonly parameterCards: ParameterCards;
  /** Notices of supply cuts and the 停(送)电 record. */
  readonly supply: SupplyBook;
  /** The web console's users (name, role, password hash, lock-out). */
  readonly users: UserStore;
  /** The meter register: which physical meter serves which point, and since when. */
  readonly register: MeterRegister;
  /** The meter-replace jobs and the step each stands at. */
  readonly replacements: ReplacementJobs;
  /** The web console's signed-in sessions (hashed tokens). */
  readonly webSessions: WebSessionStore;
  readonly #connection: Connection;
  readonly #policy: LimitsPolicy;
  readonly #runInTransaction: Database.Transaction<(fn: (tx: Tx) => unknown, tx: Tx) => unknown>;
  #counters: LimitCounters = { prunedTelemetry: 0, prunedReadings: 0 };
  #storage: StorageState = 'ok';
  #fullSince = 0;
  readonly #storageListeners = new Set<(state: StorageState) => void>();

  /** @internal Use openStore(). */
  constructor(
    connection: Connection,
    /** The schema version this store runs at (the last migration). */
    readonly schemaVersion: number,
    policy: LimitsPolicy,
    /** Streams whose seq went back before this open (a lost WAL) and were moved past what may have been published. */
    readonly seqRewinds: readonly SeqRewind[] = [],
  ) {
    this.#connection = connection;
    this.#policy = policy;
    this.#runInTransaction = connection.db.transaction((fn: (tx: Tx) => unknown, tx: Tx) => fn(tx));
    this.readings = new ReadingHistory(connection);
    this.outbox = new OutboxQueue(connection);
    this.meterStates = new MeterStates(connection);
    this.ledger = new Ledger(connection);
    this.deadLetters = new DeadLetters(connection);
    this.alerts = new AlertStore(connection);
    this.archive = new CustomerArchive(connection);
    this.parameterCards = new ParameterCards(connection);
    this.supply = new SupplyBook(connection);
    this.users = new UserStore(connection);
    this.register = new MeterRegister(connection);
    this.replacements = new ReplacementJobs(connection);
    this.webSessions = new WebSessionStore(connection);
  }

  get path(): string {
    return this.#connection.path;
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE): everything it writes commits together, or nothing does if
   * it throws. `fn` must be synchronous; the Tx it receives is dead once it returns.
   */
  transaction<T>(fn: (tx: Tx) => T, options: TransactionOptions = {}): T {
    const db = this.#open();
    if (db.inTransaction) {
      throw new StoreError('STORE_TX_MISUSE', 'store.transaction was called inside another transaction; pass the outer tx down instead');
    }
    const tx = new Tx(this.#connection);
    // SQLite ignores a change of `synchronous` inside a transaction, so FULL is set around it.
    if (options.durable === true) db.pragma('synchronous = FULL');
    try {
      const result = this.#runInTransaction.immediate(fn, tx) as T;
      if (this.#storage === 'full') this.#setStorage('ok');
      return result;
    } catch (error) {
      if (isDiskFull(error) && this.#storage === 'ok') this.#setStorage('full', error);
      throw error;
    } finally {
      tx.end();
      if (options.durable === true) db.pragma('synchronous = NORMAL');
    }
  }

  /**
   * Deletes readings past the retention window, finished command records past `commandsKeepForMs` and, over the disk
   * cap, the oldest telemetry. Call it periodically.
   */
  enforceLimits(): LimitsResult {
    const db = this.#open();
    if (db.inTransaction) throw new StoreError('STORE_TX_MISUSE', 'enforceLimits cannot run inside a transaction: it checkpoints the WAL');
    const result = enforceLimits(this.#connection, this.#policy);
    this.#counters = {
      prunedTelemetry: this.#counters.prunedTelemetry + result.prunedTelemetry,
      prunedReadings: this.#counters.prunedReadings + result.prunedReadings,
    };
    return result;
  }

  /**
   * `full` since a commit failed for lack of disk space, `ok` again from the next commit that succeeds. The change to
   * `full` is logged once (STORE_FULL, with the free space and the folder), not at every failed commit.
   */
  get storage(): StorageState {
    return this.#storage;
  }

  /** Calls `listener` at each change of `storage`; returns the function that stops it. */
  onStorageChange(listener: (state: StorageState) => void): () => void {
    this.#storageListeners.add(listener);
    return () => this.#storageListeners.delete(listener);
  }

  /** The WAL limits chosen for the volume at open. */
  walLimits(): WalSizing {
    const db = this.#open();
    return {
      autocheckpointPages: db.pragma('wal_autocheckpoint', { simple: true }) as number,
      journalSizeLimitBytes: db.pragma('journal_size_limit', { simple: true }) as number,
    };
  }

  #setStorage(state: StorageState, cause?: unknown): void {
    this.#storage = state;
    const { path, logger, clock } = this.#connection;
    const dataDir = dirname(path);
    if (state === 'full') {
      this.#fullSince = clock.now();
      logger.error(
        { code: 'STORE_FULL', dataDir, ...this.#diskFigures(), err: cause },
        `the disk under ${dataDir} is full: readings are held in memory (a bounded batch) and the outbox keeps draining; ` +
          'storing resumes by itself when space is freed',
      );
    } else {
      logger.warn({ dataDir, fullForMs: clock.now() - this.#fullSince, ...this.#diskFigures() }, 'the store can write again');
    }
    for (const listener of this.#storageListeners) {
      try {
        listener(state);
      } catch (error) {
        logger.error({ err: error }, 'a storage listener failed');
      }
    }
  }

  #diskFigures(): { freeBytes?: number; dbBytes?: number; walBytes?: number } {
    const { path } = this.#connection;
    const size = (file: string) => {
      try {
        return statSync(file).size;
      } catch {
        return 0;
      }
    };
    try {
      const fs = statfsSync(dirname(path));
      return { freeBytes: fs.bavail * fs.bsize, dbBytes: size(path), walBytes: size(`${path}-wal`) };
    } catch {
      return {};
    }
  }

  /** What enforceLimits() has deleted since the store was opened. */
  get limitCounters(): LimitCounters {
    return this.#counters;
  }

  integrityCheck(): IntegrityResult {
    let lines: string[];
    try {
      const messages = this.#open().pragma('integrity_check', { simple: false }) as { integrity_check: string }[];
      lines = messages.map((row) => row.integrity_check);
    } catch (error) {
      // Damage SQLite cannot even walk past (a page of the schema) is reported, not thrown.
      if (!isCorruptError(error)) throw error;
      lines = [(error as Error).message];
    }
    return { ok: lines.length === 1 && lines[0] === 'ok', messages: lines };
  }

  settings(): StoreSettings {
    const db = this.#open();
    const read = (name: string): unknown => db.pragma(name, { simple: true });
    return {
      journalMode: String(read('journal_mode')),
      synchronous: SYNCHRONOUS_NAMES[read('synchronous') as number] ?? 'EXTRA',
      foreignKeys: read('foreign_keys') === 1,
      busyTimeoutMs: read('busy_timeout') as number,
      pageCacheKib: -(read('cache_size') as number),
      mmapBytes: (read('mmap_size') as number | undefined) ?? 0,
    };
  }

  /**
   * Makes what was committed with `synchronous=NORMAL` durable now: a checkpoint syncs the WAL before it copies it.
   * For a transaction that learned only inside itself that it must survive a power cut (a poll that raised an alert).
   */
  sync(): void {
    const db = this.#open();
    if (db.inTransaction) throw new StoreError('STORE_TX_MISUSE', 'sync cannot run inside a transaction');
    db.pragma('wal_checkpoint(PASSIVE)');
  }

  /** Moves the WAL into the database file and closes. Safe to call twice. */
  close(): void {
    const db = this.#connection.db;
    if (!db.open) return;
    let values: Record<string, number> | undefined;
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
      values = Object.fromEntries(
        db
          .prepare<[], { stream: string; value: number }>('SELECT stream, value FROM sequences')
          .all()
          .map((row) => [row.stream, row.value]),
      );
    } catch (error) {
      // A full disk can refuse the checkpoint: the WAL stays beside the file and is recovered at the next open.
      this.#connection.logger.warn({ err: error }, 'the WAL could not be folded into the database at close; it is kept for the next open');
    }
    db.close();
    // SQLite deletes the WAL when the last connection closes: only then are these the final values.
    if (values === undefined || existsSync(`${this.#connection.path}-wal`)) return;
    try {
      this.#connection.seqGuard.markClosed(values);
    } catch (error) {
      // The next open then sees an unclean stop without its WAL and skips ahead: a gap, never a reuse.
      this.#connection.logger.error({ err: error }, 'the seq high-water mark could not be marked closed');
    }
  }

  #open(): Database.Database {
    const db = this.#connection.db;
    if (!db.open) throw new StoreError('STORE_CLOSED', `the store at ${this.#connection.path} is closed`);
    return db;
  }
}
