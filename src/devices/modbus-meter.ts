import {
  applyScale,
  decodeValue,
  planReads,
  splitBlock,
  toNumber,
  type ReadBlock,
  type ReadPoint,
  type RegisterValue,
} from '../../protocols/modbus/index.js';
import type { ModbusBitTable, ModbusReadOptions, ModbusRegisterTable, ModbusWriteOptions } from '../bus/modbus-link.js';
import { isModbusError } from '../bus/modbus-errors.js';
import type { Priority } from '../bus/types.js';
import { silentLogger, type Logger } from '../log.js';
import type { DerivedPoint, DeviceProfile, ModbusPoint } from '../profiles/types.js';
import type { PointValue } from './point-value.js';

/** What a Modbus meter needs from its bus: `ModbusLink` provides it; a test or another transport may too. */
export interface ModbusRegisterLink {
  /** The bus id, for log lines. */
  readonly id?: string;
  readRegisters(
    priority: Priority,
    unit: number,
    table: ModbusRegisterTable,
    start: number,
    count: number,
    opts?: ModbusReadOptions,
  ): Promise<number[]>;
  readBits(
    priority: Priority,
    unit: number,
    table: ModbusBitTable,
    start: number,
    count: number,
    opts?: ModbusReadOptions,
  ): Promise<boolean[]>;
  writeRegisters(priority: Priority, unit: number, start: number, words: readonly number[], opts?: ModbusWriteOptions): Promise<void>;
  writeCoil(priority: Priority, unit: number, address: number, value: boolean, opts?: ModbusWriteOptions): Promise<void>;
}

export interface ModbusMeterOptions {
  link: ModbusRegisterLink;
  /** The meter's unit id (slave address) on the bus. */
  unit: number;
  profile: DeviceProfile;
  /** Names the meter in log lines (the config's meter id). Default `unit N`. */
  meterId?: string;
  /** Reply deadline per attempt; default the link's, from the line speed. */
  timeoutMs?: number;
  /** Re-sends for reads; default the link's. */
  readRetries?: number;
  logger?: Logger;
}

/** One decoded point: the value as stored and published, and the raw integer for bits of status words. */
export interface DecodedPoint {
  readonly value: PointValue;
  /** The register value before scaling, when it is an integer (status words, counters). */
  readonly raw?: number | bigint;
}

/**
 * One Modbus meter, read through its profile: the requested points are planned into the fewest requests
 * (`planReads`, bridging at most the profile's `maxGap` unused registers), each block is read once, split and
 * decoded with the point's type and word order, then scaled exactly (2302 × 0.1 is 230.2).
 *
 * Every point gets a value or its own error: an exception on a block is that exception on each of its points, a
 * float32 NaN is NOT_A_NUMBER. A timeout or a lost bus throws (BUS_TIMEOUT, BUS_DOWN), so the poller can count it.
 *
 * @example
 * const meter = new ModbusMeter({ link, unit: 1, profile: profiles.get('eastron-sdm630')!, meterId: 'sdm-1', logger });
 * const values = await meter.read(['voltage.a', 'energy.active.import'], { priority: 'poll' });
 * values.get('voltage.a'); // { v: 231.4, unit: 'V' }
 */
export class ModbusMeter {
  readonly unit: number;
  readonly profile: DeviceProfile;
  readonly #link: ModbusRegisterLink;
  readonly #timeoutMs: number | undefined;
  readonly #readRetries: number | undefined;
  readonly #log: Logger;
  /** Plans by the sorted set of Modbus points they cover; a poller asks for the same groups over and over. */
  readonly #plans = new Map<string, ReadBlock[] | PointValue>();

  constructor(opts: ModbusMeterOptions) {
    if (!opts.profile.protocol.startsWith('modbus'))
      throw new TypeError(`profile ${opts.profile.id} is ${opts.profile.protocol}, not a Modbus profile`);
    this.unit = opts.unit;
    this.profile = opts.profile;
    this.#link = opts.link;
    this.#timeoutMs = opts.timeoutMs;
    this.#readRetries = opts.readRetries;
    this.#log = (opts.logger ?? silentLogger).child({
      bus: opts.link.id,
      meter: opts.meterId ?? `unit ${opts.unit}`,
      profile: opts.profile.id,
    });
  }

  /** Read the named points; each gets a value or a typed error. Transport failures (timeout, bus down, busy) throw. */
  async read(names: readonly string[], opts: { priority: Priority; signal?: AbortSignal }): Promise<Map<string, PointValue>> {
    const out = new Map<string, PointValue>();
    const wanted = new Map<string, ModbusPoint>();
    for (const name of names) {
      const spec = this.profile.points.get(name);
      const source = spec?.kind === 'derived' ? this.profile.points.get(spec.from) : spec;
      if (!spec) out.set(name, { error: 'UNKNOWN_POINT', message: `profile ${this.profile.id} has no point ${name}` });
      else if (source?.kind === 'modbus') wanted.set(source.name, source);
      else out.set(name, { error: 'NOT_A_MODBUS_POINT', message: `point ${name} of profile ${this.profile.id} is not read over Modbus` });
    }

    const decoded = new Map<string, DecodedPoint>();
    const plan = this.#plan([...wanted.values()]);
    if (!Array.isArray(plan)) {
      for (const name of wanted.keys()) decoded.set(name, { value: plan });
    } else {
      for (const block of plan) {
        for (const [name, d] of await this.#readBlock(block, wanted, opts)) decoded.set(name, d);
      }
    }

    const result = new Map<string, PointValue>();
    for (const name of names) {
      if (result.has(name)) continue;
      const early = out.get(name);
      if (early) {
        result.set(name, early);
        continue;
      }
      const spec = this.profile.points.get(name)!;
      result.set(
        name,
        spec.kind === 'derived' ? deriveBit(spec, decoded.get(spec.from)) : (decoded.get(name)?.value ?? { error: 'NOT_READ' }),
      );
    }
    return result;
  }

  /** Writes holding registers (FC16) on this meter; for the credit service (purchase count and amount in one request). */
  writeRegisters(priority: Priority, start: number, words: readonly number[], opts: ModbusWriteOptions = {}): Promise<void> {
    return this.#link.writeRegisters(priority, this.unit, start, words, { timeoutMs: this.#timeoutMs, ...opts });
  }

  /** Writes one coil (FC05) on this meter; for the relay service. */
  writeCoil(priority: Priority, address: number, value: boolean, opts: ModbusWriteOptions = {}): Promise<void> {
    return this.#link.writeCoil(priority, this.unit, address, value, { timeoutMs: this.#timeoutMs, ...opts });
  }

  async #readBlock(
    block: ReadBlock,
    wanted: ReadonlyMap<string, ModbusPoint>,
    opts: { priority: Priority; signal?: AbortSignal },
  ): Promise<Map<string, DecodedPoint>> {
    const out = new Map<string, DecodedPoint>();
    const request: ModbusReadOptions = { signal: opts.signal, timeoutMs: this.#timeoutMs, retries: this.#readRetries };
    let words: ArrayLike<number | boolean>;
    try {
      words =
        block.table === 'holding' || block.table === 'input'
          ? await this.#link.readRegisters(opts.priority, this.unit, block.table, block.start, block.count, request)
          : await this.#link.readBits(opts.priority, this.unit, block.table, block.start, block.count, request);
    } catch (err) {
      // The meter answered, but not with values: each point of the block carries the answer. Anything else (no answer,
      // no bus, a busy bus) is not about these points and goes to the caller.
      if (!isModbusError(err)) throw err;
      this.#log.debug(
        { event: 'block-refused', code: err.code, exception: err.exception, table: block.table, start: block.start, count: block.count },
        'block refused',
      );
      for (const p of block.points) out.set(p.name, { value: { error: err.code, message: err.message } });
      return out;
    }
    const split = splitBlock<number | boolean>(block, words);
    if (!split.ok) {
      for (const p of block.points) out.set(p.name, { value: { error: split.error.code, message: split.error.message } });
      return out;
    }
    for (const [name, pointWords] of split.value) {
      const spec = wanted.get(name);
      if (spec) out.set(name, decodePoint(spec, pointWords));
    }
    return out;
  }

  #plan(points: readonly ModbusPoint[]): ReadBlock[] | PointValue {
    const key = points
      .map((p) => p.name)
      .sort()
      .join('\n');
    const cached = this.#plans.get(key);
    if (cached) return cached;
    const plan = planReads(points.map(readPoint), { maxGap: this.profile.maxGap });
    const value: ReadBlock[] | PointValue = plan.ok
      ? plan.value
      : { error: plan.error.code, message: `profile ${this.profile.id}: ${plan.error.message}` };
    if (!plan.ok) this.#log.warn({ event: 'plan-failed', code: plan.error.code, points: plan.error.points }, plan.error.message);
    this.#plans.set(key, value);
    return value;
  }
}

function readPoint(p: ModbusPoint): ReadPoint {
  return { name: p.name, table: p.table, address: p.address, type: p.type };
}

/**
 * A point's words (or bit) → its value in its canonical unit: decode with type and word order, refuse what a number
 * cannot hold exactly, then `raw × scale + offset` in exact decimal.
 *
 * @example
 * decodePoint({ …, type: 'float32', order: 'ABCD', scale: 0.1, offset: 0, unit: 'V' }, [0x4510, 0xa000]); // { value: { v: 231.4, unit: 'V' } }
 */
export function decodePoint(spec: ModbusPoint, words: ArrayLike<number | boolean>): DecodedPoint {
  const decoded = decodeValue(words, spec.type, spec.order);
  if (!decoded.ok) return { value: { error: decoded.error.code, message: `${spec.name}: ${decoded.error.message}` } };
  const raw: RegisterValue = decoded.value;
  const n = toNumber(raw);
  if (!n.ok) return { value: { error: n.error.code, message: `${spec.name}: ${n.error.message}` } };
  const v = spec.scale === 1 && spec.offset === 0 ? n.value : applyScale(n.value, { scale: spec.scale, offset: spec.offset });
  if (!Number.isFinite(v))
    return {
      value: { error: 'NOT_A_NUMBER', message: `${spec.name}: raw ${n.value} × ${spec.scale} + ${spec.offset} is not a finite number` },
    };
  return Number.isInteger(n.value) ? { value: { v, unit: spec.unit }, raw } : { value: { v, unit: spec.unit } };
}

/** A bit of a status word: bits count in the register's two's complement, so int16 −1 has every bit set. */
function deriveBit(spec: DerivedPoint, source: DecodedPoint | undefined): PointValue {
  if (!source) return { error: 'NOT_READ' };
  if ('error' in source.value) return source.value;
  if (source.raw === undefined)
    return { error: 'NOT_AN_INTEGER', message: `${spec.from} is not an integer register, so ${spec.name} has no bit ${spec.bit}` };
  return { v: Number((BigInt(source.raw) >> BigInt(spec.bit)) & 1n), unit: spec.unit };
}
