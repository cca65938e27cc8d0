import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';

/**
 * The checks `openStore` runs before it hands out a store, so that a store the daemon cannot use is refused at start
 * with one line saying what to do, not found at the first commit or the first station command.
 */

const READ_ONLY_CODES = new Set(['SQLITE_READONLY', 'EROFS', 'EACCES', 'EPERM']);

/** True for an error that means the file or its folder cannot be written (SQLite's or the file system's). */
export function isReadOnlyError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (READ_ONLY_CODES.has(code) || code.startsWith('SQLITE_READONLY_'));
}

/** True for SQLite's "database disk image is malformed" family. */
export function isCorruptError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code === 'SQLITE_CORRUPT' || code.startsWith('SQLITE_CORRUPT_'));
}

export function readOnlyError(path: string, cause: unknown): StoreError {
  const dir = dirname(path);
  return new StoreError(
    'STORE_READ_ONLY',
    `${path} cannot be written (${(cause as Error).message}); meterd needs to write it and create files beside it in ${dir}. ` +
      `Check \`lsattr ${path}\` (immutable: \`chattr -i ${path}\`), \`findmnt -T ${dir}\` (mounted ro: remount it rw) ` +
      `and that the user running meterd owns ${dir}`,
    { cause },
  );
}

export function corruptError(path: string, problems: readonly string[], cause?: unknown): StoreError {
  const shown = problems.slice(0, 3).join('; ') + (problems.length > 3 ? `; … (${problems.length - 3} more)` : '');
  return new StoreError(
    'STORE_CORRUPT',
    `${path} is damaged (${shown}); nothing was started. Stop meterd, keep a copy of the file, then restore the last ` +
      `backup, or rescue what is readable: \`sqlite3 ${path} .recover > rescue.sql && sqlite3 ${path}.rescued < rescue.sql\` ` +
      `and move ${path}.rescued into place (remove the -wal and -shm files beside it first); \`meterd doctor\` lists the damage`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Takes the write lock and writes inside a transaction that is rolled back: SQLite opens a file it may not write
 * (immutable, read-only mount) read-only without saying so, and the first commit would be the first to fail.
 */
export function assertWritable(db: Database.Database, path: string): void {
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec('CREATE TABLE IF NOT EXISTS meterd_write_probe (x INTEGER) STRICT; DROP TABLE meterd_write_probe;');
    } finally {
      db.exec('ROLLBACK');
    }
  } catch (error) {
    if (isReadOnlyError(error)) throw readOnlyError(path, error);
    throw error;
  }
}

/**
 * `PRAGMA quick_check`: every page readable and every b-tree well formed (it skips the index-content comparison of
 * integrity_check, which is what makes it fast enough to run at every start).
 */
export function assertIntact(db: Database.Database, path: string): void {
  let problems: string[];
  try {
    problems = (db.pragma('quick_check', { simple: false }) as { quick_check: string }[]).map((row) => row.quick_check);
  } catch (error) {
    if (isCorruptError(error) || (error as { code?: unknown }).code === 'SQLITE_NOTADB') {
      throw corruptError(path, [(error as Error).message, ...unreadableTables(db)], error);
    }
    throw error;
  }
  if (problems.length !== 1 || problems[0] !== 'ok') throw corruptError(path, problems);
}

/** When quick_check itself gives up, name the tables that cannot be read, so the operator knows what is at stake. */
function unreadableTables(db: Database.Database): string[] {
  let names: string[];
  try {
    names = db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
  } catch {
    return ['the schema itself is unreadable'];
  }
  const damaged: string[] = [];
  for (const name of names) {
    try {
      db.prepare(`SELECT count(*) FROM "${name.replaceAll('"', '""')}" NOT INDEXED`).get();
    } catch {
      damaged.push(name);
    }
  }
  return damaged.length === 0 ? [] : [`unreadable table(s): ${damaged.join(', ')}`];
}
