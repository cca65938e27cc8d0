import { z } from 'zod';
import { centiKwhFromNumber, fenFromNumber } from '../values/index.js';
import { durationProblem, parseDuration } from './duration.js';
import type { SourceIssue } from './yaml-source.js';

// The `allowances:` section: free electricity a campus gives its dormitory meters on dates of its term calendar
// (docs/allowances.md). The shape is a contract with the stations that write it; this file owns its rules.

const id = z
  .string()
  .min(1, 'an id cannot be empty')
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'an id may hold letters, digits, dot, dash and underscore (no "/", "+", "#" or spaces: it becomes an MQTT topic level)',
  );

/** YYYY-MM-DD that is a real calendar date (2026-02-30 is not). */
export function isCalendarDate(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

const roundDate = z
  .string({ error: 'a round date is a quoted date, e.g. "2026-09-07"' })
  .refine(isCalendarDate, 'a round date is a calendar date written YYYY-MM-DD, e.g. "2026-09-07"');

export const allowanceSchema = z.strictObject({
  id,
  /** Which meters get it: by tag, by id, by district; several keys make a union. */
  meters: z.strictObject({
    tags: z.array(z.string().min(1)).optional(),
    ids: z.array(z.string().min(1)).optional(),
    districts: z.array(z.string().min(1)).optional(),
  }),
  /** Money meters: whole fen. */
  amountFen: z.number().optional(),
  /** kWh meters: kWh with at most two decimals. */
  energyKwh: z.number().optional(),
  /** Local time (gateway.timeZone) a round starts on its date. */
  at: z
    .string()
    .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time of day, HH:MM (24 h), e.g. "08:00"')
    .default('08:00'),
  /** How long offline meters keep being retried after the round starts. */
  deadline: z.union([z.string(), z.number()]).default('14d'),
  /** Wait before the first retry of a meter that did not answer; it doubles up to 1h. Not part of the station contract. */
  retry: z.union([z.string(), z.number()]).default('5m'),
  terms: z
    .array(
      z.strictObject({
        id,
        rounds: z.array(z.strictObject({ id, date: roundDate })).min(1, 'a term has at least one round'),
      }),
    )
    .min(1, 'an allowance has at least one term'),
});

export type RawAllowance = z.infer<typeof allowanceSchema>;

export interface AllowanceRoundConfig {
  readonly id: string;
  /** YYYY-MM-DD, local. */
  readonly date: string;
}

export interface AllowanceConfig {
  readonly id: string;
  readonly meters: { readonly tags: readonly string[]; readonly ids: readonly string[]; readonly districts: readonly string[] };
  /** What each meter gets, in ledger units: fen for money meters, 0.01 kWh for energy meters. */
  readonly unit: 'money' | 'energy';
  readonly amount: number;
  /** HH:MM local. */
  readonly at: string;
  readonly deadlineMs: number;
  readonly retryMs: number;
  readonly terms: readonly { readonly id: string; readonly rounds: readonly AllowanceRoundConfig[] }[];
}

/** What the allowance rules need to know of the configured meters. */
export interface AllowanceMeterFacts {
  readonly id: string;
  readonly tags: readonly string[];
  readonly district?: string;
  /** The credit unit of the meter's profile; undefined when it takes no credit. */
  readonly creditUnit?: 'money' | 'energy';
}

/** The meters an allowance targets, in config order: any tag, id or district it names (a union). */
export function allowanceTargets<M extends { id: string; tags: readonly string[]; district?: string }>(
  a: Pick<AllowanceConfig, 'meters'>,
  meters: readonly M[],
): M[] {
  const tags = new Set(a.meters.tags);
  const ids = new Set(a.meters.ids);
  const districts = new Set(a.meters.districts);
  return meters.filter((m) => ids.has(m.id) || (m.district !== undefined && districts.has(m.district)) || m.tags.some((t) => tags.has(t)));
}

/**
 * Checks the parsed allowances against the rest of the config and turns them into typed values. Errors make the
 * config invalid; warnings (a tag no meter carries, a targeted meter whose unit does not match) are printed by
 * `meterd config check` and logged at start.
 */
export function resolveAllowances(
  raw: readonly RawAllowance[],
  meters: readonly AllowanceMeterFacts[],
  districtIds: ReadonlySet<string>,
  issue: (path: PropertyKey[], message: string) => SourceIssue,
  errors: SourceIssue[],
  warnings: SourceIssue[],
): AllowanceConfig[] {
  const err = (path: PropertyKey[], message: string) => errors.push(issue(path, message));
  const warn = (path: PropertyKey[], message: string) => warnings.push(issue(path, message));
  const meterIds = new Set(meters.map((m) => m.id));
  const tagsInUse = new Set(meters.flatMap((m) => m.tags));
  const seen = new Map<string, number>();
  const out: AllowanceConfig[] = [];
  raw.forEach((a, i) => {
    const at = (...p: PropertyKey[]) => ['allowances', i, ...p];
    const first = seen.get(a.id);
    if (first !== undefined) err(at('id'), `duplicate allowance id "${a.id}" (first used at allowances[${first}])`);
    else seen.set(a.id, i);

    const sel = { tags: a.meters.tags ?? [], ids: a.meters.ids ?? [], districts: a.meters.districts ?? [] };
    if (sel.tags.length + sel.ids.length + sel.districts.length === 0)
      err(at('meters'), 'name the meters: { tags: [dorm] }, { ids: [room-101] } or { districts: [d1] } (several make a union)');
    sel.tags.forEach((t, j) => {
      if (!tagsInUse.has(t)) warn(at('meters', 'tags', j), `no meter carries the tag "${t}": it selects nothing`);
    });
    sel.ids.forEach((m, j) => {
      if (!meterIds.has(m)) err(at('meters', 'ids', j), `no meter "${m}" in meters`);
    });
    sel.districts.forEach((d, j) => {
      if (!districtIds.has(d)) err(at('meters', 'districts', j), `no district "${d}" in districts`);
    });

    let unit: 'money' | 'energy' = 'money';
    let amount = 1;
    if ((a.amountFen === undefined) === (a.energyKwh === undefined)) {
      err(at(), 'give exactly one of amountFen (whole fen, for money meters) or energyKwh (kWh, for kWh meters)');
    } else if (a.amountFen !== undefined) {
      const fen = fenFromNumber(a.amountFen);
      if (!fen.ok) err(at('amountFen'), `amountFen ${fen.reason}`);
      else amount = fen.value;
    } else {
      unit = 'energy';
      const centi = centiKwhFromNumber(a.energyKwh);
      if (!centi.ok) err(at('energyKwh'), `energyKwh ${centi.reason}`);
      else amount = centi.value;
    }

    const duration = (field: 'deadline' | 'retry', minMs: number): number => {
      const ms = parseDuration(a[field]);
      if (ms === undefined || ms < minMs) err(at(field), durationProblem(a[field], minMs));
      return ms ?? minMs;
    };
    const deadlineMs = duration('deadline', 60_000);
    const retryMs = duration('retry', 1000);

    const terms = new Map<string, number>();
    a.terms.forEach((t, j) => {
      const prior = terms.get(t.id);
      if (prior !== undefined) err(at('terms', j, 'id'), `duplicate term id "${t.id}" (first used at terms[${prior}])`);
      else terms.set(t.id, j);
      const rounds = new Map<string, number>();
      t.rounds.forEach((r, k) => {
        const before = rounds.get(r.id);
        if (before !== undefined)
          err(at('terms', j, 'rounds', k, 'id'), `duplicate round id "${r.id}" in term ${t.id} (first at rounds[${before}])`);
        else rounds.set(r.id, k);
      });
    });

    const resolved: AllowanceConfig = { id: a.id, meters: sel, unit, amount, at: a.at, deadlineMs, retryMs, terms: a.terms };
    const mismatched = allowanceTargets(resolved, meters).filter((m) => m.creditUnit !== unit);
    if (mismatched.length > 0) {
      const names = mismatched.slice(0, 5).map((m) => m.id);
      warn(
        at(unit === 'money' ? 'amountFen' : 'energyKwh'),
        `${mismatched.length} targeted meter(s) take no ${unit === 'money' ? 'money' : 'kWh'} credit (${names.join(', ')}${mismatched.length > 5 ? ', …' : ''}): their rows will be parked, never converted`,
      );
    }
    out.push(resolved);
  });
  return out;
}
