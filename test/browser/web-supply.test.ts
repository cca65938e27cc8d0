import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { UserService } from '../../src/services/users.js';
import { launchChromium } from '../helpers/browser.js';
import { eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * 停(限)电 from the meter page through the station's supply commands: a technician gives notice to cut, may not approve
 * her own notice, a second technician approves it; either may cancel an open notice.
 */
let rig: ConsoleRig;
let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  browser = await launchChromium();
  rig = await startConsoleRig({ meters: 1 });
  await new UserService({ store: rig.gateway.store, clock: systemClock }).add('tech2', 'technician', 'second-tech-pw');
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.online, 'room-101 online');
}, 40_000);

afterAll(async () => {
  for (const c of contexts) await c.close();
  await browser?.close();
  await rig?.close();
});

async function meterPage(user: string, password: string): Promise<Page> {
  const context = await browser.newContext({ locale: 'en-GB' });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(`${rig.url}#/meter/room-101`);
  await page.fill('#signin-name', user);
  await page.fill('#signin-password', password);
  await page.press('#signin-password', 'Enter');
  await page.waitForSelector('#supply');
  return page;
}

describe('supply cuts with notice from the meter page', { timeout: 60_000 }, () => {
  it('a notice by one technician, approved by another (supply-notice, supply-approve); not by herself', async () => {
    const tech = await meterPage('tech', rig.passwords.tech!);
    await tech.click('#supply-notice');
    await tech.fill('#supply-note', 'three months unpaid');
    await tech.press('#supply-note', 'Enter');
    expect(await tech.textContent('#supply-confirm')).toMatch(/^Give notice to cut room-101\?/);
    await tech.press('#supply-ok', 'Enter');
    await tech.locator('#supply-notices tr[data-state="notified"]').waitFor();
    const [notice] = rig.gateway.store.supply.list({ meterId: 'room-101' });
    expect(notice).toMatchObject({ reason: 'arrears', requestedBy: 'tech', note: 'three months unpaid', state: 'notified' });
    expect(await tech.locator(`tr[data-notice="${notice!.id}"] [data-act="approve"]`).isDisabled()).toBe(true);

    const tech2 = await meterPage('tech2', 'second-tech-pw');
    await tech2.click(`tr[data-notice="${notice!.id}"] [data-act="approve"]`);
    await tech2.locator(`tr[data-notice="${notice!.id}"]:not([data-state="notified"])`).waitFor();
    expect(rig.gateway.store.supply.notice(notice!.id)).toMatchObject({ approvedBy: 'tech2' });
  });

  it('an open notice is cancelled from the page (supply-cancel)', async () => {
    const tech = await meterPage('tech', rig.passwords.tech!);
    const [notice] = rig.gateway.store.supply.list({ meterId: 'room-101' });
    await tech.click(`tr[data-notice="${notice!.id}"] [data-act="cancel"]`);
    await tech.locator(`tr[data-notice="${notice!.id}"][data-state="cancelled"]`).waitFor();
    expect(rig.gateway.store.supply.notice(notice!.id)).toMatchObject({ state: 'cancelled', cancelledBy: 'tech' });
  });
});
