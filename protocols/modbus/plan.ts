/**
 * Read-block planning: turn a profile's points into the fewest FC01–FC04 requests, and a reply back into each
 * point's words. Pure and deterministic: the same points in any order give the same plan.
 *
 *   const plan = planReads(points, { maxGap: 2 });
 *   if (!plan.ok) report(plan.error);                       // e.g. POINT_TOO_LARGE, with the point names
 *   for (const block of plan.value) {
 *     const words = await client.readInputRegisters(block.start, block.count);
 *     const byName = splitBlock(block, words.data);         // Map<point name, that point's words>
 *   }
 */
import { fail, ok, type ModbusCodecError, type Result } from './result.js';
import { ADDRESS_SPACE, REGISTER_TABLES, dataTypeInfo, tableInfo, typeFitsTable, type DataType, type RegisterTable } from './types.js';

export interface ReadPoint {
  readonly name: string;
  readonly table: RegisterTable;
  /** 0-based wire address (a manual's 30001 is input register 0). */
  readonly address: number;
  readonly type: DataType;
}

export interface AddressRange {
  readonly table: RegisterTable;
  readonly start: number;
  readonly count: number;
}

export interface PlanOptions {
  /** Largest read per request: one number for every table, or per table. Defaults: 125 registers, 2000 bits. */
  readonly maxRegisters?: number | Partial<Record<RegisterTable, number>>;
  /** Unused addresses a block may bridge to join two points (reading them costs less than another request). Default 0. */
  readonly maxGap?: number;
  /** Addresses no request may touch: some meters reject a whole block that includes an unmapped register. */
  readonly forbidden?: readonly AddressRange[];
}

export interface BlockPoint {
  readonly name: string;
  /** Position of the point's first word within the block's reply. */
  readonly offset: number;
  readonly count: number;
}

export interface ReadBlock {
  readonly table: RegisterTable;
  readonly functionCode: 1 | 2 | 3 | 4;
  readonly start: number;
  readonly count: number;
  readonly points: readonly BlockPoint[];
}

/** A plan problem, naming the points involved so the profile loader can point at their lines. */
export interface PlanError extends ModbusCodecError {
  readonly points: readonly string[];
}

export interface Overlap {
  readonly table: RegisterTable;
  /** The point with the lower address (or the same address and the earlier name). */
  readonly first: string;
  readonly second: string;
  /** The shared addresses. */
  readonly start: number;
  readonly count: number;
}

interface Span {
  readonly name: string;
  readonly start: number;
  readonly end: number;
}

function planFail(code: PlanError['code'], message: string, points: readonly string[] = []): { ok: false; error: PlanError } {
  return { ok: false, error: { code, message, points } };
}

function byAddressThenName(a: Span, b: Span): number {
  return a.start - b.start || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

function spansByTable(points: readonly ReadPoint[]): Map<RegisterTable, Span[]> {
  const byTable = new Map<RegisterTable, Span[]>();
  for (const p of points) {
    tableInfo(p.table);
    const spans = byTable.get(p.table) ?? [];
    spans.push({ name: p.name, start: p.address, end: p.address + dataTypeInfo(p.type).count });
    byTable.set(p.table, spans);
  }
  for (const spans of byTable.values()) spans.sort(byAddressThenName);
  return byTable;
}

function isCount(n: unknown, max: number): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= max;
}

function maxFor(table: RegisterTable, option: PlanOptions['maxRegisters']): number | undefined {
  const limit = tableInfo(table).maxRead;
  const chosen = typeof option === 'number' ? option : (option?.[table] ?? limit);
  return isCount(chosen, limit) ? chosen : undefined;
}

function optionError(options: PlanOptions): { ok: false; error: PlanError } | undefined {
  const gap = options.maxGap ?? 0;
  if (!Number.isInteger(gap) || gap < 0) return planFail('INVALID_OPTION', `maxGap must be a whole number ≥ 0, got ${gap}`);
  for (const table of REGISTER_TABLES) {
    if (maxFor(table, options.maxRegisters) === undefined) {
      const info = tableInfo(table);
      const given = typeof options.maxRegisters === 'number' ? options.maxRegisters : options.maxRegisters?.[table];
      return planFail(
        'INVALID_OPTION',
        `maxRegisters for ${table} must be a whole number from 1 to ${info.maxRead} (FC${String(info.readFunction).padStart(2, '0')} limit), got ${String(given)}`,
      );
    }
  }
  for (const f of options.forbidden ?? []) {
    tableInfo(f.table);
    if (!Number.isInteger(f.start) || !Number.isInteger(f.count) || f.start < 0 || f.count < 1 || f.start + f.count > ADDRESS_SPACE) {
      return planFail('INVALID_OPTION', `forbidden range ${f.table} ${f.start}+${f.count} is not within addresses 0–65535`);
    }
  }
  return undefined;
}

function touches(ranges: readonly AddressRange[], start: number, end: number): AddressRange | undefined {
  return ranges.find((r) => r.start < end && r.start + r.count > start);
}

function pointError(points: readonly ReadPoint[], options: PlanOptions): { ok: false; error: PlanError } | undefined {
  const seen = new Set<string>();
  for (const p of points) {
    if (seen.has(p.name)) return planFail('DUPLICATE_POINT', `point "${p.name}" appears twice`, [p.name]);
    seen.add(p.name);
    const count = dataTypeInfo(p.type).count;
    if (!typeFitsTable(p.type, p.table)) {
      const wanted = tableInfo(p.table).unit === 'bit' ? 'bool' : 'a register type (int16 … uint64, float32)';
      return planFail('TYPE_NOT_IN_TABLE', `point "${p.name}" is a ${p.type} in the ${p.table} table, which holds ${wanted}`, [p.name]);
    }
    if (!Number.isInteger(p.address) || p.address < 0 || p.address + count > ADDRESS_SPACE) {
      return planFail('ADDRESS_OUT_OF_RANGE', `point "${p.name}" at ${p.address} (${count} long) is outside addresses 0–65535`, [p.name]);
    }
    const max = maxFor(p.table, options.maxRegisters)!;
    if (count > max) {
      return planFail(
        'POINT_TOO_LARGE',
        `point "${p.name}" (${p.type}) needs ${count} addresses but one ${p.table} read is limited to ${max}`,
        [p.name],
      );
    }
    const bad = touches(forbiddenIn(options, p.table), p.address, p.address + count);
    if (bad) {
      return planFail(
        'POINT_IN_FORBIDDEN_RANGE',
        `point "${p.name}" at ${p.address} lies in the forbidden ${bad.table} range ${bad.start}+${bad.count}`,
        [p.name],
      );
    }
  }
  return undefined;
}

function forbiddenIn(options: PlanOptions, table: RegisterTable): AddressRange[] {
  return (options.forbidden ?? []).filter((f) => f.table === table);
}

/**
 * Plan the reads for a set of points: per table, sorted by address, a block grows over contiguous points and over
 * gaps of at most `maxGap` unused addresses that touch no forbidden range, up to the per-request limit
 * (MODBUS Application Protocol v1.1b3 §6.1–§6.4: at most 2000 bits or 125 registers per request).
 * Greedy left to right (each block takes every following point it can), which gives the fewest requests for
 * non-overlapping points.
 */
export function planReads(points: readonly ReadPoint[], options: PlanOptions = {}): Result<ReadBlock[], PlanError> {
  const invalid = optionError(options) ?? pointError(points, options);
  if (invalid) return invalid;
  const maxGap = options.maxGap ?? 0;
  const byTable = spansByTable(points);
  const blocks: ReadBlock[] = [];
  for (const table of REGISTER_TABLES) {
    const spans = byTable.get(table);
    if (!spans) continue;
    const max = maxFor(table, options.maxRegisters)!;
    const forbidden = forbiddenIn(options, table);
    let current: { start: number; end: number; members: Span[] } | undefined;
    const close = () => {
      if (!current) return;
      const { start, end, members } = current;
      blocks.push({
        table,
        functionCode: tableInfo(table).readFunction,
        start,
        count: end - start,
        points: members.map((m) => ({ name: m.name, offset: m.start - start, count: m.end - m.start })),
      });
    };
    for (const span of spans) {
      if (current) {
        const gap = span.start - current.end;
        const end = Math.max(current.end, span.end);
        const bridgeable = gap <= 0 || (gap <= maxGap && !touches(forbidden, current.end, span.start));
        if (bridgeable && end - current.start <= max) {
          current.end = end;
          current.members.push(span);
          continue;
        }
        close();
      }
      current = { start: span.start, end: span.end, members: [span] };
    }
    close();
  }
  return ok(blocks);
}

/**
 * Pairs of points that share at least one address in the same table, so the profile loader can report them
 * (MODBUS Application Protocol v1.1b3 §4.4: each table has one 16-bit address space).
 */
export function detectOverlaps(points: readonly ReadPoint[]): Overlap[] {
  const overlaps: Overlap[] = [];
  const byTable = spansByTable(points);
  for (const table of REGISTER_TABLES) {
    let open: Span[] = [];
    for (const span of byTable.get(table) ?? []) {
      open = open.filter((o) => o.end > span.start);
      for (const o of open) {
        overlaps.push({ table, first: o.name, second: span.name, start: span.start, count: Math.min(o.end, span.end) - span.start });
      }
      open.push(span);
    }
  }
  return overlaps;
}

/**
 * Cut a block's reply into each point's words (registers for FC03/04, bits for FC01/02). A register reply must have
 * exactly `block.count` words (MODBUS Application Protocol v1.1b3 §6.3–§6.4); a bit reply is padded to whole bytes
 * (§6.1–§6.2), so up to 7 extra bits are ignored.
 */
export function splitBlock<T>(block: ReadBlock, words: ArrayLike<T>): Result<Map<string, T[]>> {
  const bits = tableInfo(block.table).unit === 'bit';
  const most = bits ? Math.ceil(block.count / 8) * 8 : block.count;
  if (words.length < block.count) {
    return fail(
      'SHORT_REPLY',
      `the reply for ${block.table} ${block.start}+${block.count} has ${words.length} ${bits ? 'bits' : 'registers'}, ${block.count} expected`,
    );
  }
  if (words.length > most) {
    return fail(
      'WRONG_REPLY_LENGTH',
      `the reply for ${block.table} ${block.start}+${block.count} has ${words.length} ${bits ? 'bits' : 'registers'}, ${block.count} expected`,
    );
  }
  const out = new Map<string, T[]>();
  for (const p of block.points) {
    const slice = new Array<T>(p.count);
    for (let i = 0; i < p.count; i++) slice[i] = words[p.offset + i]!;
    out.set(p.name, slice);
  }
  return ok(out);
}
