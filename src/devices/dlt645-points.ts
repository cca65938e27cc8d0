import type { Dlt645Point, DeviceProfile, PointSpec } from '../profiles/types.js';
import type { Dlt645Meter, Priority } from './dlt645-meter.js';
import { MeterError } from './errors.js';
import { pointValueOf, type PointValue } from './point-value.js';
import { findDataItem, decodeValue } from '../../protocols/dlt645/index.js';

const readers = new WeakMap<Dlt645Meter, Dlt645PointReader>();

/**
 * The point reader of a meter driver: one per meter, shared by polling, its credit port and its relay port, so a
 * block the meter refused is known to all three (and a gateway of 2,000 meters holds 2,000 readers, not 6,000).
 */
export function pointReaderOf(meter: Dlt645Meter, profile: DeviceProfile): Dlt645PointReader {
  const known = readers.get(meter);
  if (known?.profile === profile) return known;
  const reader = new Dlt645PointReader(meter, profile);
  readers.set(meter, reader);
  return reader;
}

/**
 * Reads a profile's points from one DL/T 645 meter with the fewest frames: block identifiers where the
 * profile lists them and the meter supports them, single identifiers otherwise. A meter that answers a
 * block with "no requested data" is remembered and asked item by item from then on.
 */
export class Dlt645PointReader {
  // Made at the first refusal: most meters never refuse a block, and a gateway holds thousands of readers.
  private unsupportedBlocks: Set<string> | undefined;

  constructor(
    readonly meter: Dlt645Meter,
    readonly profile: DeviceProfile,
  ) {}

  /** Read the named points; each gets a value or a typed error. Transport failures (timeout, bus down) throw. */
  async read(names: readonly string[], opts: { priority?: Priority; signal?: AbortSignal } = {}): Promise<Map<string, PointValue>> {
    const out = new Map<string, PointValue>();
    const wanted = new Set<string>();
    for (const name of names) {
      const spec = this.profile.points.get(name);
      if (!spec) {
        out.set(name, { error: 'UNKNOWN_POINT', message: `profile ${this.profile.id} has no point ${name}` });
        continue;
      }
      wanted.add(spec.kind === 'derived' ? spec.from : name);
    }
    const raw = new Map<string, PointValue>();

    for (const block of this.profile.blocks) {
      if (this.unsupportedBlocks?.has(block.di)) continue;
      const members = block.points.filter((p): p is string => p !== null && wanted.has(p));
      if (members.length < 2) continue;
      try {
        const r = await this.meter.read(block.di, opts);
        if (r.value.kind !== 'list') throw new MeterError('DLT645_BAD_REPLY', `block ${block.di} did not decode to a list`);
        block.points.forEach((p, k) => {
          if (p === null || !wanted.has(p)) return;
          const spec = this.profile.points.get(p) as Dlt645Point;
          const item = r.value.kind === 'list' ? r.value.items[k] : undefined;
          raw.set(
            p,
            item
              ? pointValueOf(item, { ...spec, item: undefined, field: spec.field })
              : { error: 'POINT_MISSING_IN_REPLY', message: `block ${block.di} has no item ${k}` },
          );
          wanted.delete(p);
        });
      } catch (err) {
        if (!(err instanceof MeterError && err.code === 'DLT645_ABNORMAL')) throw err;
        this.unsupportedBlocks ??= new Set();
        this.unsupportedBlocks.add(block.di);
      }
    }

    for (const name of wanted) {
      const spec = this.profile.points.get(name);
      if (spec?.kind !== 'dlt645') continue;
      raw.set(name, await this.readOne(spec, opts));
    }

    for (const name of names) {
      if (out.has(name)) continue;
      const spec = this.profile.points.get(name)!;
      out.set(name, spec.kind === 'derived' ? derive(spec, raw.get(spec.from)) : (raw.get(name) ?? { error: 'NOT_READ' }));
    }
    return out;
  }

  /** Blocks this meter refused, so callers (and tests) can see the fallback happened. */
  get refusedBlocks(): readonly string[] {
    return [...(this.unsupportedBlocks ?? [])];
  }

  private async readOne(spec: Dlt645Point, opts: { priority?: Priority; signal?: AbortSignal }): Promise<PointValue> {
    try {
      const r = await this.meter.read(spec.di, opts);
      // The profile may override the table's format (vendor identifiers, different widths).
      const tableFormat = findDataItem(spec.di, this.meter.edition)?.format;
      const value = tableFormat === spec.format ? r.value : decodeValue(spec.format, r.raw);
      if ('ok' in value) {
        if (!value.ok) return { error: value.error.code, message: value.error.message };
        return pointValueOf(value.value, spec);
      }
      return pointValueOf(value, spec);
    } catch (err) {
      if (
        err instanceof MeterError &&
        (err.code === 'DLT645_ABNORMAL' || err.code === 'DLT645_BAD_VALUE' || err.code === 'DLT645_BAD_REPLY')
      ) {
        return { error: err.code, message: err.message };
      }
      throw err;
    }
  }
}

function derive(spec: Extract<PointSpec, { kind: 'derived' }>, source: PointValue | undefined): PointValue {
  if (!source) return { error: 'NOT_READ' };
  if ('error' in source) return source;
  if (typeof source.v !== 'number') return { error: 'NOT_A_NUMBER' };
  return { v: Math.floor(source.v / 2 ** spec.bit) % 2, unit: spec.unit };
}
