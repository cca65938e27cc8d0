import { findFigure, listFigures, memberDays, type StoredFigure, type Store } from '../../store/index.js';
import { addDays } from '../books/periods.js';
import { contributors } from './compute.js';

// What the station's monthly meeting asks of the stored figures: the series of a district, and the members behind one
// day. Read-only; the CLI and (later) the web console call these, never the SQL.

export interface LinelossSeries {
  readonly days: readonly StoredFigure[];
  readonly months: readonly StoredFigure[];
}

/** The daily figures with `from <= date <= to` and the monthly figures of the months they touch, per district. */
export function linelossSeries(store: Store, q: { district?: string; from: string; to: string }): LinelossSeries {
  return store.transaction((tx) => ({
    days: listFigures(tx, { kind: 'daily', from: q.from, to: q.to, ...(q.district ? { district: q.district } : {}) }),
    months: listFigures(tx, {
      kind: 'monthly',
      from: q.from.slice(0, 7),
      to: q.to.slice(0, 7),
      ...(q.district ? { district: q.district } : {}),
    }),
  }));
}

export interface ExplainedMember {
  readonly meter: string;
  /** null for a member without a usable freeze that day. */
  readonly kwh: number | null;
  /** Its average over the previous week's days it was read; null without history. */
  readonly averageKwh: number | null;
  readonly changeKwh: number | null;
  /** Why it has no figure, for a missing member. */
  readonly why?: string;
}

export interface Explanation {
  readonly figure: StoredFigure;
  /** Largest change against the previous week first; members without history next; missing ones last. */
  readonly members: readonly ExplainedMember[];
}

/** The members behind a district's day, or null when the day was not computed. */
export function explainDay(store: Store, district: string, date: string): Explanation | null {
  return store.transaction((tx) => {
    const figure = findFigure(tx, district, 'daily', date);
    if (figure === null) return null;
    const today = memberDays(tx, district, date, date).get(date) ?? new Map<string, number>();
    const previous = memberDays(tx, district, addDays(date, -7), addDays(date, -1));
    const ranked = contributors(today, previous);
    const listed = new Set(ranked.map((c) => c.meter));
    const members: ExplainedMember[] = ranked.map((c) => ({
      meter: c.meter,
      kwh: c.kwh,
      averageKwh: c.averageKwh,
      changeKwh: c.changeKwh,
    }));
    for (const [meter, centi] of [...today].sort(([a], [b]) => (a < b ? -1 : 1)))
      if (!listed.has(meter)) members.push({ meter, kwh: centi / 100, averageKwh: null, changeKwh: null });
    const why = (figure.figure.why ?? {}) as Record<string, string>;
    for (const meter of (figure.figure.missing ?? []) as string[])
      members.push({ meter, kwh: null, averageKwh: null, changeKwh: null, ...(why[meter] ? { why: why[meter] } : {}) });
    return { figure, members };
  });
}
