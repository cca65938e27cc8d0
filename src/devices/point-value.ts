import type { DataValue } from '../../protocols/dlt645/index.js';

/** A point's value as stored and published: a number in the point's unit, or text (times, identifiers). */
export type PointValue = { v: number | string; unit: string } | { error: string; message?: string };

/** Pick one item of a block or one field of a record, then scale; `unavailable` (FF-filled) becomes an error, never a zero. */
export function pointValueOf(value: DataValue, spec: { item?: number; field?: string; scale: number; unit: string }): PointValue {
  let v: DataValue | undefined = value;
  if (spec.item !== undefined) v = v.kind === 'list' ? v.items[spec.item] : undefined;
  if (spec.field !== undefined) v = v?.kind === 'record' ? v.fields[spec.field] : undefined;
  if (v === undefined) return { error: 'POINT_MISSING_IN_REPLY', message: 'the reply has no such item or field' };
  switch (v.kind) {
    case 'number':
      // Scale by an exact decimal shift when possible so 0.01 kWh steps stay exact.
      return { v: spec.scale === 1 ? v.value : roundTo(v.value * spec.scale, v.decimals + 6), unit: spec.unit };
    case 'word':
      return { v: v.value, unit: spec.unit };
    case 'text':
    case 'time':
      return { v: v.value, unit: spec.unit };
    case 'unavailable':
      return { error: 'NOT_AVAILABLE', message: 'the meter reports this item as not available (FF)' };
    default:
      return { error: 'NOT_A_SCALAR', message: `the item decodes to a ${v.kind}; choose an item or field in the profile` };
  }
}

function roundTo(x: number, digits: number): number {
  return Number(x.toFixed(Math.min(digits, 15)));
}
