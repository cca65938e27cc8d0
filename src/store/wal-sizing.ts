/**
 * How big the WAL may grow before it is checkpointed, and what it is cut back to afterwards, for the volume the
 * database lives on. SQLite's default (1000 pages, about 4 MB) does not fit a small volume at all: on a 2 MiB one the
 * WAL alone fills it before the first checkpoint.
 */
export interface WalSizing {
  /** `PRAGMA wal_autocheckpoint`: checkpoint after a commit that leaves the WAL at least this many pages long. */
  readonly autocheckpointPages: number;
  /**
   * `PRAGMA journal_size_limit`: after a checkpoint resets the WAL it is truncated to this. The WAL keeps this much
   * disk for itself, so deletes (acknowledged outbox rows) still commit when the volume is full.
   */
  readonly journalSizeLimitBytes: number;
}

/** SQLite's default, kept on any volume large enough for it. */
const MAX_PAGES = 1000;
/** Below this a checkpoint would follow nearly every commit. */
const MIN_PAGES = 32;
/** The WAL may take this share of the volume. */
const VOLUME_SHARE = 1 / 16;
/** A WAL frame is a page plus a 24-byte header; the file has a 32-byte header. */
const FRAME_HEADER = 24;
const FILE_HEADER = 32;

export function walSizing(volumeBytes: number, pageSize: number): WalSizing {
  const pages = Math.max(MIN_PAGES, Math.min(MAX_PAGES, Math.floor((volumeBytes * VOLUME_SHARE) / pageSize)));
  return { autocheckpointPages: pages, journalSizeLimitBytes: walBytes(pages, pageSize) };
}

/** The size of a WAL of `pages` frames: what must be free on the volume for the WAL to reach its checkpoint. */
export function walBytes(pages: number, pageSize: number): number {
  return FILE_HEADER + pages * (pageSize + FRAME_HEADER);
}
