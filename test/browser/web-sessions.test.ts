import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * Console sessions live in the gateway's database: a technician signed in before a restart of the gateway and its
 * console is still signed in after it (same cookie, same CSRF token: an action works), and signing out deletes the row.
 */
let rig: ConsoleRig;
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium();
  rig = await startConsoleRig({ meters: 1 });
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.online, 'room-101 online');
  context = await browser.newContext({ locale: 'en-GB' });
  page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
}, 40_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await rig?.close();
});

describe('console sessions across a restart', { timeout: 60_000 }, () => {
  it('a technician signed in before a restart is still signed in after it, and may act', async () => {
    await page.goto(rig.url);
    await page.fill('#signin-name', 'tech');
    await page.fill('#signin-password', rig.passwords.tech!);
    await page.press('#signin-password', 'Enter');
    await page.waitForSelector('#overview');
    expect(rig.gateway.store.webSessions.count()).toBe(1);

    await rig.restart();
    // The console listens on a new port after the restart; the cookie belongs to the host, so it goes along.
    await page.goto(`${rig.url}#/meter/room-101`);
    await page.waitForSelector('#meter-page');
    expect(await page.textContent('#who')).toBe('tech · technician');
    expect(await page.locator('#signin-name').count()).toBe(0);
    await page.click('#act-read');
    await page.locator('#action-result', { hasText: 'Done' }).waitFor();
    await screenshot(page, 'session-after-restart');
  });

  it('signing out deletes the session: the row is gone and the page asks for a sign-in', async () => {
    expect(rig.gateway.store.webSessions.count()).toBe(1);
    await page.click('#sign-out');
    await page.waitForSelector('#signin-name');
    expect(rig.gateway.store.webSessions.count()).toBe(0);
    await page.reload();
    await page.waitForSelector('#signin-name');
  });
});
