import type { Connection, Tx } from './connection.js';
import { StoreError } from './errors.js';
import type { PointValue, Reading, StoredReading } from './types.js';

interface ReadingRow {
  id: number;
  meter_id: string;
  taken_at: number;
  values_json: string;
  unsynced: 0 | 1;
  seq: number | null;
  address: string | null;
}

const INSERT = 'INSERT INTO readings (meter_id, taken_at, values_json, unsynced, seq, address) VALUES (?, ?, ?, ?, ?, ?)';
const COLUMNS = 'id, meter_id, taken_at, values_json, unsynced, seq, address';

/** Stores a poll cycle's readings; they commit or roll back with everything else in `tx`. */
export function insertReadings(tx: Tx, readings: readonly Reading[]): void {
  const insert = tx.connection.statement<[string, number, string, 0 | 1, number | null, string | null]>(INSERT);
  for (const reading of readings) {
    checkReading(reading);
    insert.run(
      reading.meterId,
      reading.takenAt,
      JSON.stringify(reading.values),
      reading.unsynced === true ? 1 : 0,
      reading.seq ?? null,
      reading.address ?? null,
    );
  }
}

/** Past readings, for the CLI, fault detection and line loss. */
export class ReadingHistory {
  constructor(private readonly connection: Connection) {}

  /** The `seq` numbers stored between `fromSeq` and `toSeq`, ascending (the index alone answers it). */
  seqsBetween(fromSeq: number, toSeq: number): number[] {
    return this.connection
      .statement<[number, number], number>('SELECT seq FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq')
      .pluck()
      .all(fromSeq, toSeq);
  }

  /** Readings published with a `seq` from `fromSeq` to `toSeq`, by seq; at most `limit`. */
  bySeq(fromSeq: number, toSeq: number, limit = 10_000): StoredReading[] {
    return this.connection
      .statement<[number, number, number], ReadingRow>(`SELECT ${COLUMNS} FROM readings WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?`)
      .all(fromSeq, toSeq, limit)
      .map(toReading);
  }

  /** The newest reading time of any meter (epoch ms), or null: no right clock is before it. */
  newestTakenAt(): number | null {
    return this.connection.statement<[], { t: number | null }>('SELECT max(taken_at) AS t FROM readings').get()?.t ?? null;
  }

  /** The most recent reading of a meter by meter time, or null if it has none. */
  latest(meterId: string): StoredReading | null {
    const row = this.connection
      .statement<[string], ReadingRow>(`SELECT ${COLUMNS} FROM readings WHERE meter_id = ? ORDER BY taken_at DESC, id DESC LIMIT 1`)
      .get(meterId);
    return row === undefined ? null : toReading(row);
  }

  /** Readings of a meter taken at or after `sinceMs`, oldest first; at most `limit` of them. */
  since(meterId: string, sinceMs: number, limit = 10_000): StoredReading[] {
    return this.connection
      .statement<[string, number, number], ReadingRow>(
        `SELECT ${COLUMNS} FROM readings WHERE meter_id = ? AND taken_at >= ? ORDER BY taken_at, id LIMIT ?`,
      )
      .all(meterId, sinceMs, limit)
      .map(toReading);
  }
}

function toReading(row: ReadingRow): StoredReading {
  return {
    id: row.id,
    meterId: row.meter_id,
    takenAt: row.taken_at,
    values: JSON.parse(row.values_json) as Record<string, PointValue>,
    ...(row.unsynced === 1 ? { unsynced: true } : {}),
    ...(row.seq !== null ? { seq: row.seq } : {}),
    ...(row.address !== null ? { address: row.address } : {}),
  };
}

function checkReading(reading: Reading): void {
  if (!Number.isSafeInteger(reading.takenAt)) {
    throw new StoreError(
      'STORE_INVALID_VALUE',
      `reading of ${reading.meterId}: takenAt ${reading.takenAt} is not an epoch time in whole milliseconds`,
    );
  }
  for (const [point, value] of Object.entries(reading.values)) {
    // JSON would turn NaN and Infinity into null: a value that looks present but says nothing.
    if ('v' in value && typeof value.v === 'number' && !Number.isFinite(value.v)) {
      throw new StoreError(
        'STORE_INVALID_VALUE',
        `reading of ${reading.meterId}: point ${point} is ${value.v}; store a point that has no value as { error: '…' }`,
      );
    }
  }
}
