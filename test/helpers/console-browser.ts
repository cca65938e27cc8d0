import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { launchChromium } from './browser.js';
import { startConsoleRig, type ConsoleRig } from './web-console.js';

/** A console rig and a headless browser signed in to it as one of the rig's users, on the overview page. */
export interface ConsoleBrowser {
  readonly rig: ConsoleRig;
  readonly browser: Browser;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Closes the page's context, the browser and the rig. */
  close(): Promise<void>;
}

/**
 * Starts a browser and a {@link startConsoleRig} rig, waits for what the test needs of the gateway (`ready`), opens a
 * page (English, `en-GB`, unless `context` says otherwise; a script error on the page fails the test) and signs in as
 * `user` with the rig's password.
 */
export async function startConsoleBrowser(opts: {
  readonly rig?: Parameters<typeof startConsoleRig>[0];
  readonly user: 'cashier' | 'tech' | 'admin';
  readonly context?: BrowserContextOptions;
  readonly ready?: (rig: ConsoleRig) => Promise<unknown>;
}): Promise<ConsoleBrowser> {
  const browser = await launchChromium();
  let rig: ConsoleRig | undefined;
  let context: BrowserContext | undefined;
  const close = async () => {
    await context?.close();
    await browser.close();
    await rig?.close();
  };
  try {
    rig = await startConsoleRig(opts.rig);
    await opts.ready?.(rig);
    context = await browser.newContext({ locale: 'en-GB', ...opts.context });
    const page = await context.newPage();
    page.on('pageerror', (err) => {
      throw err;
    });
    await page.goto(rig.url);
    await page.fill('#signin-name', opts.user);
    await page.fill('#signin-password', rig.passwords[opts.user]!);
    await page.press('#signin-password', 'Enter');
    await page.waitForSelector('#overview');
    return { rig, browser, context, page, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
