import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, type VirtualCard } from '../../src/sim/encoder/index.js';
import { launchChromium, screenshot } from '../helpers/browser.js';
import { eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * The counter's card work besides the sale, in a real browser on the simulated encoder, by keyboard alone: card
 * health, re-issuing the books' last purchase, opening an account on a blank card (card-open), replacing a lost card
 * (card-replace, after which the lost card is refused), and a check card; each refusal a sentence with what to do.
 */
let rig: ConsoleRig;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const layout = loadCardLayout('sle4442-dorm');
const meter = (id: string) => rig.gateway.config.meters.find((m) => m.id === id)!;
const slot = () => rig.encoder!.encoder;
let lost: VirtualCard;
let replacement: VirtualCard;
function swapCard(card: VirtualCard): VirtualCard | undefined {
  const old = slot().remove();
  slot().insert(card);
  return old;
}

beforeAll(async () => {
  browser = await launchChromium();
  rig = await startConsoleRig({ card: true });
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.online, 'room-101 online');
  context = await browser.newContext({ locale: 'en-GB' });
  page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(rig.url);
  await page.fill('#signin-name', 'cashier');
  await page.fill('#signin-password', rig.passwords.cashier!);
  await page.press('#signin-password', 'Enter');
  await page.waitForSelector('#overview');
  await page.click('#nav-counter');
  await page.waitForSelector('#counter-page');
}, 40_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await rig?.close();
});

/** Presses a task's key with no field focused, as a cashier does after Esc. */
async function task(key: string, form: string): Promise<void> {
  await page.keyboard.press('Escape');
  await page.keyboard.press(key);
  await page.locator(`#task-form-${form} :focus`).waitFor();
}

/** Enter, the confirmation takes the focus, Enter again. */
async function confirm(question: RegExp): Promise<void> {
  await page.keyboard.press('Enter');
  await page.locator('#task-ok:focus').waitFor();
  expect(await page.textContent('#task-confirm')).toMatch(question);
  await page.keyboard.press('Enter');
}

describe('the counter card work in a browser', { timeout: 60_000 }, () => {
  it('H checks the card in the slot: its meter, PSC attempts left, and what the archive and the books say', async () => {
    await page.keyboard.press('h');
    await page.waitForSelector('#card-health');
    expect(await page.textContent('#health-meter')).toBe(meter('room-101').address);
    expect(await page.textContent('#health-psc')).toBe('3');
    const verdict = await page.textContent('#health-verdict');
    const findings = await page.locator('#health-findings li').allTextContents();
    expect(verdict).toBe(findings.length === 0 ? 'healthy' : `${findings.length} finding(s)`);
    await screenshot(page, 'counter-health');
  });

  it('I refuses to reissue while the books have no card sale for the meter, in a sentence with what to do', async () => {
    await task('i', 'reissue');
    await page.keyboard.type('room-101');
    await confirm(/^Write the last purchase of room-101 again onto this card\?$/);
    await page.waitForSelector('#counter-error');
    const text = await page.textContent('#counter-error');
    expect(text).toMatch(/the books have no card sale for meter \d{12}; there is nothing to re-issue/);
    expect(text).toMatch(/sell instead \(F2\)/);
  });

  it('after a sale, I writes the same purchase again onto the card: a slip, and nothing new in the books', async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F2');
    await page.locator('#sale-amount:focus').waitFor();
    await page.keyboard.type('10');
    await page.keyboard.press('Enter');
    await page.locator('#sale-ok:focus').waitFor();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#receipt');
    const sales = () => rig.gateway.store.ledger.list({ meterId: meter('room-101').address! }).filter((e) => e.channel === 'card');
    expect(sales()).toHaveLength(1);

    await task('i', 'reissue');
    expect(await page.inputValue('#task-meter')).toBe('room-101');
    await confirm(/room-101/);
    await page.waitForSelector('#slip[data-kind="reissue"]');
    expect(await page.textContent('#slip-count')).toBe('1');
    expect(await page.textContent('#slip-amount')).toBe('10.00 kWh');
    expect(await page.textContent('#slip-note')).toBe('Not a new sale: nothing moves in the books.');
    expect(sales()).toHaveLength(1);
    await screenshot(page, 'counter-reissue');
  });

  it('O opens an account on a blank card with a first purchase (card-open): a receipt, the sale in the books', async () => {
    // A card that is not blank is refused first; the same form then works with a blank card (a new request).
    const room102 = meter('room-102');
    await task('o', 'open');
    await page.fill('#task-meter', 'room-102');
    await page.fill('#task-customerNo', room102.customerNo!);
    await page.fill('#task-name', 'Wang Li');
    await page.fill('#task-room', '3-201');
    await page.fill('#task-amount', '20');
    await page.focus('#task-amount');
    await confirm(/^Open an account for customer \d+ on meter room-102 and sell 20 kWh\?$/);
    await page.waitForSelector('#counter-error');
    expect(await page.textContent('#counter-error')).toMatch(/insert a blank card/);

    swapCard(cards.blank());
    await page.focus('#task-amount');
    await confirm(/sell 20 kWh/);
    await page.waitForSelector('#slip[data-kind="open"]');
    expect(await page.textContent('#slip-amount')).toBe('20.00 kWh');
    expect(await page.textContent('#slip-count')).toBe('1');
    const sale = rig.gateway.store.ledger.list({ meterId: room102.address! }).find((e) => e.channel === 'card');
    expect(sale).toMatchObject({ operator: 'cashier', purchaseCount: 1, amount: 2000 });
    expect(await page.textContent('#slip-receipt-no')).toBe(`R${String(sale!.id).padStart(8, '0')}`);
    await screenshot(page, 'counter-open');
  });

  it('R replaces the lost card (card-replace): the last purchase again, no new sale, and the lost card is refused', async () => {
    const room102 = meter('room-102');
    lost = swapCard(cards.blank())!;
    const opened = await page.textContent('#slip-serial');
    await task('r', 'replace');
    await page.keyboard.type(room102.customerNo!);
    await confirm(new RegExp(`^Replace the lost card of customer ${room102.customerNo} with this blank card\\?$`));
    await page.waitForSelector('#slip[data-kind="replace"]');
    expect(await page.textContent('#slip-old')).toBe(`${opened} (lost, refused from now on)`);
    expect(await page.textContent('#slip-count')).toBe('1');
    expect(await page.textContent('#slip-amount')).toBe('20.00 kWh');
    expect(await page.textContent('#slip-note')).toMatch(/not a new sale/);
    expect(rig.gateway.store.ledger.list({ meterId: room102.address! }).filter((e) => e.channel === 'card')).toHaveLength(1);
    await screenshot(page, 'counter-replace');

    // The lost card still reads, but nothing is sold onto it.
    replacement = swapCard(lost)!;
    await page.keyboard.press('Escape');
    await page.keyboard.press('F2');
    await page.locator('#sale-amount:focus').waitFor();
    await page.keyboard.type('5');
    await page.keyboard.press('Enter');
    await page.locator('#sale-ok:focus').waitFor();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#counter-error');
    const newSerial = rig.gateway.store.archive.get(room102.customerNo!)?.cardSerial;
    expect(await page.textContent('#counter-error')).toMatch(
      new RegExp(
        `card ${opened} was reported lost on .* and replaced by card ${newSerial}: keep it[\\s\\S]*the customer uses the replacement card`,
      ),
    );
  });

  it('K makes a check card of a spare card for its meter; F2 then reads it as a check card', async () => {
    const room103 = meter('room-103');
    swapCard(cards.ours(layout, { meterNumber: room103.address!, customerNumber: room103.customerNo!, purchaseCount: 0 }));
    await task('k', 'check');
    await confirm(/^Make this card a check card for its meter\?$/);
    await page.waitForSelector('#slip[data-kind="check"]');
    expect(await page.textContent('#slip-meter')).toBe(room103.address);
    await page.keyboard.press('F2');
    await page.locator('#card-facts', { hasText: 'check' }).waitFor();
  });

  it('W rewrites the replacement card from the archive and the books (card-rewrite): the last purchase again, no sale', async () => {
    const room102 = meter('room-102');
    swapCard(replacement);
    await task('w', 'rewrite');
    await confirm(/^Rewrite the card of its owner from the books\?$/);
    await page.waitForSelector('#slip[data-kind="rewrite"]');
    expect(await page.textContent('#slip-serial')).toBe(rig.gateway.store.archive.get(room102.customerNo!)?.cardSerial);
    expect(await page.textContent('#slip-count')).toBe('1');
    expect(await page.textContent('#slip-amount')).toBe('20.00 kWh');
    expect(rig.gateway.store.ledger.list({ meterId: room102.address! }).filter((e) => e.channel === 'card')).toHaveLength(1);
  });

  it('M writes a parameter card for every meter (card-param), recorded with the operator; limits out of order are refused', async () => {
    swapCard(cards.blank());
    await task('m', 'param');
    const fill = async (values: string[]) => {
      for (const [i, id] of ['#task-priceYuan', '#task-alarm1', '#task-alarm2', '#task-overdraft', '#task-hoarding'].entries())
        await page.fill(id, values[i]!);
      await page.focus('#task-hoarding');
    };
    await fill(['0.5288', '10', '20', '5', '500']);
    await confirm(/^Write a parameter card for any meter of the system at 0\.5288 yuan\/kWh\?$/);
    await page.waitForSelector('#counter-error');
    expect(await page.textContent('#counter-error')).toMatch(/alarm/);
    expect(rig.gateway.store.parameterCards.list()).toHaveLength(0);

    await fill(['0.5288', '20', '10', '5', '500']);
    await confirm(/0\.5288 yuan\/kWh/);
    await page.waitForSelector('#slip[data-kind="param"]');
    expect(await page.textContent('#slip-price')).toBe('0.5288');
    expect(await page.textContent('#slip [data-limit="alarm1"]')).toBe('20.00 kWh');
    const [record] = rig.gateway.store.parameterCards.list();
    expect(record).toMatchObject({ operator: 'cashier', meterAddress: null, price: 5288, alarm1: 2000, alarm2: 1000 });
    expect(await page.textContent('#slip-receipt-no')).toBe(`P${String(record!.id).padStart(8, '0')}`);
    await screenshot(page, 'counter-param');
  });
});
