import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { UserService } from '../../src/services/users.js';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { ConsoleClient, eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * The console in a real browser (Debian's Chromium through playwright-core) on a real gateway with simulated prepaid
 * meters: what a cashier and a technician see and may do. Screenshots go to test-artifacts/web/.
 */
let rig: ConsoleRig;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  rig = await startConsoleRig();
  await eventually(
    () => ['room-101', 'room-102', 'room-103'].every((id) => rig.gateway.store.meterStates.get(id)?.online),
    'meters online',
  );
}, 40_000);

afterAll(async () => {
  for (const c of contexts) await c.close();
  await browser?.close();
  await rig?.close();
});

async function signedIn(user: string, locale = 'en-GB'): Promise<Page> {
  const context = await browser.newContext({ locale });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(rig.url);
  await page.fill('#signin-name', user);
  await page.fill('#signin-password', rig.passwords[user]!);
  await page.press('#signin-password', 'Enter');
  await page.waitForSelector('#overview');
  return page;
}

const relayCell = (page: Page, id: string) => page.locator(`tr[data-meter="${id}"] [data-field="relay"]`);

describe('the console in a browser', { timeout: 60_000 }, () => {
  it('a technician signs in, sees the overview and the meters, and trips a meter: its relay changes on the page without a reload', async () => {
    const page = await signedIn('tech');
    await page.waitForSelector('#ov-online');
    expect(await page.textContent('#ov-meters')).toMatch(/3 online/);
    await screenshot(page, 'overview');
    await page.click('#nav-meters');
    await page.waitForSelector('tr[data-meter="room-103"]');
    expect(await relayCell(page, 'room-102').textContent()).toBe('closed (on)');
    await screenshot(page, 'meters');
    await page.evaluate(() => {
      (globalThis as { notReloaded?: boolean }).notReloaded = true;
    });

    await page.click('a[href="#/meter/room-102"]');
    await page.waitForSelector('#meter-page');
    await page.click('#act-trip');
    await page.fill('#relay-reason', 'unpaid since October');
    await page.press('#relay-reason', 'Enter');
    await page.locator('#meter-relay', { hasText: /^OPEN \(cut\)$/ }).waitFor();
    await screenshot(page, 'meter-tripped');

    // A close from another session (the station, a colleague) reaches this table through the live updates.
    await page.click('#nav-meters');
    await relayCell(page, 'room-102')
      .filter({ hasText: /^OPEN \(cut\)$/ })
      .waitFor();
    const colleague = new ConsoleClient(rig.url);
    await colleague.signIn('tech', rig.passwords.tech!);
    const closed = await colleague.json<{ status: string }>('POST', '/api/meters/room-102/relay', {
      requestId: 'browser-close-1',
      action: 'close',
      reason: 'paid',
    });
    expect(closed.body.status).toBe('done');
    await relayCell(page, 'room-102')
      .filter({ hasText: /^closed \(on\)$/ })
      .waitFor({ timeout: 5_000 });
    expect(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);
  });

  it('a meter that stops answering goes red in the table, live', async () => {
    const page = await signedIn('tech');
    await page.click('#nav-meters');
    const row = page.locator('tr[data-meter="room-103"]');
    await row.waitFor();
    expect(await row.getAttribute('class')).toBe('online');
    const address = [...rig.sim.meters.keys()][2]!;
    rig.sim.bus.setFaults({ silent: true }, address);
    try {
      await page.waitForSelector('tr[data-meter="room-103"].offline', { timeout: 15_000 });
      const colour = await row
        .locator('td')
        .first()
        .evaluate(
          (td) =>
            (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(td).backgroundColor,
        );
      expect(colour).toBe('rgb(255, 235, 233)');
      await screenshot(page, 'meters-offline');
    } finally {
      rig.sim.bus.setFaults({ silent: false }, address);
    }
    await page.waitForSelector('tr[data-meter="room-103"].online', { timeout: 15_000 });
  });

  it('a cashier tops up by keyboard and sees the load in the ledger; she cannot trip a relay, and the server refuses if she tries', async () => {
    const page = await signedIn('cashier');
    await page.goto(`${rig.url}#/meter/room-101`);
    await page.waitForSelector('#meter-page');
    expect(await page.isDisabled('#act-trip')).toBe(true);
    await page.click('#act-topup');
    await page.keyboard.type('12.50');
    await page.keyboard.press('Enter');
    expect(await page.textContent('#dialog-topup .confirm')).toBe('Load 12.50 yuan onto room-101?');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#action-result.ok');
    await page.waitForSelector('#ledger td:has-text("12.50 yuan")');
    expect(await page.textContent('#ledger tbody tr:first-child')).toMatch(/operatorload12\.50 yuanappliedcashier/);
    await screenshot(page, 'meter-topup');

    const refused = await page.evaluate(async () => {
      const me = (await (await fetch('/api/session')).json()) as { csrf: string };
      const res = await fetch('/api/meters/room-101/relay', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf },
        body: JSON.stringify({ requestId: 'cashier-trip-1', action: 'trip', reason: 'she tries' }),
      });
      return { status: res.status, body: (await res.json()) as { error: { message: string } } };
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toBe('a cashier may not do this; it needs a technician (signed in as cashier)');
    expect(rig.gateway.store.meterStates.get('room-101')?.relayState).toBe('closed');
  });

  it('a request without the CSRF token changes nothing', async () => {
    const page = await signedIn('tech');
    const forged = await page.evaluate(async () => {
      const res = await fetch('/api/meters/room-101/relay', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ requestId: 'forged-trip-1', action: 'trip', reason: 'forged' }),
      });
      return res.status;
    });
    expect(forged).toBe(403);
    expect(rig.gateway.store.meterStates.get('room-101')?.relayState).toBe('closed');
  });

  it('five wrong passwords lock the account, and the page says so', async () => {
    await new UserService({ store: rig.gateway.store, clock: systemClock }).add('zhao', 'cashier', 'the right one');
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(rig.url);
    for (let i = 0; i < 5; i++) {
      await page.fill('#signin-name', 'zhao');
      await page.fill('#signin-password', `wrong-${i}`);
      await page.press('#signin-password', 'Enter');
      await page.waitForSelector('#signin-error');
      if (i < 4) await page.locator('#signin-submit:not([disabled])').waitFor();
    }
    await page.locator('#signin-error', { hasText: 'locked' }).waitFor();
    await page.fill('#signin-name', 'zhao');
    await page.fill('#signin-password', 'the right one');
    await page.press('#signin-password', 'Enter');
    await page.locator('#signin-error', { hasText: 'too many wrong passwords: zhao is locked' }).waitFor();
    expect(await page.locator('#overview').count()).toBe(0);
    await screenshot(page, 'signin-locked');
  });

  it('speaks Chinese to a zh-CN browser, with a switch to English', async () => {
    const page = await signedIn('tech', 'zh-CN');
    expect(await page.textContent('#nav-meters')).toBe('电表');
    await page.click('#lang-switch');
    expect(await page.textContent('#nav-meters')).toBe('Meters');
  });

  it('sends the modules, the styles and the JSON answers compressed to the browser, and the session answer (its CSRF token) plain', async () => {
    const context = await browser.newContext({ locale: 'en-GB' });
    contexts.push(context);
    const page = await context.newPage();
    const encodings = new Map<string, string>();
    page.on('response', (res) => {
      const path = new URL(res.url()).pathname;
      encodings.set(`${res.request().method()} ${path}`, res.headers()['content-encoding'] ?? 'identity');
    });
    await page.goto(rig.url);
    await page.fill('#signin-name', 'tech');
    await page.fill('#signin-password', rig.passwords.tech!);
    await page.press('#signin-password', 'Enter');
    await page.click('#nav-meters');
    await page.waitForSelector('tr[data-meter="room-103"]');
    // Chromium asks for "gzip, deflate, br, zstd": the console answers br (answers under 1 KiB go as they are).
    for (const key of [
      'GET /app/app.js',
      'GET /app/i18n.js',
      'GET /app/style.css',
      'GET /vendor/preact.mjs',
      'GET /vendor/uplot.mjs',
      'GET /api/meters',
    ])
      expect([key, encodings.get(key)]).toEqual([key, 'br']);
    expect(encodings.get('POST /api/session')).toBe('identity');
  });
});
