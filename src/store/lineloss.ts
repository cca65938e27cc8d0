import type { Tx } from './connection.js';

/**
 * The line-loss tables (migration 7): freezes as the meters gave them, figures per district and day or month with
 * their revision, the members' consumption per day, and the one line-loss alert a district may have raised.
 *
 * ```ts
 * store.transaction((tx) => {
 *   upsertFreeze(tx, { meterId: 'room-101', boundary: '2026-11-27', frozenAt: '2026-11-27T00:00', importCenti: 123456, readAt });
 *   const at = freezesAt(tx, '2026-11-27'); // every meter's freeze for that midnight
 * });
 * ```
 */

/** One daily freeze of one meter, as read. */
export interface StoredFreeze {
  readonly meterId: string;
  /** The local date whose 00:00 the freeze should carry ('2026-11-27'). */
  readonly boundary: string;
  /** What the meter said its freeze time was ('2026-11-27T00:00'); a day off is stored and left unused. */
  readonly frozenAt: string;
  /** Forward active energy total in 0.01 kWh. */
  readonly importCenti: number;
  /** Reverse active energy total in 0.01 kWh, where the profile reads it. */
  readonly exportCenti?: number;
  readonly readAt: number;
}

export type LinelossClass = 'qualified' | 'high' | 'negative' | 'not-computable';
export type LinelossPeriodKind = 'daily' | 'monthly';

/** A district's figure for a day or month, as last computed and published. */
export interface StoredFigure {
  readonly district: string;
  readonly kind: LinelossPeriodKind;
  /** 'YYYY-MM-DD' or 'YYYY-MM'. */
  readonly period: string;
  readonly revision: number;
  readonly class: LinelossClass;
  /** The published payload without `ts`. */
  readonly figure: Record<string, unknown>;
  readonly computedAt: number;
}

export interface StoredLinelossAlert {
  readonly district: string;
  readonly alertId: string;
  readonly kind: 'line-loss-high' | 'line-loss-negative';
  readonly raisedAt: number;
  /** The first day of the streak that raised it. */
  readonly sinceDate: string;
}

/** Records a freeze (a later read of the same meter and midnight replaces the earlier one). */
export function upsertFreeze(tx: Tx, f: StoredFreeze): void {
  tx.connection
    .statement<[string, string, string, number, number | null, number]>(
      `INSERT INTO lineloss_freezes (meter_id, boundary, frozen_at, import_centi, export_centi, read_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (meter_id, boundary) DO UPDATE SET frozen_at = excluded.frozen_at, import_centi = excluded.import_centi,
         export_centi = excluded.export_centi, read_at = excluded.read_at`,
    )
    .run(f.meterId, f.boundary, f.frozenAt, f.importCenti, f.exportCenti ?? null, f.readAt);
}

interface FreezeRow {
  meter_id: string;
  boundary: string;
  frozen_at: string;
  import_centi: number;
  export_centi: number | null;
  read_at: number;
}

const freezeOf = (r: FreezeRow): StoredFreeze => ({
  meterId: r.meter_id,
  boundary: r.boundary,
  frozenAt: r.frozen_at,
  importCenti: r.import_centi,
  ...(r.export_centi === null ? {} : { exportCenti: r.export_centi }),
  readAt: r.read_at,
});

/** Every meter's freeze for one midnight, by meter id. */
export function freezesAt(tx: Tx, boundary: string): Map<string, StoredFreeze> {
  const rows = tx.connection.statement<[string], FreezeRow>('SELECT * FROM lineloss_freezes WHERE boundary = ?').all(boundary);
  return new Map(rows.map((r) => [r.meter_id, freezeOf(r)]));
}

interface FigureRow {
  district: string;
  kind: LinelossPeriodKind;
  period: string;
  revision: number;
  class: LinelossClass;
  figure_json: string;
  computed_at: number;
}

const figureOf = (r: FigureRow): StoredFigure => ({
  district: r.district,
  kind: r.kind,
  period: r.period,
  revision: r.revision,
  class: r.class,
  figure: JSON.parse(r.figure_json) as Record<string, unknown>,
  computedAt: r.computed_at,
});

/** The figure of a district for a period, or null when none was computed. */
export function findFigure(tx: Tx, district: string, kind: LinelossPeriodKind, period: string): StoredFigure | null {
  const row = tx.connection
    .statement<[string, string, string], FigureRow>('SELECT * FROM lineloss_figures WHERE district = ? AND kind = ? AND period = ?')
    .get(district, kind, period);
  return row === undefined ? null : figureOf(row);
}

/** Records a figure, replacing the district's earlier revision of the same period. */
export function saveFigure(tx: Tx, f: StoredFigure): void {
  tx.connection
    .statement<[string, string, string, number, string, string, number]>(
      `INSERT INTO lineloss_figures (district, kind, period, revision, class, figure_json, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (district, kind, period) DO UPDATE SET revision = excluded.revision, class = excluded.class,
         figure_json = excluded.figure_json, computed_at = excluded.computed_at`,
    )
    .run(f.district, f.kind, f.period, f.revision, f.class, JSON.stringify(f.figure), f.computedAt);
}

/** A district's figures of one kind with `from <= period <= to` (either bound optional), oldest first. */
export function listFigures(tx: Tx, q: { district?: string; kind: LinelossPeriodKind; from?: string; to?: string }): StoredFigure[] {
  return tx.connection
    .statement<[string, string | null, string | null, string | null, string | null, string | null, string | null], FigureRow>(
      `SELECT * FROM lineloss_figures WHERE kind = ? AND (? IS NULL OR district = ?) AND (? IS NULL OR period >= ?)
         AND (? IS NULL OR period <= ?) ORDER BY district, period`,
    )
    .all(q.kind, q.district ?? null, q.district ?? null, q.from ?? null, q.from ?? null, q.to ?? null, q.to ?? null)
    .map(figureOf);
}

/** The latest daily period computed for a district, or null before the first. */
export function lastFigureDate(tx: Tx, district: string): string | null {
  return (
    tx.connection
      .statement<[string], string>("SELECT max(period) FROM lineloss_figures WHERE district = ? AND kind = 'daily'")
      .pluck()
      .get(district) ?? null
  );
}

/** Daily figures of a district not computable, or computed with members missing, with `period >= since`. */
export function incompleteDays(tx: Tx, district: string, since: string): StoredFigure[] {
  return tx.connection
    .statement<[string, string], FigureRow>(
      `SELECT * FROM lineloss_figures WHERE district = ? AND kind = 'daily' AND period >= ?
         AND (class = 'not-computable' OR json_array_length(figure_json, '$.missing') > 0) ORDER BY period`,
    )
    .all(district, since)
    .map(figureOf);
}

/** Replaces the members' consumption of one district and day (0.01 kWh each). */
export function saveMemberDays(tx: Tx, district: string, date: string, kwhCenti: ReadonlyMap<string, number>): void {
  const c = tx.connection;
  c.statement<[string, string]>('DELETE FROM lineloss_member_days WHERE district = ? AND date = ?').run(district, date);
  const insert = c.statement<[string, string, string, number]>(
    'INSERT INTO lineloss_member_days (district, date, meter_id, kwh_centi) VALUES (?, ?, ?, ?)',
  );
  for (const [meterId, centi] of kwhCenti) insert.run(district, date, meterId, centi);
}

/** The members' consumption of a district for `from <= date <= to`: date → meter → 0.01 kWh. */
export function memberDays(tx: Tx, district: string, from: string, to: string): Map<string, Map<string, number>> {
  const rows = tx.connection
    .statement<[string, string, string], { date: string; meter_id: string; kwh_centi: number }>(
      'SELECT date, meter_id, kwh_centi FROM lineloss_member_days WHERE district = ? AND date >= ? AND date <= ?',
    )
    .all(district, from, to);
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    const day = out.get(r.date) ?? new Map<string, number>();
    out.set(r.date, day);
    day.set(r.meter_id, r.kwh_centi);
  }
  return out;
}

/** The district's raised line-loss alert, or null. */
export function activeLinelossAlert(tx: Tx, district: string): StoredLinelossAlert | null {
  const r = tx.connection
    .statement<[string], { district: string; alert_id: string; kind: StoredLinelossAlert['kind']; raised_at: number; since_date: string }>(
      'SELECT * FROM lineloss_alerts WHERE district = ?',
    )
    .get(district);
  return r === undefined
    ? null
    : { district: r.district, alertId: r.alert_id, kind: r.kind, raisedAt: r.raised_at, sinceDate: r.since_date };
}

export function raiseLinelossAlert(tx: Tx, a: StoredLinelossAlert): void {
  tx.connection
    .statement<[string, string, string, number, string]>(
      'INSERT OR REPLACE INTO lineloss_alerts (district, alert_id, kind, raised_at, since_date) VALUES (?, ?, ?, ?, ?)',
    )
    .run(a.district, a.alertId, a.kind, a.raisedAt, a.sinceDate);
}

export function clearLinelossAlert(tx: Tx, district: string): void {
  tx.connection.statement<[string]>('DELETE FROM lineloss_alerts WHERE district = ?').run(district);
}

/** Deletes freezes and member days older than `beforeDate` (figures are kept: they are small and the history). */
export function pruneLineloss(tx: Tx, beforeDate: string): number {
  const c = tx.connection;
  return (
    c.statement<[string]>('DELETE FROM lineloss_freezes WHERE boundary < ?').run(beforeDate).changes +
    c.statement<[string]>('DELETE FROM lineloss_member_days WHERE date < ?').run(beforeDate).changes
  );
}
