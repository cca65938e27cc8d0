import { statSync } from 'node:fs';
import { pruneCommands } from './commands.js';
import type { Connection } from './connection.js';

export interface LimitsPolicy {
  /** Readings taken before now − this many days are deleted. */
  readonly telemetryRetentionDays: number;
  /** Live data plus WAL above this drops the oldest telemetry; undefined means no cap. */
  readonly maxBytes: number | undefined;
  /**
   * Records of finished station commands received before now − this are deleted, never inside the replay window
   * (commands.ts `pruneCommands`). Undefined keeps them all.
   */
  readonly commandsKeepForMs?: number;
}

export interface LimitsResult {
  /** Undelivered telemetry messages dropped from the outbox to get under the cap. */
  readonly prunedTelemetry: number;
  /** Readings deleted, by age or by the cap. */
  readonly prunedReadings: number;
  /** Live data pages plus WAL after pruning. */
  readonly usedBytes: number;
  /** Still above maxBytes with no telemetry left to drop: the rest is data the store never drops. */
  readonly overCap: boolean;
  /** Records of finished station commands deleted by age. */
  readonly prunedCommands: number;
}

const DAY_MS = 86_400_000;
const READINGS_BEFORE = 'DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE taken_at < ? ORDER BY taken_at LIMIT ?)';
const READINGS_UP_TO = 'DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE taken_at <= ? ORDER BY taken_at LIMIT ?)';
const OLDEST_READINGS = 'DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY taken_at LIMIT ?)';
const OLDEST_TELEMETRY_MESSAGES =
  "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE class = 'telemetry' ORDER BY id LIMIT ?) RETURNING created_at";
const MIN_BATCH = 100;
const MAX_BATCH = 10_000;

/**
 * Applies the retention window and the disk cap. Telemetry (outbox rows of class `telemetry`, and readings) is the
 * only thing ever deleted here; state, credit, alert, report and reply messages wait for their PUBACK however full
 * the disk is.
 */
export function enforceLimits(connection: Connection, policy: LimitsPolicy): LimitsResult {
  const cutoff = connection.clock.now() - policy.telemetryRetentionDays * DAY_MS;
  let prunedReadings = 0;
  for (;;) {
    const deleted = deleteBatch(connection, READINGS_BEFORE, cutoff, MAX_BATCH);
    prunedReadings += deleted;
    if (deleted < MAX_BATCH) break;
  }
  const prunedCommands =
    policy.commandsKeepForMs === undefined ? 0 : pruneCommands(connection, connection.clock.now() - policy.commandsKeepForMs);

  let usage = measure(connection);
  let prunedTelemetry = 0;
  const maxBytes = policy.maxBytes;
  if (maxBytes !== undefined && usage.dataBytes + usage.walBytes > maxBytes) {
    let walPinnedWarned = false;
    const rowsPerByte = rowDensity(connection, usage.dataBytes);
    for (;;) {
      // Deleting rows only frees pages; the WAL shrinks only by a checkpoint. A reader in another process can pin
      // the WAL, and then deleting telemetry would not help, so the WAL counts only when it could be reset.
      const walPinned = checkpoint(connection);
      usage = measure(connection);
      if (walPinned && !walPinnedWarned) {
        walPinnedWarned = true;
        connection.logger.warn(
          { walBytes: usage.walBytes },
          'WAL could not be checkpointed (another reader holds it); the disk cap counts data pages only',
        );
      }
      const over = usage.dataBytes + (walPinned ? 0 : usage.walBytes) - maxBytes;
      if (over <= 0) break;
      const batch = Math.min(MAX_BATCH, Math.max(MIN_BATCH, Math.ceil(over * rowsPerByte)));
      const pruned = pruneOldestTelemetry(connection, batch);
      if (pruned.readings + pruned.messages === 0) break;
      prunedReadings += pruned.readings;
      prunedTelemetry += pruned.messages;
    }
    if (prunedTelemetry > 0) {
      connection.logger.warn(
        { prunedTelemetry, prunedReadings, usedBytes: usage.dataBytes + usage.walBytes, maxBytes },
        'disk cap reached: dropped the oldest undelivered telemetry; the station will see a gap in seq',
      );
    }
  }
  const usedBytes = usage.dataBytes + usage.walBytes;
  return { prunedTelemetry, prunedReadings, usedBytes, overCap: maxBytes !== undefined && usedBytes > maxBytes, prunedCommands };
}

interface Usage {
  /** Pages holding data: freed pages are reused before the file grows, so they do not count. */
  readonly dataBytes: number;
  readonly walBytes: number;
}

function measure(connection: Connection): Usage {
  const pragma = (name: string): number => connection.db.pragma(name, { simple: true }) as number;
  const pageSize = pragma('page_size');
  return {
    dataBytes: (pragma('page_count') - pragma('freelist_count')) * pageSize,
    walBytes: fileSize(`${connection.path}-wal`),
  };
}

/** Returns true when the WAL could not be fully reset because another connection is reading from it. */
function checkpoint(connection: Connection): boolean {
  const [result] = connection.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  return result !== undefined && result.busy !== 0;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/** Rows per byte of live data, to size delete batches so that a large overshoot takes few checkpoints. */
function rowDensity(connection: Connection, dataBytes: number): number {
  const rows =
    connection.statement<[], number>('SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM outbox)').pluck().get() ?? 0;
  return dataBytes > 0 ? rows / dataBytes : 0;
}

/**
 * One step of the cap, oldest telemetry first. Reading history older than every undelivered message goes before any
 * message (the station has it already); after that messages and readings go together, one time slice at a time, so
 * the gateway keeps the same recent window the station will receive.
 */
function pruneOldestTelemetry(connection: Connection, batch: number): { readings: number; messages: number } {
  const oldestMessageAt = connection
    .statement<[], number>("SELECT created_at FROM outbox WHERE class = 'telemetry' ORDER BY id LIMIT 1")
    .pluck()
    .get();
  if (oldestMessageAt === undefined) {
    return { readings: deleteBatch(connection, OLDEST_READINGS, batch), messages: 0 };
  }
  const olderReadings = deleteBatch(connection, READINGS_BEFORE, oldestMessageAt, batch);
  if (olderReadings > 0) return { readings: olderReadings, messages: 0 };

  const dropped = connection
    .statement<[number], number>(OLDEST_TELEMETRY_MESSAGES)
    .pluck()
    .all(Math.ceil(batch / 2));
  const sliceEnd = Math.max(...dropped);
  return { readings: deleteBatch(connection, READINGS_UP_TO, sliceEnd, batch), messages: dropped.length };
}

/** One statement, one autocommit: pollers wait for a batch at most, never for the whole trim. */
function deleteBatch(connection: Connection, sql: string, ...params: number[]): number {
  return connection.statement<number[]>(sql).run(...params).changes;
}
