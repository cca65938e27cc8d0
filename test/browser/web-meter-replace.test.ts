import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * 拆旧换新 from the meter page: a technician moves room-101 onto the spare meter on the same bus through the station's
 * meter-replace command; the credit left on the old meter is loaded onto the new one once, and the page says so.
 */
let rig: ConsoleRig;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const SPARE = '000000000002';

beforeAll(async () => {
  browser = await launchChromium();
  rig = await startConsoleRig({ meters: 1, spareMeters: 1 });
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.balance, 'room-101 read');
  context = await browser.newContext({ locale: 'en-GB' });
  page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(`${rig.url}#/meter/room-101`);
  await page.fill('#signin-name', 'tech');
  await page.fill('#signin-password', rig.passwords.tech!);
  await page.press('#signin-password', 'Enter');
  await page.waitForSelector('#meter-page');
}, 40_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await rig?.close();
});

describe('replacing a meter from its page', { timeout: 60_000 }, () => {
  it('refuses the point’s own meter as the new one, in a sentence, and changes nothing', async () => {
    await page.click('#act-replace');
    await page.locator('#replace-newAddress:focus').waitFor();
    await page.keyboard.type('1');
    await page.fill('#replace-reason', 'display dead');
    await page.press('#replace-reason', 'Enter');
    expect(await page.textContent('#replace-confirm')).toBe('Move room-101 onto the meter 1, with its credit?');
    await page.press('#dialog-ok', 'Enter');
    await page.waitForSelector('#replace-error');
    expect(await page.textContent('#replace-error')).toBe(
      "000000000001 is the meter installed at room-101 now: give the new meter's address",
    );
    expect(rig.gateway.store.register.active('room-101')?.address).toBe('000000000001');
    await page.click('#dialog-replace button[type="button"]');
  });

  it('moves the point onto the spare meter with its credit, once (meter-replace)', async () => {
    const balance = rig.gateway.store.meterStates.get('room-101')!.balance!;
    // The account is opened on the new meter first (the station writes the customer's number into it): a meter with
    // another customer's number refuses the credit (CUSTOMER_MISMATCH), which the page would show as a sentence.
    rig.sim.meters.get(SPARE)!.seed('customer.number', rig.gateway.config.meters[0]!.customerNo!, Date.now());
    await page.click('#act-replace');
    await page.locator('#replace-newAddress:focus').waitFor();
    await page.keyboard.type(SPARE);
    await page.fill('#replace-reason', 'display dead');
    await page.press('#replace-reason', 'Enter');
    await page.press('#dialog-ok', 'Enter');
    await page.locator('#action-result', { hasText: 'Replaced' }).waitFor({ timeout: 30_000 });
    expect(await page.textContent('#action-result')).toMatch(
      new RegExp(`^Replaced: now on meter ${SPARE}; \\d+\\.\\d{2} yuan moved onto it\\.$`),
    );
    expect(rig.gateway.store.register.active('room-101')?.address).toBe(SPARE);
    const transfer = rig.gateway.store.ledger.list({ meterId: 'room-101' }).filter((e) => e.channel === 'transfer');
    expect(transfer).toHaveLength(1);
    expect(balance.moneyYuan).toBeGreaterThan(0);
    await screenshot(page, 'meter-replaced');
  });
});
