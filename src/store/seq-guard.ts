import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { StoreError } from './errors.js';

/**
 * A high-water mark of every `seq` stream, kept outside the database so that losing the WAL cannot roll it back.
 *
 * `seq` lives in the `sequences` table; a commit is in the WAL first. When the WAL is lost (a backup or restore that
 * copies only the `.db`, a cleanup script, fsck after a power cut, or the tail of the WAL after a power cut), the
 * table goes back to what was checkpointed, and the next readings would be published under numbers the station
 * already holds and drops as repeats. The side file `<db>-seq` keeps:
 *
 * - `reserved`: per stream, a number no committed `seq` exceeds. It is raised in blocks of RESERVE_BLOCK, written and
 *   fsynced inside the transaction that first needs the new block, before that transaction commits;
 * - `closed`: per stream, the exact value at the last clean close (the last connection folded the WAL into the file),
 *   or null while a connection is open or after a crash;
 * - `bootId`: the kernel's boot id while a connection is open, to tell a process crash (the WAL, in the page cache,
 *   is intact) from a machine that restarted under an open store (the WAL tail may be gone).
 *
 * At open, a rewind is certain when the table is below the clean value or more than a block below `reserved`, or
 * when the WAL that an unclean stop must leave behind is missing; it is possible when the machine restarted under
 * an open store. Then the stream jumps to `reserved`: the station sees a gap (honest) instead of a reuse.
 */

/** Numbers reserved at a time: one fsync of the side file per this many readings. */
export const RESERVE_BLOCK = 1000;
/** The file is always rewritten in place at this size, so a full disk cannot stop the rewrite. */
const FILE_BYTES = 512;
const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

interface GuardFile {
  readonly version: 1;
  readonly reserved: Record<string, number>;
  readonly closed: Record<string, number> | null;
  readonly bootId: string | null;
}

/** What the files beside the database looked like before SQLite opened it (opening creates a WAL). */
export interface FilesBeforeOpen {
  readonly db: boolean;
  readonly wal: boolean;
}

export interface SeqRewind {
  readonly stream: string;
  /** The value the database held at open. */
  readonly stored: number;
  /** The value it was moved to: the next message gets this + 1. */
  readonly resumedAfter: number;
  readonly certain: boolean;
  readonly reason: string;
}

export function filesBeforeOpen(path: string): FilesBeforeOpen {
  return { db: existsSync(path), wal: existsSync(`${path}-wal`) };
}

export class SeqGuard {
  readonly #file: string;
  readonly #bootId: string | null;
  #reserved: Record<string, number>;

  private constructor(file: string, reserved: Record<string, number>, bootId: string | null) {
    this.#file = file;
    this.#reserved = reserved;
    this.#bootId = bootId;
  }

  /**
   * Reads the side file, moves any stream that went back past what may have been published, and marks the store open.
   * Returns the guard and what it moved (also logged).
   */
  static open(db: Database.Database, path: string, before: FilesBeforeOpen, logger: Logger): { guard: SeqGuard; rewinds: SeqRewind[] } {
    const file = `${path}-seq`;
    const bootId = readBootId();
    const saved = readGuardFile(file, logger);
    const stored = new Map(
      db
        .prepare<[], { stream: string; value: number }>('SELECT stream, value FROM sequences')
        .all()
        .map((row) => [row.stream, row.value]),
    );
    const rewinds: SeqRewind[] = [];
    if (saved !== null) {
      for (const [stream, reserved] of Object.entries(saved.reserved)) {
        const value = stored.get(stream) ?? 0;
        const verdict = judge(value, reserved, saved, stream, before, bootId);
        if (verdict === null) continue;
        rewinds.push({ stream, stored: value, resumedAfter: verdict.resumeAfter, certain: verdict.certain, reason: verdict.reason });
        stored.set(stream, verdict.resumeAfter);
      }
    }
    if (rewinds.length > 0) {
      const set = db.prepare<[string, number]>(
        'INSERT INTO sequences (stream, value) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET value = excluded.value',
      );
      db.transaction(() => {
        for (const r of rewinds) set.run(r.stream, r.resumedAfter);
      }).immediate();
      for (const r of rewinds) {
        const fields = { code: 'STORE_SEQ_REWOUND', stream: r.stream, stored: r.stored, next: r.resumedAfter + 1, reason: r.reason, path };
        if (r.certain) {
          logger.error(fields, `seq of '${r.stream}' went back (${r.reason}); skipping to ${r.resumedAfter + 1} so no number is reused`);
        } else {
          logger.warn(
            fields,
            `seq of '${r.stream}' may have gone back (${r.reason}); skipping to ${r.resumedAfter + 1} so no number is reused`,
          );
        }
      }
    }
    const reserved: Record<string, number> = {};
    for (const stream of new Set([...Object.keys(saved?.reserved ?? {}), ...stored.keys()])) {
      reserved[stream] = Math.max(saved?.reserved[stream] ?? 0, (stored.get(stream) ?? 0) + RESERVE_BLOCK);
    }
    const guard = new SeqGuard(file, reserved, bootId);
    guard.#write(null);
    return { guard, rewinds };
  }

  /** Called with each number taken, inside its transaction: the side file covers it before the commit. */
  cover(stream: string, seq: number): void {
    if (seq <= (this.#reserved[stream] ?? 0)) return;
    this.#reserved = { ...this.#reserved, [stream]: seq + RESERVE_BLOCK - 1 };
    this.#write(null);
  }

  /**
   * After the last connection closed (the WAL is folded in and gone): record the exact values, so the next open can
   * tell a rewind to the very number.
   */
  markClosed(values: Readonly<Record<string, number>>): void {
    const reserved = { ...this.#reserved };
    for (const [stream, value] of Object.entries(values)) reserved[stream] = Math.max(reserved[stream] ?? 0, value);
    this.#reserved = reserved;
    this.#write({ ...values });
  }

  #write(closed: Record<string, number> | null): void {
    const body: GuardFile = { version: 1, reserved: this.#reserved, closed, bootId: closed === null ? this.#bootId : null };
    const text = JSON.stringify(body);
    if (Buffer.byteLength(text) >= FILE_BYTES) {
      throw new StoreError('STORE_INVALID_VALUE', `too many seq streams for ${this.#file} (${Object.keys(this.#reserved).length})`);
    }
    const bytes = Buffer.alloc(FILE_BYTES, ' ');
    bytes.write(text, 0, 'utf8');
    bytes[FILE_BYTES - 1] = 0x0a;
    // In place, same size: no new blocks are needed, so it works on a full disk as long as the file exists.
    const fd = openSync(this.#file, existsSync(this.#file) ? 'r+' : 'w');
    try {
      writeSync(fd, bytes, 0, FILE_BYTES, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

function judge(
  value: number,
  reserved: number,
  saved: GuardFile,
  stream: string,
  before: FilesBeforeOpen,
  bootId: string | null,
): { resumeAfter: number; certain: boolean; reason: string } | null {
  const closed = saved.closed?.[stream];
  if (closed !== undefined) {
    // A clean close recorded the exact value: nothing above it was ever taken.
    return value < closed
      ? { resumeAfter: closed, certain: true, reason: `the database holds ${value}, its last clean close recorded ${closed}` }
      : null;
  }
  if (value < reserved - RESERVE_BLOCK) {
    return {
      resumeAfter: reserved,
      certain: true,
      reason: `the database holds ${value}, more than a block below the reserved ${reserved}`,
    };
  }
  if (before.db && !before.wal) {
    return {
      resumeAfter: reserved,
      certain: true,
      reason: 'the WAL of an unclean stop is missing (deleted, or only the .db was restored)',
    };
  }
  if (saved.bootId !== null && bootId !== null && saved.bootId !== bootId) {
    return {
      resumeAfter: reserved,
      certain: false,
      reason: 'the machine restarted while the store was open (power cut?), so the end of the WAL may be lost',
    };
  }
  return null;
}

function readGuardFile(file: string, logger: Logger): GuardFile | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<GuardFile>;
    if (parsed.version !== 1 || typeof parsed.reserved !== 'object' || parsed.reserved === null) throw new Error('not a version 1 file');
    for (const v of Object.values(parsed.reserved)) if (!Number.isSafeInteger(v)) throw new Error('a reserved value is not an integer');
    return { version: 1, reserved: parsed.reserved, closed: parsed.closed ?? null, bootId: parsed.bootId ?? null };
  } catch (error) {
    logger.error(
      { code: 'STORE_SEQ_GUARD_UNREADABLE', file, err: error },
      'the seq high-water mark cannot be read; starting a new one (a rewind before now cannot be detected)',
    );
    return null;
  }
}

function readBootId(): string | null {
  try {
    return readFileSync(BOOT_ID_PATH, 'utf8').trim() || null;
  } catch {
    return null;
  }
}
