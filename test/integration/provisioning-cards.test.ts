import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CardProvisioning, LedgerCardSales } from '../../src/cards/index.js';
import { registerCardCommand } from '../../src/cli/commands/card.js';
import { errorLine } from '../../src/cli/errors.js';
import { systemClock } from '../../src/clock.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, insertIntoMeter, SimulatedEncoder, type VirtualSle4442 } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

// The counter's provisioning on the simulated encoder with virtual SLE4442 cards and the real books: a blank card
// opened for a customer and sold onto, replaced after a loss (the old serial refused), a card meter adopted at its
// first visit, and the card health check.

const layout = loadCardLayout('sle4442-dorm');
const METER = '000000000301';
const CUSTOMER = '880000000301';
let pty: PtyPair;
let encoder: SimulatedEncoder;
let store: Store;

beforeAll(async () => {
  pty = await createPtyPair();
  encoder = new SimulatedEncoder({ framing: 'star' });
  await encoder.attach(pty.b);
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-provcards-')), 'meterd.db'), clock: systemClock });
});
afterAll(async () => {
  store?.close();
  await encoder?.close();
  await pty?.close();
});

/** `meterd card ARGS` in-process against the simulated encoder and the test's books; the printed lines, or the error line. */
async function card(...args: string[]): Promise<{ out: string[]; error?: string }> {
  const out: string[] = [];
  const books = new LedgerCardSales(() => store);
  const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: () => undefined });
  registerCardCommand(
    program,
    { out: (l) => out.push(l) },
    { recorder: books, books, provisioning: new CardProvisioning(() => store), env: {} },
  );
  try {
    await program.parseAsync(['card', ...args, '--port', pty.a], { from: 'user' });
    return { out };
  } catch (err) {
    return { out, error: errorLine(err) };
  }
}

/** The customer inserts the card in the meter at home: it loads the purchase and writes its state back. */
function insertAtHome(c: VirtualSle4442, meter: { purchaseCount: number; balance: number }) {
  return insertIntoMeter(c, layout, { meterNumber: METER, ...meter });
}

describe('opening, selling, replacing: one customer card from blank to lost', () => {
  let first: VirtualSle4442;
  let replacement: VirtualSle4442;

  it('opens an account on a blank card with a first purchase: verified, an opening entry and one sale in the books', async () => {
    first = cards.blank();
    encoder.insert(first);
    const r = await card(
      'open',
      '--meter',
      METER,
      '--customer',
      CUSTOMER,
      '--name',
      'Wang Li',
      '--room',
      '3-301',
      '--kwh',
      '20',
      '--operator',
      'alice',
      '--json',
    );
    expect(r.error).toBeUndefined();
    const opened = JSON.parse(r.out[0]!) as { cardSerial: number; purchaseCount: number; openedBooks: boolean };
    expect(opened).toMatchObject({ cardSerial: 1, purchaseCount: 1, openedBooks: true });
    encoder.remove();

    const entries = store.ledger.list({ meterId: METER });
    expect(entries.map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([
      ['opening', 0, 0],
      ['card', 1, 2000],
    ]);
    expect(store.archive.get(CUSTOMER)).toMatchObject({ meterAddress: METER, cardSerial: '1', state: 'active', name: 'Wang Li' });
    expect(store.archive.history(CUSTOMER).map((h) => h.action)).toEqual(['open-card']);

    // The meter takes the opening card as its first purchase.
    expect(insertAtHome(first, { purchaseCount: 0, balance: 0 }).outcome).toBe('loaded');
  });

  it('a blank card is never opened twice for the same customer, and an issued card is never overwritten', async () => {
    encoder.insert(cards.blank());
    expect((await card('open', '--meter', METER, '--customer', CUSTOMER, '--operator', 'alice')).error).toBe(
      `meterd: CUSTOMER_HAS_CARD: customer ${CUSTOMER} already has card 1; if it is lost or broken, replace it (card replace), which keeps the last purchase`,
    );
    encoder.remove();
    encoder.insert(first);
    expect(
      (await card('open', '--meter', '000000000399', '--customer', '880000000399', '--name', 'X', '--room', 'Y', '--operator', 'alice'))
        .error,
    ).toMatch(/^meterd: CARD_NOT_BLANK: this card is already issued \(meter 000000000301\); put a blank card in the encoder/);
    encoder.remove();
  });

  it('sells onto the opened card at books + 1', async () => {
    encoder.insert(first);
    const r = await card('sell', '--meter', METER, '--kwh', '15', '--operator', 'bob');
    expect(r.error).toBeUndefined();
    expect(r.out[0]).toContain('purchase count 2');
    encoder.remove();
  });

  it('replaces the card after a loss: the last purchase again on a new serial, no new sale; the old serial is recorded lost', async () => {
    const salesBefore = store.ledger.list({ meterId: METER }).length;
    replacement = cards.blank();
    encoder.insert(replacement);
    const r = await card('replace', '--customer', CUSTOMER, '--reason', 'lost', '--operator', 'carol', '--json');
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out[0]!)).toMatchObject({ cardSerial: 2, oldSerial: '1', purchaseCount: 2, amount: 1500 });
    encoder.remove();
    expect(store.ledger.list({ meterId: METER })).toHaveLength(salesBefore);
    expect(store.archive.lostCard('1')).toMatchObject({ reason: 'lost', replacedBy: '2', operator: 'carol' });
    expect(store.archive.get(CUSTOMER)?.cardSerial).toBe('2');
    // The purchase the customer had not loaded yet is not lost with the card: the meter loads it from the replacement.
    expect(insertAtHome(replacement, { purchaseCount: 1, balance: 2000 }).outcome).toBe('loaded');
  });

  it('the lost card, found and presented later, is refused with the reason and what to do', async () => {
    encoder.insert(first);
    const r = await card('sell', '--meter', METER, '--kwh', '5', '--operator', 'bob');
    expect(r.error).toMatch(
      /^meterd: CARD_REPORTED_LOST: card 1 was reported lost on \d{4}-\d{2}-\d{2} and replaced by card 2: keep it, and serve the customer on the replacement card$/,
    );
    const health = await card('health', '--json');
    expect(health.error).toMatch(/CARD_UNHEALTHY/);
    expect((JSON.parse(health.out[0]!) as { findings: string[] }).findings[0]).toMatch(/^card 1 was reported lost/);
    encoder.remove();
  });

  it('the replacement card sells on, and its health check finds the card, the archive and the books in agreement', async () => {
    encoder.insert(replacement);
    expect((await card('sell', '--meter', METER, '--kwh', '10', '--operator', 'bob')).out[0]).toContain('purchase count 3');
    encoder.remove();
    expect(insertAtHome(replacement, { purchaseCount: 2, balance: 3500 }).outcome).toBe('loaded');
    encoder.insert(replacement);
    const h = await card('health');
    expect(h.error).toBeUndefined();
    expect(h.out.at(-1)).toBe('healthy: the card, the archive and the books agree');
    encoder.remove();
  });
});

describe('a card meter adopted at its first visit', () => {
  const OLD_METER = '000000000302';
  const oldCard = () =>
    cards.ours(layout, {
      meterNumber: OLD_METER,
      customerNumber: '000000000302',
      cardSerial: 77,
      purchaseCount: 5,
      purchaseAmount: 3000,
      writeBack: { balance: 1250, purchaseCount: 5 },
    });

  it('offers the adoption instead of a dead end, and with --adopt sells at the card count + 1', async () => {
    const c = oldCard();
    encoder.insert(c);
    const refused = await card('sell', '--meter', OLD_METER, '--kwh', '10', '--operator', 'bob');
    expect(refused.error).toBe(
      `meterd: ADOPTION_NEEDED: meter ${OLD_METER} has no history in the books and this card shows purchase 5: if this is the meter's first visit, confirm its adoption from the card (card sell --adopt, or adopt: true in card-sell) and the sale goes on at 6`,
    );
    expect(store.ledger.list({ meterId: OLD_METER })).toEqual([]);
    const sold = await card('sell', '--meter', OLD_METER, '--kwh', '10', '--operator', 'bob', '--adopt');
    expect(sold.error).toBeUndefined();
    expect(sold.out[0]).toContain('purchase count 6');
    encoder.remove();
    expect(store.ledger.list({ meterId: OLD_METER }).map((e) => [e.channel, e.purchaseCount, e.amount, e.operator])).toEqual([
      ['opening', 5, 3000, 'bob'],
      ['card', 6, 1000, 'bob'],
    ]);
  });

  it('a meter with history that disagrees still refuses, as before', async () => {
    const c = cards.ours(layout, {
      meterNumber: OLD_METER,
      customerNumber: '000000000302',
      cardSerial: 77,
      purchaseCount: 9,
      purchaseAmount: 3000,
      writeBack: { balance: 1250, purchaseCount: 9 },
    });
    encoder.insert(c);
    const r = await card('sell', '--meter', OLD_METER, '--kwh', '10', '--operator', 'bob', '--adopt');
    expect(r.error).toMatch(/^meterd: CARD_COUNT_MISMATCH: meter 000000000302 reports 9 purchases but the books have 6/);
    encoder.remove();
  });
});

describe('rewriting a damaged card from the books', () => {
  const M = '000000000303';
  const C = '880000000303';
  let c: VirtualSle4442;

  it('a damaged card whose serial the archive knows is rewritten with the last purchase: no sale, a history line', async () => {
    c = cards.blank();
    encoder.insert(c);
    const opened = await card(
      'open',
      '--meter',
      M,
      '--customer',
      C,
      '--name',
      'Li Na',
      '--room',
      '3-303',
      '--kwh',
      '10',
      '--operator',
      'alice',
      '--json',
    );
    expect(opened.error).toBeUndefined();
    encoder.remove();
    expect(insertIntoMeter(c, layout, { meterNumber: M, purchaseCount: 0, balance: 0 }).outcome).toBe('loaded');
    encoder.insert(c);
    expect((await card('sell', '--meter', M, '--kwh', '5', '--operator', 'bob')).error).toBeUndefined();
    encoder.remove();
    const serial = store.archive.get(C)!.cardSerial!;
    // Static on the card: the marker and the purchase area are garbage now; the serial bytes survived.
    c.main[0x21] = c.main[0x21]! ^ 0x5a;
    c.main[0x45] = c.main[0x45]! ^ 0xff;
    encoder.insert(c);
    const health = await card('health', '--json');
    expect(health.error).toMatch(/CARD_UNHEALTHY/);
    expect((JSON.parse(health.out[0]!) as { findings: string[] }).findings.join(' | ')).toMatch(/rewrite it from the books \(card rewrite/);
    const ledgerBefore = store.ledger.list({ meterId: M }).map((e) => [e.channel, e.purchaseCount, e.amount]);

    const r = await card('rewrite', '--operator', 'dave', '--json');
    expect(r.error).toBeUndefined();
    const rewritten = JSON.parse(r.out[0]!) as Record<string, unknown>;
    expect(rewritten).toMatchObject({
      meterNumber: M,
      customerNo: C,
      cardSerial: serial,
      role: 'replacement',
      purchaseCount: 2,
      amount: 500,
    });
    expect(rewritten.problems).toEqual(expect.arrayContaining(['identity area checksum wrong', 'purchase area checksum wrong']));
    expect(store.ledger.list({ meterId: M }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual(ledgerBefore);
    const last = store.archive.history(C).at(-1)!;
    expect(last).toMatchObject({ operator: 'dave', action: 'rewrite-card' });
    expect(last.changes.cardSerial).toEqual([serial, serial]);
    expect(last.changes.purchaseOnCard?.[1]).toBe(2);
    const after = await card('health');
    expect(after.error).toBeUndefined();
    expect(after.out.at(-1)).toBe('healthy: the card, the archive and the books agree');
    encoder.remove();
    // The meter had loaded purchase 1 only: it takes purchase 2 from the rewritten card.
    expect(insertIntoMeter(c, layout, { meterNumber: M, purchaseCount: 1, balance: 1000 }).outcome).toBe('loaded');
  });

  it('a card whose serial is unreadable is refused until the operator names the customer', async () => {
    const serial = store.archive.get(C)!.cardSerial!;
    c.main.fill(0xee, 0x2b, 0x35); // customer number and serial: not BCD, and a serial the archive has never given
    encoder.insert(c);
    const refused = await card('rewrite', '--operator', 'dave');
    expect(refused.error).toBe(
      `meterd: CARD_UNKNOWN: the books do not know card ${0xeeeeeeee}: no customer in the archive has it; name the customer (--customer N) if it is theirs, or open a new card`,
    );
    expect((await card('rewrite', '--customer', '880000000399', '--operator', 'dave')).error).toBe(
      'meterd: CARD_UNKNOWN: customer 880000000399 is not in the archive: the books do not know this card; import the archive or open a card',
    );
    const r = await card('rewrite', '--customer', C, '--operator', 'dave', '--json');
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out[0]!)).toMatchObject({ customerNo: C, cardSerial: serial, purchaseCount: 2 });
    encoder.remove();
  });

  it('a blank card, another system’s card and a lost card are never rewritten', async () => {
    encoder.insert(cards.blank());
    expect((await card('rewrite', '--customer', C, '--operator', 'dave')).error).toMatch(/^meterd: CARD_NOT_ISSUED: this card is blank/);
    encoder.remove();
    encoder.insert(cards.foreign());
    expect((await card('rewrite', '--customer', C, '--operator', 'dave')).error).toMatch(/^meterd: NOT_OUR_CARD: /);
    encoder.remove();
    const lost = cards.ours(layout, {
      meterNumber: METER,
      customerNumber: CUSTOMER,
      cardSerial: 1,
      purchaseCount: 1,
      purchaseAmount: 2000,
    });
    lost.main[0x21] = lost.main[0x21]! ^ 0x5a;
    encoder.insert(lost);
    expect((await card('rewrite', '--operator', 'dave')).error).toMatch(/^meterd: CARD_REPORTED_LOST: card 1 was reported lost/);
    encoder.remove();
  });
});

describe('parameter cards (参数卡)', () => {
  it('writes the price and limits onto a blank card, reads them back, and records them with the operator', async () => {
    const c = cards.blank();
    encoder.insert(c);
    const r = await card(
      'param',
      ...[
        '--price',
        '0.5283',
        '--alarm1',
        '20',
        '--alarm2',
        '10',
        '--overdraft',
        '5',
        '--hoarding',
        '500',
        '--operator',
        'alice',
        '--json',
      ],
    );
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.out[0]!)).toMatchObject({
      operator: 'alice',
      meterAddress: null,
      unit: '0.01kWh',
      price: 5283,
      alarm1: 2000,
      alarm2: 1000,
      overdraft: 500,
      hoarding: 50_000,
    });
    // On the card, where the layout puts them: 0.0001 yuan and 0.01 kWh, big-endian.
    expect([...c.main.subarray(0x90, 0xa4)]).toEqual([
      ...[0, 0, 0x14, 0xa3],
      ...[0, 0, 0x07, 0xd0],
      ...[0, 0, 0x03, 0xe8],
      ...[0, 0, 0x01, 0xf4],
      ...[0, 0, 0xc3, 0x50],
    ]);
    const read = await card('read', '--json');
    expect(JSON.parse(read.out[0]!)).toMatchObject({
      role: 'parameter',
      valid: true,
      meterNumber: '000000000000',
      parameters: { price: 5283, alarm1: 2000, alarm2: 1000, overdraft: 500, hoarding: 50_000, ok: true },
    });
    expect((await card('read')).out).toContain(
      'parameters: price 0.5283 yuan/kWh, alarm 1 20.00 kWh, alarm 2 10.00 kWh, overdraft 5.00 kWh, hoarding 500.00 kWh',
    );
    expect(store.parameterCards.list()).toHaveLength(1);

    // The same card rewritten for one meter: its customer's history notes it.
    const again = await card(
      'param',
      ...[
        '--meter',
        METER,
        '--price',
        '0.6',
        '--alarm1',
        '30',
        '--alarm2',
        '30',
        '--overdraft',
        '0',
        '--hoarding',
        '0',
        '--operator',
        'bob',
      ],
    );
    expect(again.error).toBeUndefined();
    expect(again.out[0]).toMatch(
      /^parameter card \d+ written for meter 000000000301: price 0\.6000 yuan\/kWh, alarm 1 30\.00 kWh, alarm 2 30\.00 kWh, overdraft 0\.00 kWh, hoarding no limit; read back and recorded for bob$/,
    );
    expect(store.parameterCards.list({ meterAddress: METER }).map((p) => [p.operator, p.price])).toEqual([['bob', 6000]]);
    expect(store.archive.history(CUSTOMER).at(-1)).toMatchObject({ operator: 'bob', action: 'parameter-card' });
    encoder.remove();
  });

  it('refuses values that do not fit, and a customer card, before anything is written', async () => {
    const args = (over: Record<string, string>) =>
      Object.entries({ price: '0.5', alarm1: '20', alarm2: '10', overdraft: '5', hoarding: '500', ...over }).flatMap(([k, v]) => [
        `--${k}`,
        v,
      ]);
    const c = cards.blank();
    encoder.insert(c);
    expect((await card('param', ...args({ alarm2: '25' }), '--operator', 'alice')).error).toBe(
      'meterd: USAGE: --alarm2 must be at most alarm1: alarm 2 is the second warning, at a lower balance',
    );
    expect((await card('param', ...args({ price: '0.52831' }), '--operator', 'alice')).error).toBe(
      'meterd: USAGE: --price must have at most 4 decimals (0.0001 yuan)',
    );
    expect((await card('param', ...args({ hoarding: '20000' }), '--operator', 'alice')).error).toBe(
      'meterd: USAGE: --hoarding must be at most 10000 kWh',
    );
    expect(c.presentations).toBe(0);
    encoder.remove();
    const customerCard = cards.ours(layout, {
      meterNumber: METER,
      customerNumber: CUSTOMER,
      cardSerial: 2,
      purchaseCount: 3,
      purchaseAmount: 1000,
    });
    encoder.insert(customerCard);
    expect((await card('param', ...args({}), '--operator', 'alice')).error).toBe(
      "meterd: WRONG_CARD_ROLE: this is a customer's card (meter 000000000301); write a parameter card on a blank card or a service card",
    );
    expect(customerCard.presentations).toBe(0);
    encoder.remove();
  });

  it('a layout without a parameter area says so', async () => {
    const text = readFileSync(layout.source, 'utf8')
      .replace(/^ {2}parameter: +#.*\n {4}from: 0x90[\s\S]*?at: 0xAF \}\n/m, '')
      .replace(/^ {2}param[A-Z]\w*:.*\n/gm, '')
      .replace('id: sle4442-dorm', 'id: sle4442-plain');
    const dir = mkdtempSync(join(tmpdir(), 'meterd-layout-'));
    writeFileSync(join(dir, 'sle4442-plain.yaml'), text);
    encoder.insert(cards.blank());
    const r = await card(
      'param',
      '--layout',
      join(dir, 'sle4442-plain.yaml'),
      ...['--price', '0.5', '--alarm1', '2', '--alarm2', '1'],
      ...['--overdraft', '0', '--hoarding', '0', '--operator', 'alice'],
    );
    expect(r.error).toMatch(/^meterd: NO_PARAMETER_AREA: card layout sle4442-plain has no parameter area/);
    encoder.remove();
  });
});
