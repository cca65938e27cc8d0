import type { Connection, Tx } from './connection.js';

/** One alert episode: raised once, cleared once (by its detector or by a person). */
export interface AlertRecord {
  readonly alertId: string;
  readonly meterId: string;
  readonly kind: string;
  readonly severity: string;
  readonly raisedAt: number;
  readonly clearedAt: number | null;
  /** `detector`, or the operator who acknowledged it. */
  readonly clearedBy: string | null;
  readonly evidence: Readonly<Record<string, unknown>>;
  /** Raised while the gateway's own clock was not known to be right: the times may be wrong. */
  readonly unsynced: boolean;
}

/** A line of an alert's repair history (故障报修): received, acknowledged, what was done. */
export interface AlertNote {
  readonly alertId: string;
  readonly at: number;
  readonly operator: string;
  readonly action: 'ack' | 'note';
  readonly note: string | null;
}

export interface ClockSyncRecord {
  readonly busId: string;
  /** The local date (gateway.timeZone) of the broadcast: one per bus and day. */
  readonly localDay: string;
  readonly at: number;
  /** The meters whose drift asked for it, with their drift in seconds. */
  readonly meters: Readonly<Record<string, number>>;
}

interface AlertRow {
  id: string;
  meter_id: string;
  kind: string;
  severity: string;
  raised_at: number;
  cleared_at: number | null;
  cleared_by: string | null;
  evidence_json: string;
  unsynced: 0 | 1;
}

const COLUMNS = 'id, meter_id, kind, severity, raised_at, cleared_at, cleared_by, evidence_json, unsynced';

export function insertAlert(tx: Tx, a: Omit<AlertRecord, 'clearedAt' | 'clearedBy'>): void {
  tx.connection
    .statement<[string, string, string, string, number, string, 0 | 1]>(
      'INSERT INTO alerts (id, meter_id, kind, severity, raised_at, evidence_json, unsynced) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    .run(a.alertId, a.meterId, a.kind, a.severity, a.raisedAt, JSON.stringify(a.evidence), a.unsynced ? 1 : 0);
}

/** Marks an active alert cleared; false when it was not active (cleared already, or unknown). */
export function clearAlert(tx: Tx, alertId: string, at: number, by: string): boolean {
  const r = tx.connection
    .statement<[number, string, string]>('UPDATE alerts SET cleared_at = ?, cleared_by = ? WHERE id = ? AND cleared_at IS NULL')
    .run(at, by, alertId);
  return r.changes === 1;
}

/** An active alert got worse within its episode (an over-difference became a runaway). */
export function updateAlert(tx: Tx, alertId: string, severity: string, evidence: Readonly<Record<string, unknown>>): void {
  tx.connection
    .statement<[string, string, string]>('UPDATE alerts SET severity = ?, evidence_json = ? WHERE id = ?')
    .run(severity, JSON.stringify(evidence), alertId);
}

export function addAlertNote(tx: Tx, n: AlertNote): void {
  tx.connection
    .statement<[string, number, string, string, string | null]>(
      'INSERT INTO alert_notes (alert_id, at, operator, action, note) VALUES (?, ?, ?, ?, ?)',
    )
    .run(n.alertId, n.at, n.operator, n.action, n.note);
}

export function saveDetectorMemory(tx: Tx, meterId: string, memoryJson: string): void {
  tx.connection
    .statement<[string, string, number]>(
      `INSERT INTO alert_detectors (meter_id, memory_json, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (meter_id) DO UPDATE SET memory_json = excluded.memory_json, updated_at = excluded.updated_at`,
    )
    .run(meterId, memoryJson, tx.connection.clock.now());
}

export function recordClockSync(tx: Tx, s: ClockSyncRecord): boolean {
  const r = tx.connection
    .statement<[string, string, number, string]>(
      'INSERT INTO clock_syncs (bus_id, local_day, at, meters_json) VALUES (?, ?, ?, ?) ON CONFLICT (bus_id, local_day) DO NOTHING',
    )
    .run(s.busId, s.localDay, s.at, JSON.stringify(s.meters));
  return r.changes === 1;
}

/** Alerts, their repair notes, the detectors' memory and the clock broadcasts, read side. */
export class AlertStore {
  constructor(private readonly connection: Connection) {}

  /** Active alerts, oldest first. */
  active(): AlertRecord[] {
    return this.connection
      .statement<[], AlertRow>(`SELECT ${COLUMNS} FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at, id`)
      .all()
      .map(toRecord);
  }

  activeCount(): number {
    return this.connection.statement<[], { n: number }>('SELECT count(*) AS n FROM alerts WHERE cleared_at IS NULL').get()!.n;
  }

  get(alertId: string): AlertRecord | null {
    const row = this.connection.statement<[string], AlertRow>(`SELECT ${COLUMNS} FROM alerts WHERE id = ?`).get(alertId);
    return row === undefined ? null : toRecord(row);
  }

  /** Alerts active and past, newest first; of one meter when given. */
  history(opts: { meterId?: string; limit?: number } = {}): AlertRecord[] {
    const limit = opts.limit ?? 1000;
    const rows =
      opts.meterId === undefined
        ? this.connection.statement<[number], AlertRow>(`SELECT ${COLUMNS} FROM alerts ORDER BY raised_at DESC, id DESC LIMIT ?`).all(limit)
        : this.connection
            .statement<[string, number], AlertRow>(
              `SELECT ${COLUMNS} FROM alerts WHERE meter_id = ? ORDER BY raised_at DESC, id DESC LIMIT ?`,
            )
            .all(opts.meterId, limit);
    return rows.map(toRecord);
  }

  notes(alertId: string): AlertNote[] {
    return this.connection
      .statement<[string], { alert_id: string; at: number; operator: string; action: 'ack' | 'note'; note: string | null }>(
        'SELECT alert_id, at, operator, action, note FROM alert_notes WHERE alert_id = ? ORDER BY at, id',
      )
      .all(alertId)
      .map((r) => ({ alertId: r.alert_id, at: r.at, operator: r.operator, action: r.action, note: r.note }));
  }

  /** Every meter's detector memory, as stored (JSON text). */
  detectorMemories(): Map<string, string> {
    const rows = this.connection
      .statement<[], { meter_id: string; memory_json: string }>('SELECT meter_id, memory_json FROM alert_detectors')
      .all();
    return new Map(rows.map((r) => [r.meter_id, r.memory_json]));
  }

  clockSync(busId: string, localDay: string): ClockSyncRecord | null {
    const row = this.connection
      .statement<[string, string], { bus_id: string; local_day: string; at: number; meters_json: string }>(
        'SELECT bus_id, local_day, at, meters_json FROM clock_syncs WHERE bus_id = ? AND local_day = ?',
      )
      .get(busId, localDay);
    return row === undefined ? null : { busId: row.bus_id, localDay: row.local_day, at: row.at, meters: JSON.parse(row.meters_json) };
  }

  clockSyncs(): ClockSyncRecord[] {
    return this.connection
      .statement<[], { bus_id: string; local_day: string; at: number; meters_json: string }>(
        'SELECT bus_id, local_day, at, meters_json FROM clock_syncs ORDER BY at',
      )
      .all()
      .map((row) => ({ busId: row.bus_id, localDay: row.local_day, at: row.at, meters: JSON.parse(row.meters_json) }));
  }
}

function toRecord(r: AlertRow): AlertRecord {
  return {
    alertId: r.id,
    meterId: r.meter_id,
    kind: r.kind,
    severity: r.severity,
    raisedAt: r.raised_at,
    clearedAt: r.cleared_at,
    clearedBy: r.cleared_by,
    evidence: JSON.parse(r.evidence_json) as Record<string, unknown>,
    unsynced: r.unsynced === 1,
  };
}
