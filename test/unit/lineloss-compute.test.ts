import { describe, expect, it } from 'vitest';
import {
  classify,
  computeFigure,
  contributors,
  meterDelta,
  registerDelta,
  type DistrictShape,
  type FreezeValue,
  type WindowInput,
} from '../../src/services/lineloss/compute.js';

const DAY = '2026-11-26';
const NEXT = '2026-11-27';
const at = (date: string) => `${date}T00:00`;
/** A freeze of `kwh` at the expected midnight. */
const fz = (kwh: number, date: string, extra: Partial<FreezeValue> = {}): FreezeValue => ({
  frozenAt: at(date),
  importCenti: Math.round(kwh * 100),
  ...extra,
});

const district = (over: Partial<DistrictShape> = {}): DistrictShape => ({
  id: 'd1',
  supplyMeter: 'd1-general',
  ctRatio: 50,
  ptRatio: 1,
  members: ['room-101', 'room-102', 'room-103'],
  pvMembers: new Set(),
  lineloss: { qualified: [0, 10], completeness: 98, alertAfterDays: 3 },
  ...over,
});

/** One day's window from start and end readings in kWh by meter; a meter left out of a side has no freeze there. */
function day(start: Record<string, number | FreezeValue>, end: Record<string, number | FreezeValue>): WindowInput {
  const side = (values: Record<string, number | FreezeValue>, date: string) =>
    new Map(Object.entries(values).map(([id, v]) => [id, typeof v === 'number' ? fz(v, date) : v]));
  return { kind: 'daily', period: DAY, startBoundary: DAY, endBoundary: NEXT, start: side(start, DAY), end: side(end, NEXT) };
}

describe('a district day from the daily freezes', () => {
  it('matches a computation by hand to 0.01 %: supply Δ × CT, sales Σ Δ, loss, rate', () => {
    // By hand: supply (1254.43 − 1234.56) × 50 = 19.87 × 50 = 993.50 kWh
    //          sales 312.40 + 298.15 + 301.27 = 911.82 kWh
    //          loss 993.50 − 911.82 = 81.68 kWh; rate 81.68 ÷ 993.50 = 8.2214… % → 8.22 %
    const f = computeFigure(
      district(),
      day(
        { 'd1-general': 1234.56, 'room-101': 100.0, 'room-102': 2000.0, 'room-103': 50.0 },
        { 'd1-general': 1254.43, 'room-101': 412.4, 'room-102': 2298.15, 'room-103': 351.27 },
      ),
    );
    expect(f).toMatchObject({
      supplyCenti: 99_350,
      salesCenti: 91_182,
      lossCenti: 8_168,
      ratePct: 8.22,
      class: 'qualified',
      members: { expected: 3, read: 3 },
      missing: [],
      flagged20: false,
    });
    expect(Object.fromEntries(f.memberCenti)).toEqual({ 'room-101': 31_240, 'room-102': 29_815, 'room-103': 30_127 });
  });

  it('applies CT × PT to the supply meter only: a 10 kV metering point with CT 20 and PT 100', () => {
    // supply 0.50 kWh on the secondary side × 20 × 100 = 1000.00 kWh; sales 950.00; loss 50.00 = 5 %
    const f = computeFigure(
      district({ ctRatio: 20, ptRatio: 100, members: ['a', 'b'] }),
      day({ 'd1-general': 10, a: 0, b: 0 }, { 'd1-general': 10.5, a: 500, b: 450 }),
    );
    expect(f).toMatchObject({ supplyCenti: 100_000, salesCenti: 95_000, lossCenti: 5_000, ratePct: 5, class: 'qualified' });
  });

  it('a member without a freeze makes the day not computable and names it; no rate, never a zero', () => {
    const f = computeFigure(
      district(),
      day({ 'd1-general': 0, 'room-101': 0, 'room-102': 0 }, { 'd1-general': 20, 'room-101': 300, 'room-102': 300 }),
    );
    expect(f).toMatchObject({
      class: 'not-computable',
      ratePct: null,
      lossCenti: null,
      members: { expected: 3, read: 2 },
      missing: ['room-103'],
    });
    expect(f.why['room-103']).toBe('no freeze for 2026-11-26 00:00');
    expect(f.reason).toMatch(/2 of 3 members read/);
  });

  it('a freeze stamped a day off is not used: the member is missing, with the stamp it carried', () => {
    const f = computeFigure(
      district(),
      day(
        { 'd1-general': 0, 'room-101': 0, 'room-102': 0, 'room-103': 0 },
        { 'd1-general': 20, 'room-101': 300, 'room-102': 300, 'room-103': fz(300, '2026-11-26') },
      ),
    );
    expect(f.class).toBe('not-computable');
    expect(f.missing).toEqual(['room-103']);
    expect(f.why['room-103']).toBe('the freeze for 2026-11-27 00:00 is stamped 2026-11-26 00:00');
  });

  it('the supply meter without a usable freeze makes the day not computable whoever else was read', () => {
    const f = computeFigure(
      district(),
      day({ 'room-101': 0, 'room-102': 0, 'room-103': 0 }, { 'd1-general': 20, 'room-101': 1, 'room-102': 1, 'room-103': 1 }),
    );
    expect(f).toMatchObject({ class: 'not-computable', supplyCenti: null, missing: ['d1-general'] });
    expect(f.reason).toBe('the supply meter d1-general: no freeze for 2026-11-26 00:00');
  });

  it('handles a register that rolls over 999999.99 → 0', () => {
    expect(registerDelta(99_999_000, 1_050)).toBe(2_050); // 999990.00 → 10.50 kWh is 20.50 kWh
    const f = computeFigure(
      district({ members: ['old'] }),
      day({ 'd1-general': 999_999.5, old: 999_990 }, { 'd1-general': 0.5, old: 10.5 }),
    );
    // supply (1000000.00 − 999999.50 + 0.50) = 1.00 × 50 = 50.00; sales 20.50; loss 29.50 = 59 %
    expect(f).toMatchObject({ supplyCenti: 5_000, salesCenti: 2_050, ratePct: 59, class: 'high', flagged20: true });
  });

  it('a register that went backwards (a meter swapped in the day) is not guessed: not computable, with the reason', () => {
    const d = meterDelta(fz(5000, DAY), fz(0.1, NEXT), DAY, NEXT);
    expect(d).toEqual({
      ok: false,
      kind: 'backwards',
      reason: 'forward energy went backwards (5000.00 → 0.10 kWh): meter swapped or faulty',
    });
    const f = computeFigure(
      district({ members: ['swapped'] }),
      day({ 'd1-general': 0, swapped: 5000 }, { 'd1-general': 10, swapped: 0.1 }),
    );
    expect(f.class).toBe('not-computable');
    expect(f.reason).toMatch(/swapped.*not guessed/);
  });

  it('classifies against the band: below is negative, above is high; 20 % or more is flagged whatever the band', () => {
    expect(classify(-0.01, [0, 10])).toBe('negative');
    expect(classify(0, [0, 10])).toBe('qualified');
    expect(classify(10, [0, 10])).toBe('qualified');
    expect(classify(10.01, [0, 10])).toBe('high');
    const wide = district({ members: ['a'], lineloss: { qualified: [0, 25], completeness: 98, alertAfterDays: 3 } });
    const f = computeFigure(wide, day({ 'd1-general': 0, a: 0 }, { 'd1-general': 2, a: 78 }));
    expect(f).toMatchObject({ ratePct: 22, class: 'qualified', flagged20: true });
    const negative = computeFigure(district({ members: ['a'] }), day({ 'd1-general': 0, a: 0 }, { 'd1-general': 2, a: 130 }));
    expect(negative).toMatchObject({ lossCenti: -3_000, ratePct: -30, class: 'negative', flagged20: false });
  });

  it('completeness: 49 of 50 members read (98 %) is computable and lists the missing one; 48 of 50 is not', () => {
    const members = Array.from({ length: 50 }, (_, i) => `m${i}`);
    const start = Object.fromEntries([['d1-general', 0], ...members.map((m) => [m, 0])]) as Record<string, number>;
    const end = Object.fromEntries([['d1-general', 20], ...members.map((m) => [m, 19])]) as Record<string, number>;
    const one = { ...end };
    delete one.m7;
    const f = computeFigure(district({ members }), day(start, one));
    // supply 20 × 50 = 1000; sales 49 × 19 = 931 (the missing member's consumption counts as loss): 6.9 %
    expect(f).toMatchObject({ ratePct: 6.9, class: 'qualified', members: { expected: 50, read: 49 }, missing: ['m7'] });
    const two = { ...one };
    delete two.m8;
    expect(computeFigure(district({ members }), day(start, two))).toMatchObject({ class: 'not-computable', missing: ['m7', 'm8'] });
  });

  it('carries the target and rate − target', () => {
    const f = computeFigure(
      district({ members: ['a'], lineloss: { target: 6.5, qualified: [0, 10], completeness: 98, alertAfterDays: 3 } }),
      day({ 'd1-general': 0, a: 0 }, { 'd1-general': 2, a: 92.25 }),
    );
    expect(f).toMatchObject({ ratePct: 7.75, target: 6.5, diffPct: 1.25 });
  });

  it('subtracts the supply meter’s reverse energy and adds PV members’ export to the supply', () => {
    // supply (fwd 2.00 − rev 0.20) × 50 = 90.00, + PV export 10.00 = 100.00; sales 60 + 32 = 92; loss 8 %
    const f = computeFigure(
      district({ members: ['pv', 'b'], pvMembers: new Set(['pv']) }),
      day(
        { 'd1-general': fz(0, DAY, { exportCenti: 0 }), pv: fz(0, DAY, { exportCenti: 0 }), b: 0 },
        { 'd1-general': fz(2, NEXT, { exportCenti: 20 }), pv: fz(60, NEXT, { exportCenti: 1000 }), b: 32 },
      ),
    );
    expect(f).toMatchObject({ supplyCenti: 10_000, salesCenti: 9_200, ratePct: 8 });
  });
});

describe('top contributors', () => {
  it('ranks members by their change against their own average of the previous days, largest first', () => {
    const previous = new Map([
      [
        '2026-11-24',
        new Map([
          ['a', 1000],
          ['b', 2000],
          ['c', 500],
        ]),
      ],
      [
        '2026-11-25',
        new Map([
          ['a', 1200],
          ['b', 2000],
        ]),
      ],
    ]);
    const today = new Map([
      ['a', 1100],
      ['b', 0],
      ['c', 900],
      ['new', 5000],
    ]);
    expect(contributors(today, previous)).toEqual([
      { meter: 'b', kwh: 0, averageKwh: 20, changeKwh: -20 },
      { meter: 'c', kwh: 9, averageKwh: 5, changeKwh: 4 },
      { meter: 'a', kwh: 11, averageKwh: 11, changeKwh: 0 },
    ]);
    expect(contributors(today, previous, 1).map((c) => c.meter)).toEqual(['b']);
  });
});

describe('a day on which a member meter was replaced (docs/lifecycle.md)', () => {
  it('counts old final − old start + new end − new initial, and stays computable', () => {
    // room-102's meter was replaced during the day: the old one stood at 2000.00 at midnight and 2150.25 when it came
    // down; the new one started at 0.50 and froze 148.40 at the next midnight. By hand: 150.25 + 147.90 = 298.15 kWh,
    // the same as the day without a swap in the first test: supply 993.50, sales 911.82, loss 81.68, rate 8.22 %.
    const w = day(
      { 'd1-general': 1234.56, 'room-101': 100.0, 'room-102': 2000.0, 'room-103': 50.0 },
      { 'd1-general': 1254.43, 'room-101': 412.4, 'room-102': 148.4, 'room-103': 351.27 },
    );
    const f = computeFigure(district(), { ...w, swaps: new Map([['room-102', [{ finalImportCenti: 215_025, initialImportCenti: 50 }]]]) });
    expect(f).toMatchObject({ salesCenti: 91_182, lossCenti: 8_168, ratePct: 8.22, class: 'qualified', members: { read: 3 } });
    expect(f.memberCenti.get('room-102')).toBe(29_815);
  });

  it('without the swap readings the new meter looks like a register going backwards: not computable, never guessed', () => {
    const f = computeFigure(
      district(),
      day(
        { 'd1-general': 1234.56, 'room-101': 100.0, 'room-102': 2000.0, 'room-103': 50.0 },
        { 'd1-general': 1254.43, 'room-101': 412.4, 'room-102': 148.4, 'room-103': 351.27 },
      ),
    );
    expect(f).toMatchObject({ class: 'not-computable', lossCenti: null });
    expect(f.why['room-102']).toMatch(/went backwards/);
  });

  it('a stretch that goes backwards inside the swap is still refused', () => {
    expect(meterDelta(fz(2000, DAY), fz(148.4, NEXT), DAY, NEXT, [{ finalImportCenti: 190_000, initialImportCenti: 50 }])).toMatchObject({
      ok: false,
      kind: 'backwards',
    });
  });
});
