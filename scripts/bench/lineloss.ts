/**
 * Line loss of a month for one district of 2,000 members (docs/lineloss.md): how long the arithmetic takes, and how long
 * the daemon's job takes to store a month of freezes (2,001 meters × 31 midnights), compute the 30 days and the month,
 * store the members' consumption and hand the figures to the outbox. The meters are in-memory freeze sources, so the
 * figures are the gateway's own cost, not the RS-485 line's (at 2400 baud a freeze read is about 0.3 s per meter and
 * identifier: that, not this, bounds a catch-up). Prints figures; asserts nothing.
 *
 *   npm run bench -- lineloss
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ManualClock } from '../../src/clock.js';
import type { DailyFreezeSource } from '../../src/devices/dlt645-freezes.js';
import { addDays } from '../../src/services/books/index.js';
import {
  computeFigure,
  LinelossService,
  type DistrictShape,
  type FreezeValue,
  type LinelossMeter,
} from '../../src/services/lineloss/index.js';
import { openStore, upsertFreeze } from '../../src/store/index.js';

const MEMBERS = 2_000;
const DAYS = 30;
const FIRST = '2026-11-01';
const TZ = 'UTC';

const members = Array.from({ length: MEMBERS }, (_, i) => `room-${i + 1}`);
const district: DistrictShape = {
  id: 'd1',
  supplyMeter: 'd1-general',
  ctRatio: 100,
  ptRatio: 1,
  members,
  pvMembers: new Set(),
  lineloss: { qualified: [0, 10], completeness: 98, alertAfterDays: 3 },
};

/** Each member draws 3 to 12 kWh a day (seeded), the supply meter what they draw plus 6 %. */
const dailyCenti = members.map((_, i) => 300 + ((i * 7919) % 900));
const supplyDailyCenti = Math.round((dailyCenti.reduce((a, b) => a + b, 0) * 1.06) / district.ctRatio);
const boundaries = Array.from({ length: DAYS + 1 }, (_, k) => addDays(FIRST, k));
const registerAt = (id: string, k: number): number => {
  if (id === district.supplyMeter) return 5_000_000 + k * supplyDailyCenti;
  const i = Number(id.slice(5)) - 1;
  return 10_000 * (i + 1) + k * dailyCenti[i]!;
};

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function pureMonth(): number {
  const at = (k: number) => {
    const m = new Map<string, FreezeValue>();
    for (const id of [district.supplyMeter, ...members]) m.set(id, { frozenAt: `${boundaries[k]}T00:00`, importCenti: registerAt(id, k) });
    return m;
  };
  const sides = boundaries.map((_, k) => at(k));
  const start = performance.now();
  let check = 0;
  for (let d = 0; d < DAYS; d++) {
    const f = computeFigure(district, {
      kind: 'daily',
      period: boundaries[d]!,
      startBoundary: boundaries[d]!,
      endBoundary: boundaries[d + 1]!,
      start: sides[d]!,
      end: sides[d + 1]!,
    });
    check += f.ratePct ?? 0;
  }
  computeFigure(district, {
    kind: 'monthly',
    period: '2026-11',
    startBoundary: FIRST,
    endBoundary: '2026-12-01',
    start: sides[0]!,
    end: sides[DAYS]!,
  });
  const ms = performance.now() - start;
  if (!(check > 0)) throw new Error('no rate computed');
  return ms;
}

/**
 * The daemon's job on 2026-12-01 at 00:20, November due. `stored`: the freezes were read before (the job computes and
 * publishes only); otherwise it reads all 62,031 from the in-memory meters and stores them first (one commit per meter).
 */
async function serviceMonth(stored: boolean): Promise<{ ms: number; reads: number; published: number; monthly: number; dbBytes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-lineloss-'));
  try {
    const clock = new ManualClock(Date.parse('2026-12-01T00:20:00Z'));
    const store = openStore({ path: join(dir, 'meterd.db'), clock });
    const today = '2026-12-01';
    const ids = [district.supplyMeter, ...members];
    if (stored)
      store.transaction((tx) => {
        for (const id of ids)
          for (const [k, b] of boundaries.entries())
            upsertFreeze(tx, { meterId: id, boundary: b, frozenAt: `${b}T00:00`, importCenti: registerAt(id, k), readAt: clock.now() });
      });
    const meters = new Map<string, LinelossMeter>();
    for (const id of ids) {
      const source: DailyFreezeSource = {
        async read(n) {
          const b = addDays(today, 1 - n);
          const k = boundaries.indexOf(b);
          if (k < 0) return { kind: 'none', reason: 'no such freeze' };
          return { kind: 'freeze', frozenAt: `${b}T00:00`, importCenti: registerAt(id, k) };
        },
      };
      meters.set(id, { busId: 'bus1', freezes: source });
    }
    const service = new LinelossService({
      store,
      clock,
      timeZone: TZ,
      districts: [district],
      meters,
      settings: { readAt: '00:15', recallDays: 7, recallEveryMs: 7_200_000 },
      retentionDays: 90,
    });
    const start = performance.now();
    const r = await service.runDue();
    const ms = performance.now() - start;
    store.close();
    const dbBytes = statSync(join(dir, 'meterd.db')).size;
    return { ms, reads: r.reads, published: r.published.length, monthly: r.monthly.length, dbBytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

pureMonth(); // warm-up
const pure = [pureMonth(), pureMonth(), pureMonth()].sort((a, b) => a - b)[1]!;
console.log(`arithmetic: ${DAYS} days and the month of ${fmt(MEMBERS)} members: ${fmt(pure, 1)} ms (median of 3)`);
const month = await serviceMonth(true);
console.log(
  `daemon job, freezes already stored: ${month.published} days and ${month.monthly} month computed, stored (with each member's consumption) and queued: ` +
    `${fmt(month.ms)} ms (${fmt(month.ms / month.published, 1)} ms per day)`,
);
const all = await serviceMonth(false);
console.log(
  `daemon job, reading first: ${fmt(all.reads)} freezes from in-memory meters stored (one commit per meter), then the same: ${fmt(all.ms)} ms; ` +
    `database ${fmt(all.dbBytes / 1024 / 1024, 1)} MiB`,
);
