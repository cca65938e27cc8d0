import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { screenshot } from '../helpers/browser.js';
import { startConsoleBrowser, type ConsoleBrowser } from '../helpers/console-browser.js';
import { eventually, type ConsoleRig } from '../helpers/web-console.js';

/**
 * The counter in a real browser: a cashier sells a card on the simulated encoder by keyboard alone, gets the receipt,
 * finds the sale in today's books, and a second sale on the same card is refused in a sentence with what to do.
 */
let web: ConsoleBrowser;
let rig: ConsoleRig;
let page: Page;

beforeAll(async () => {
  web = await startConsoleBrowser({
    rig: { card: true },
    user: 'cashier',
    context: { acceptDownloads: true },
    ready: (r) => eventually(() => r.gateway.store.meterStates.get('room-101')?.online, 'room-101 online'),
  });
  ({ rig, page } = web);
}, 40_000);

afterAll(async () => {
  await web?.close();
});

describe('the counter and the books in a browser', { timeout: 60_000 }, () => {
  it('sells a card by keyboard alone and prints a receipt with the number, meter, amount, count and operator', async () => {
    await page.click('#nav-counter');
    await page.waitForSelector('#counter-page');
    await page.keyboard.press('F2');
    await page.locator('#card-meter', { hasText: 'room-101' }).waitFor();
    await page.locator('#sale-amount:focus').waitFor();
    await page.keyboard.type('15');
    await page.keyboard.press('Enter');
    await page.locator('#sale-ok:focus').waitFor();
    expect(await page.textContent('#sale-confirm')).toBe('Sell 15 kWh onto the card of room-101?');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#receipt');
    expect(await page.textContent('#receipt-amount')).toBe('15.00 kWh');
    const receipt = await page.textContent('#receipt');
    expect(receipt).toMatch(/Receipt no\.R\d{8}Meterroom-101/);
    expect(receipt).toMatch(/Purchase #1Operatorcashier/);
    await screenshot(page, 'counter-receipt');
    const address = rig.gateway.config.meters.find((m) => m.id === 'room-101')!.address!;
    const sale = rig.gateway.store.ledger.list({ meterId: address }).find((e) => e.channel === 'card');
    expect(sale).toMatchObject({ operator: 'cashier', purchaseCount: 1, amount: 1500, unit: 'energy' });
    expect(await page.textContent('#receipt-no')).toBe(`R${String(sale!.id).padStart(8, '0')}`);
  });

  it('refuses a second sale on a card the meter has not taken yet, in a sentence with what to do', async () => {
    await page.keyboard.press('F2');
    await page.locator('#card-meter', { hasText: 'room-101' }).waitFor();
    await page.locator('#sale-amount:focus').waitFor();
    await page.keyboard.type('5');
    await page.keyboard.press('Enter');
    await page.locator('#sale-ok:focus').waitFor();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#counter-error');
    const text = await page.textContent('#counter-error');
    expect(text).toMatch(/purchase 1 is still on the card and not yet loaded/);
    expect(text).toMatch(/the customer inserts it in the meter first/);
    await screenshot(page, 'counter-refused');
  });

  it("shows the sale in today's books per operator and channel, with three signed copies to print and a CSV", async () => {
    await page.click('#nav-books');
    await page.waitForSelector('#books-operators tr[data-operator="cashier"]');
    expect(await page.textContent('#books-operators tr[data-operator="cashier"]')).toMatch(/cashierkWh115\.00 kWh/);
    expect(await page.locator('.sheet').count()).toBe(3);
    expect(await page.locator('.sheet .signatures').first().textContent()).toMatch(/Seller:.*Cashier:/);
    await page.emulateMedia({ media: 'print' });
    expect(await page.locator('.sheet.copy').first().isVisible()).toBe(true);
    await page.emulateMedia({ media: 'screen' });
    await screenshot(page, 'books-daily');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#books-csv')]);
    const csv = await (await download.createReadStream()).toArray();
    const text = Buffer.concat(csv).toString('utf8');
    expect(text).toMatch(/^\ufeffperiod,row,operator,channel,unit,/);
    expect(text).toMatch(/,line,cashier,card,kWh,1,15\.00,/);
  });
});
