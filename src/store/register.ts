import type { Connection, Tx } from './connection.js';
import { StoreError } from './errors.js';

/**
 * The meter register (计量装置台账, docs/lifecycle.md): which physical meter (asset) serves which service point (a
 * configured meter id), from when to when, with its readings at install and removal.
 */

/** A meter's registers at install or removal. Energy in kWh; balance and overdraft in ledger units (fen or 0.01 kWh). */
export interface AssetReading {
  readonly importKwh: number | null;
  readonly exportKwh: number | null;
  readonly balance: number | null;
  readonly overdraft: number | null;
  readonly purchaseCount: number | null;
}

/** `config`: registered from the config at first start (no reading); `read`: read off the wire; `manual`: off the display. */
export type ReadingSource = 'config' | 'read' | 'manual';

export interface MeterAsset {
  readonly id: number;
  readonly pointId: string;
  readonly busId: string;
  /** DL/T 645: the 12-digit address; Modbus: `unit N`. */
  readonly address: string;
  readonly assetNo: string | null;
  readonly profile: string;
  readonly installedAt: number;
  readonly initial: AssetReading | null;
  readonly initialSource: ReadingSource;
  readonly removedAt: number | null;
  readonly final: AssetReading | null;
  readonly finalSource: Exclude<ReadingSource, 'config'> | null;
  /** Why it was removed, and by whom (or who installed it, for an asset put up by a replacement). */
  readonly reason: string | null;
  readonly operator: string | null;
  readonly requestId: string | null;
  readonly replacedBy: number | null;
}

export interface NewAsset {
  readonly pointId: string;
  readonly busId: string;
  readonly address: string;
  readonly assetNo?: string;
  readonly profile: string;
  readonly installedAt: number;
  readonly initial?: AssetReading;
  readonly initialSource: ReadingSource;
  readonly operator?: string;
  readonly requestId?: string;
}

export interface AssetRemoval {
  readonly removedAt: number;
  readonly final: AssetReading | null;
  readonly finalSource: 'read' | 'manual' | null;
  readonly reason: string;
  readonly operator: string;
  readonly requestId: string;
}

interface AssetRow {
  id: number;
  point_id: string;
  bus_id: string;
  address: string;
  asset_no: string | null;
  profile: string;
  installed_at: number;
  initial_json: string | null;
  initial_source: ReadingSource;
  removed_at: number | null;
  final_json: string | null;
  final_source: 'read' | 'manual' | null;
  reason: string | null;
  operator: string | null;
  request_id: string | null;
  replaced_by: number | null;
}

/**
 * Binds an asset to its point. Refused (STORE_CONFLICT) while the point has an installed asset or the address is
 * installed at another point: no address is ever bound to two points at once (a unique index says so too).
 */
export function installAsset(tx: Tx, a: NewAsset): MeterAsset {
  const c = tx.connection;
  const holder = activeAt(c, a.busId, a.address);
  if (holder)
    throw new StoreError(
      'STORE_CONFLICT',
      `address ${a.address} on bus ${a.busId} is installed at point ${holder.pointId} (asset ${holder.id})`,
    );
  const current = activeOf(c, a.pointId);
  if (current) throw new StoreError('STORE_CONFLICT', `point ${a.pointId} already has asset ${current.id} (${current.address}) installed`);
  const id = Number(
    c
      .statement(
        `INSERT INTO meter_assets (point_id, bus_id, address, asset_no, profile, installed_at, initial_json, initial_source, operator, request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        a.pointId,
        a.busId,
        a.address,
        a.assetNo ?? null,
        a.profile,
        a.installedAt,
        a.initial ? JSON.stringify(a.initial) : null,
        a.initialSource,
        a.operator ?? null,
        a.requestId ?? null,
      ).lastInsertRowid,
  );
  return byId(c, id)!;
}

/** Takes an installed asset off its point with its final reading, why and by whom. */
export function removeAsset(tx: Tx, id: number, r: AssetRemoval, replacedBy?: number): MeterAsset {
  const c = tx.connection;
  const current = byId(c, id);
  if (!current) throw new StoreError('STORE_INVALID_VALUE', `no meter asset ${id}`);
  if (current.removedAt !== null) throw new StoreError('STORE_CONFLICT', `meter asset ${id} (${current.address}) was already removed`);
  c.statement(
    `UPDATE meter_assets SET removed_at = ?, final_json = ?, final_source = ?, reason = ?, operator = ?, request_id = ?, replaced_by = ?
     WHERE id = ?`,
  ).run(r.removedAt, r.final ? JSON.stringify(r.final) : null, r.finalSource, r.reason, r.operator, r.requestId, replacedBy ?? null, id);
  return byId(c, id)!;
}

/** Links a removed asset to the one that replaced it (the two rows are written in one transaction). */
export function linkSuccessor(tx: Tx, removedId: number, successorId: number): void {
  tx.connection.statement('UPDATE meter_assets SET replaced_by = ? WHERE id = ?').run(successorId, removedId);
}

/** Reads of the register. */
export class MeterRegister {
  constructor(private readonly connection: Connection) {}

  /** The asset installed at a point now, or null. */
  active(pointId: string): MeterAsset | null {
    return activeOf(this.connection, pointId);
  }

  /** Every installed asset, by point. */
  installed(): Map<string, MeterAsset> {
    const rows = this.connection.statement<[], AssetRow>('SELECT * FROM meter_assets WHERE removed_at IS NULL ORDER BY point_id').all();
    return new Map(rows.map((r) => [r.point_id, toAsset(r)]));
  }

  /** The asset installed at this address on this bus, at whatever point. */
  atAddress(busId: string, address: string): MeterAsset | null {
    return activeAt(this.connection, busId, address);
  }

  /** Every asset a point ever had, oldest first. */
  history(pointId: string): MeterAsset[] {
    return this.connection
      .statement<[string], AssetRow>('SELECT * FROM meter_assets WHERE point_id = ? ORDER BY id')
      .all(pointId)
      .map(toAsset);
  }

  /** Every asset of every point, by point and then oldest first (the books' counter check per meter). */
  all(): MeterAsset[] {
    return this.connection.statement<[], AssetRow>('SELECT * FROM meter_assets ORDER BY point_id, id').all().map(toAsset);
  }

  /** The assets of a point that were in service at some time in [since, until). */
  inService(pointId: string, since: number, until: number): MeterAsset[] {
    return this.connection
      .statement<[string, number, number], AssetRow>(
        'SELECT * FROM meter_assets WHERE point_id = ? AND installed_at < ? AND (removed_at IS NULL OR removed_at >= ?) ORDER BY id',
      )
      .all(pointId, until, since)
      .map(toAsset);
  }

  byId(id: number): MeterAsset | null {
    return byId(this.connection, id);
  }

  /** Assets taken down in [since, until) with the first reading of the meter that replaced each: what line loss needs. */
  swapsBetween(
    since: number,
    until: number,
  ): { pointId: string; removedAt: number; final: AssetReading | null; initial: AssetReading | null }[] {
    return this.connection
      .statement<[number, number], { point_id: string; removed_at: number; final_json: string | null; initial_json: string | null }>(
        `SELECT o.point_id, o.removed_at, o.final_json, n.initial_json FROM meter_assets o JOIN meter_assets n ON n.id = o.replaced_by
         WHERE o.removed_at >= ? AND o.removed_at < ? ORDER BY o.removed_at, o.id`,
      )
      .all(since, until)
      .map((r) => ({
        pointId: r.point_id,
        removedAt: r.removed_at,
        final: r.final_json === null ? null : (JSON.parse(r.final_json) as AssetReading),
        initial: r.initial_json === null ? null : (JSON.parse(r.initial_json) as AssetReading),
      }));
  }
}

function activeOf(c: Connection, pointId: string): MeterAsset | null {
  const row = c.statement<[string], AssetRow>('SELECT * FROM meter_assets WHERE point_id = ? AND removed_at IS NULL').get(pointId);
  return row ? toAsset(row) : null;
}

function activeAt(c: Connection, busId: string, address: string): MeterAsset | null {
  const row = c
    .statement<[string, string], AssetRow>('SELECT * FROM meter_assets WHERE bus_id = ? AND address = ? AND removed_at IS NULL')
    .get(busId, address);
  return row ? toAsset(row) : null;
}

function byId(c: Connection, id: number): MeterAsset | null {
  const row = c.statement<[number], AssetRow>('SELECT * FROM meter_assets WHERE id = ?').get(id);
  return row ? toAsset(row) : null;
}

function toAsset(r: AssetRow): MeterAsset {
  return {
    id: r.id,
    pointId: r.point_id,
    busId: r.bus_id,
    address: r.address,
    assetNo: r.asset_no,
    profile: r.profile,
    installedAt: r.installed_at,
    initial: r.initial_json === null ? null : (JSON.parse(r.initial_json) as AssetReading),
    initialSource: r.initial_source,
    removedAt: r.removed_at,
    final: r.final_json === null ? null : (JSON.parse(r.final_json) as AssetReading),
    finalSource: r.final_source,
    reason: r.reason,
    operator: r.operator,
    requestId: r.request_id,
    replacedBy: r.replaced_by,
  };
}

/** A meter-replace job as recorded: the last step it committed and what it learned. */
export interface ReplacementRecord {
  readonly requestId: string;
  readonly pointId: string;
  readonly step: string;
  readonly facts: Readonly<Record<string, unknown>>;
  readonly result: Readonly<Record<string, unknown>> | null;
  readonly errorCode: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

interface ReplacementRow {
  request_id: string;
  point_id: string;
  step: string;
  facts_json: string;
  result_json: string | null;
  error_code: string | null;
  created_at: number;
  updated_at: number;
}

/** Records a new job at step `received`, or returns the one of this request id. STORE_CONFLICT while another runs on the point. */
export function openReplacement(tx: Tx, requestId: string, pointId: string): { record: ReplacementRecord; created: boolean } {
  const c = tx.connection;
  const existing = replacementOf(c, requestId);
  if (existing) return { record: existing, created: false };
  const running = c
    .statement<[string], ReplacementRow>("SELECT * FROM meter_replacements WHERE point_id = ? AND step NOT IN ('done', 'refused')")
    .get(pointId);
  if (running) throw new StoreError('STORE_CONFLICT', `replacement ${running.request_id} is still running on point ${pointId}`);
  const now = c.clock.now();
  c.statement(
    "INSERT INTO meter_replacements (request_id, point_id, step, facts_json, created_at, updated_at) VALUES (?, ?, 'received', '{}', ?, ?)",
  ).run(requestId, pointId, now, now);
  return { record: replacementOf(c, requestId)!, created: true };
}

/** Commits a step: the job's new step and the facts learned so far (merged), and its result when it ends. */
export function advanceReplacement(
  tx: Tx,
  requestId: string,
  step: string,
  facts: Readonly<Record<string, unknown>>,
  end?: { result?: Readonly<Record<string, unknown>>; errorCode?: string },
): ReplacementRecord {
  const c = tx.connection;
  const current = replacementOf(c, requestId);
  if (!current) throw new StoreError('STORE_INVALID_VALUE', `no replacement ${requestId}`);
  c.statement(
    'UPDATE meter_replacements SET step = ?, facts_json = ?, result_json = ?, error_code = ?, updated_at = ? WHERE request_id = ?',
  ).run(
    step,
    JSON.stringify({ ...current.facts, ...facts }),
    end?.result ? JSON.stringify(end.result) : null,
    end?.errorCode ?? null,
    c.clock.now(),
    requestId,
  );
  return replacementOf(c, requestId)!;
}

export function findReplacement(tx: Tx | Connection, requestId: string): ReplacementRecord | null {
  return replacementOf('connection' in tx ? tx.connection : tx, requestId);
}

/** Reads of the replacement jobs. */
export class ReplacementJobs {
  constructor(private readonly connection: Connection) {}

  get(requestId: string): ReplacementRecord | null {
    return replacementOf(this.connection, requestId);
  }

  /** The job running on a point (not done, not refused), if any. */
  runningOn(pointId: string): ReplacementRecord | null {
    const row = this.connection
      .statement<[string], ReplacementRow>("SELECT * FROM meter_replacements WHERE point_id = ? AND step NOT IN ('done', 'refused')")
      .get(pointId);
    return row ? toReplacement(row) : null;
  }
}

function replacementOf(c: Connection, requestId: string): ReplacementRecord | null {
  const row = c.statement<[string], ReplacementRow>('SELECT * FROM meter_replacements WHERE request_id = ?').get(requestId);
  return row ? toReplacement(row) : null;
}

function toReplacement(r: ReplacementRow): ReplacementRecord {
  return {
    requestId: r.request_id,
    pointId: r.point_id,
    step: r.step,
    facts: JSON.parse(r.facts_json) as Record<string, unknown>,
    result: r.result_json === null ? null : (JSON.parse(r.result_json) as Record<string, unknown>),
    errorCode: r.error_code,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
