import { z } from 'zod';

// Line loss per transformer district (docs/lineloss.md): the per-district thresholds and the gateway-wide schedule.

const duration = z.union([z.string(), z.number()]);
const percent = (what: string) =>
  z.number().min(-100, `${what} is a percentage from -100 to 100`).max(100, `${what} is a percentage from -100 to 100`);

/** Thresholds of one district's line loss; every field has the field-practice default. */
export const districtLinelossSchema = z
  .strictObject({
    /** The district's assigned loss rate (线损指标), in %; each figure then carries rate − target. */
    target: percent('target').optional(),
    /** The qualified band [low, high] in %: below low is negative loss, above high is high loss. */
    qualified: z
      .tuple([percent('the low end of qualified'), percent('the high end of qualified')])
      .refine(([lo, hi]) => lo < hi, 'qualified is [low, high] with low below high, e.g. [0, 10]')
      .default([0, 10]),
    /** Fewer members read than this % makes a day not computable. */
    completeness: z.number().min(0).max(100).default(98),
    /** Abnormal (high or negative) days in a row before the district's alert is raised. */
    alertAfterDays: z.number().int().min(1).max(62).default(3),
  })
  .default({ qualified: [0, 10], completeness: 98, alertAfterDays: 3 });

/** When the daily freezes are read and how long missing ones are chased. */
export const linelossSchema = z
  .strictObject({
    /** Local time after midnight at which yesterday's freezes are read. */
    readAt: z
      .string()
      .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'readAt is a local time of day HH:MM, e.g. 00:15')
      .default('00:15'),
    /** Days a not-computable day is recalled (补召) for. */
    recallDays: z.number().int().min(0).max(62).default(7),
    /** How often members that did not answer are read again while recalled. */
    recallEvery: duration.default('2h'),
  })
  .default({ readAt: '00:15', recallDays: 7, recallEvery: '2h' });

export type DistrictLinelossRaw = z.infer<typeof districtLinelossSchema>;

/** A district's line-loss settings, resolved. */
export interface DistrictLineloss {
  readonly target?: number;
  readonly qualified: readonly [number, number];
  readonly completeness: number;
  readonly alertAfterDays: number;
}

/** The gateway's line-loss schedule, resolved. */
export interface LinelossSettings {
  readonly readAt: string;
  readonly recallDays: number;
  readonly recallEveryMs: number;
}

/** The points a meter's profile must have to take part in line loss: the last daily freeze's time and energy. */
export const FREEZE_TIME_POINT = 'frozen.daily.time[1]';
export const FREEZE_ENERGY_POINT = 'frozen.daily.energy.active.import[1]';
export const FREEZE_EXPORT_POINT = 'frozen.daily.energy.active.export[1]';

/** One transformer district, resolved: its supply (general) meter, instrument transformer ratios and thresholds. */
export interface DistrictConfig {
  readonly id: string;
  readonly name?: string;
  readonly supplyMeter?: string;
  readonly ctRatio: number;
  readonly ptRatio: number;
  readonly lineloss: DistrictLineloss;
}

interface RawDistrict {
  readonly id: string;
  readonly supplyMeter?: string;
}
interface RawMeter {
  readonly id: string;
  readonly bus: string;
  readonly profile: string;
  readonly district?: string;
}

/**
 * What keeps a district's line loss from being computed: no supply meter, a supply meter that belongs to another
 * district, members on a bus that is not configured, members whose profile has no daily freezes.
 */
export function districtIssues(
  districts: readonly RawDistrict[],
  meters: readonly RawMeter[],
  busIds: ReadonlySet<string>,
  profiles: ReadonlyMap<string, { readonly points: ReadonlyMap<string, { readonly kind: string }> }>,
): { path: PropertyKey[]; message: string }[] {
  const out: { path: PropertyKey[]; message: string }[] = [];
  const byId = new Map(meters.map((m, i) => [m.id, { m, i }]));
  districts.forEach((d, i) => {
    if (d.supplyMeter === undefined) {
      out.push({
        path: ['districts', i],
        message: `district ${d.id} has no supplyMeter: name its general meter (one of meters:), without it the district's line loss cannot be computed`,
      });
    } else {
      const supply = byId.get(d.supplyMeter);
      if (supply === undefined) out.push({ path: ['districts', i, 'supplyMeter'], message: `no meter "${d.supplyMeter}"` });
      else if (supply.m.district !== undefined && supply.m.district !== d.id)
        out.push({
          path: ['districts', i, 'supplyMeter'],
          message: `${d.supplyMeter} is the supply meter of ${d.id} but is listed in district ${supply.m.district} (meters[${supply.i}].district): a general meter belongs to the district it supplies`,
        });
    }
    const members = meters.filter((m) => m.district === d.id || m.id === d.supplyMeter);
    const offBus = members.filter((m) => !busIds.has(m.bus));
    if (offBus.length > 0)
      out.push({
        path: ['districts', i],
        message: `district ${d.id} has meters on no configured bus: ${offBus.map((m) => `${m.id} (bus ${m.bus})`).join(', ')}; their freezes cannot be read`,
      });
    const noFreezes = members.filter((m) => {
      const p = profiles.get(m.profile);
      return (
        p !== undefined && !(p.points.get(FREEZE_TIME_POINT)?.kind === 'dlt645' && p.points.get(FREEZE_ENERGY_POINT)?.kind === 'dlt645')
      );
    });
    if (noFreezes.length > 0)
      out.push({
        path: ['districts', i],
        message: `district ${d.id} has meters whose profile keeps no daily freezes (${FREEZE_TIME_POINT} and ${FREEZE_ENERGY_POINT}): ${noFreezes.map((m) => `${m.id} (${m.profile})`).join(', ')}; line loss needs them`,
      });
  });
  return out;
}
