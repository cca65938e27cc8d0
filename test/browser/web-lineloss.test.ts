import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { linelossSeries } from '../../src/services/lineloss/index.js';
import { screenshot } from '../helpers/browser.js';
import { startConsoleBrowser, type ConsoleBrowser } from '../helpers/console-browser.js';
import { DISTRICT_METERS, eventually } from '../helpers/web-console.js';

/**
 * The line-loss page in a real browser, on figures the gateway's own line-loss job computed from the simulated
 * meters' daily freezes at start (catch-up). District d1: supply 60 kWh a day, members 24 + 30 kWh (10 %), switched
 * on 2026-11-01 00:00 local time; the test gives the days a history before the gateway starts:
 * 11-02 qualified 10 %; 11-03 high (d1-a at 0.5 kW: 42 kWh sold, 30 %); 11-04 negative (d1-a at 1.5 kW: 66 kWh,
 * −10 %); 11-05 qualified; 11-06 not computable (d1-b's freeze of 11-07 00:00 stamped a day off). Now: 11-07 12:00.
 */
const local = (date: string, hhmm = '00:00') => {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const [h, min] = hhmm.split(':').map(Number) as [number, number];
  return new Date(y, m - 1, d, h, min).getTime();
};
const clock = new ManualClock(local('2026-11-07', '12:00'));
let web: ConsoleBrowser;
let page: Page;

beforeAll(async () => {
  web = await startConsoleBrowser({
    rig: {
      district: {
        clock,
        switchedOnAt: local('2026-11-01'),
        history: (sim) => {
          const a = sim.meters.get(DISTRICT_METERS.a)!;
          a.setPowerKw(0.5, local('2026-11-03'));
          a.setPowerKw(1.5, local('2026-11-04'));
          a.setPowerKw(1, local('2026-11-05'));
          const b = sim.meters.get(DISTRICT_METERS.b)!;
          b.setMeteringFaults({ freezeStampDays: 1 }, local('2026-11-06', '12:00'));
          b.setMeteringFaults({ freezeStampDays: 0 }, local('2026-11-07', '06:00'));
        },
      },
    },
    user: 'tech',
    ready: (rig) =>
      eventually(
        () => linelossSeries(rig.gateway.store, { district: 'd1', from: '2026-11-01', to: '2026-11-30' }).days.length === 5,
        'the five days computed at start',
        30_000,
      ),
  });
  page = web.page;
}, 60_000);

afterAll(async () => {
  await web?.close();
});

const row = (date: string) => page.locator(`#ll-days tr[data-date="${date}"]`);

describe('the line-loss page in a browser', { timeout: 60_000 }, () => {
  it("shows the district's month day by day, each class in its colour, with a chart", async () => {
    await page.click('#nav-lineloss');
    await row('2026-11-06').waitFor();
    expect(await page.inputValue('#ll-month')).toBe('2026-11');
    const classes = await page.$$eval('#ll-days tbody tr', (rows) =>
      rows.map((r) => [r.getAttribute('data-date'), r.getAttribute('data-class')]),
    );
    expect(classes).toEqual([
      ['2026-11-02', 'qualified'],
      ['2026-11-03', 'high'],
      ['2026-11-04', 'negative'],
      ['2026-11-05', 'qualified'],
      ['2026-11-06', 'not-computable'],
    ]);
    expect(await row('2026-11-03').textContent()).toMatch(/^2026-11-0360\.0042\.0018\.0030\.00 ≥20%high2\/21/);
    expect(await row('2026-11-04').textContent()).toMatch(/-10\.00negative/);
    expect(await row('2026-11-06').textContent()).toMatch(/—not computable1\/21d1-b$/);
    const colour = (date: string) =>
      row(date)
        .locator('.pill')
        .evaluate(
          (el) =>
            (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor,
        );
    expect(await colour('2026-11-02')).toBe('rgb(26, 127, 55)');
    expect(await colour('2026-11-03')).toBe('rgb(207, 34, 46)');
    expect(await colour('2026-11-04')).toBe('rgb(130, 80, 223)');
    expect(await colour('2026-11-06')).toBe('rgb(140, 149, 159)');
    expect(await page.textContent('#ll-month-open')).toMatch(/not closed yet/);
    await page.locator('#ll-chart canvas').waitFor();
    await screenshot(page, 'lineloss-month');
  });

  it("explains a day clicked in the chart: supply, the members' sum, each member against its week", async () => {
    // The x axis runs from the first day (11-02) to the last (11-06): 11-03 is a quarter of the way.
    const over = page.locator('#ll-chart .u-over');
    const box = (await over.boundingBox())!;
    await page.mouse.move(box.x + box.width / 4, box.y + box.height / 2);
    await page.mouse.click(box.x + box.width / 4, box.y + box.height / 2);
    await page.locator('#ll-day[data-date="2026-11-03"]').waitFor();
    expect(await page.textContent('#ll-day-class')).toBe('high');
    expect(await page.textContent('#ll-day-supply')).toBe('60.00 kWh');
    expect(await page.textContent('#ll-day-sales')).toBe('42.00 kWh');
    expect(await page.textContent('#ll-day-loss')).toBe('18.00 kWh · 30.00 %');
    // d1-a fell from its week's 24 kWh to 12: the largest change, listed first.
    expect(await page.locator('#ll-day-members tbody tr').first().textContent()).toBe('d1-a12.0024.00-12.00');
    await screenshot(page, 'lineloss-day-high');
  });

  it('explains a day that is not computable by the missing member and why, chosen by keyboard in the table', async () => {
    await row('2026-11-06').focus();
    await page.keyboard.press('Enter');
    await page.locator('#ll-day[data-date="2026-11-06"]').waitFor();
    expect(await page.textContent('#ll-day-class')).toBe('not computable');
    expect(await page.textContent('#ll-day-sales')).toBe('24.00 kWh');
    expect(await page.textContent('#ll-day-missing li[data-meter="d1-b"]')).toBe(
      'd1-b: the freeze for 2026-11-07 00:00 is stamped 2026-11-08 00:00',
    );
    expect(await page.textContent('#ll-day-reason')).toMatch(/members/);
  });

  it('speaks Chinese after the switch: the classes and the headings', async () => {
    await page.click('#lang-switch');
    await page.locator('#nav-lineloss', { hasText: '线损' }).waitFor();
    expect(await row('2026-11-03').locator('.pill').textContent()).toBe('高损');
    expect(await row('2026-11-04').locator('.pill').textContent()).toBe('负损');
    expect(await row('2026-11-06').locator('.pill').textContent()).toBe('不可计算');
    await screenshot(page, 'lineloss-zh');
    await page.click('#lang-switch');
  });
});
