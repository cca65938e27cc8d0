import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CardSale, SaleBooks, SaleRecorder } from '../../src/cards/index.js';
import { registerCardCommand } from '../../src/cli/commands/card.js';
import { registerSimEncoderCommand } from '../../src/cli/commands/sim-encoder.js';
import { errorLine } from '../../src/cli/errors.js';
import { ManualClock } from '../../src/clock.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, insertIntoMeter, SimulatedEncoder, type VirtualSle4442 } from '../../src/sim/encoder/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

/** The books as an array: records card sales and answers the last one per meter (a double of our own interfaces). */
class ArrayBooks implements SaleRecorder, SaleBooks {
  readonly sales: CardSale[] = [];
  async record(sale: CardSale): Promise<void> {
    this.sales.push(sale);
  }
  async lastSale(meterNumber: string) {
    const last = this.sales.filter((s) => s.meterNumber === meterNumber).at(-1);
    return last ? { count: last.purchaseCount, amount: last.amount } : undefined;
  }
}

const layout = loadCardLayout('sle4442-dorm');
const METER = '000012345678';

describe('meterd card … against a simulated STAR encoder on a pty pair', () => {
  let pty: PtyPair;
  let sim: SimulatedEncoder;
  let books: ArrayBooks;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    pty = await createPtyPair();
    sim = new SimulatedEncoder({ framing: 'star' });
    await sim.attach(pty.b);
  });
  afterAll(async () => {
    await sim?.close();
    await pty?.close();
  });
  beforeEach(() => {
    books = new ArrayBooks();
    env = {};
  });
  afterEach(() => {
    sim.remove();
  });

  async function meterd(...args: string[]): Promise<{ lines: string[]; error?: string }> {
    const lines: string[] = [];
    const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => lines.push(s), writeErr: () => undefined });
    registerCardCommand(
      program,
      { out: (l) => lines.push(l) },
      { recorder: books, books, clock: new ManualClock(Date.UTC(2025, 2, 1, 9)), env },
    );
    try {
      await program.parseAsync([...args, '--port', pty.a], { from: 'user' });
      return { lines };
    } catch (err) {
      return { lines, error: errorLine(err) };
    }
  }

  const loaded = (count: number): VirtualSle4442 =>
    cards.ours(layout, {
      meterNumber: METER,
      customerNumber: '000000000042',
      purchaseCount: count,
      purchaseAmount: 1000,
      writeBack: { balance: 350, purchaseCount: count },
    });

  it('card read prints what the card carries, line by line', async () => {
    sim.insert(loaded(3));
    const r = await meterd('card', 'read');
    expect(r.error).toBeUndefined();
    expect(r.lines).toEqual([
      'card: SLE4442 (ATR A2131091), layout sle4442-dorm, valid',
      'role: purchase  meter: 000012345678  customer: 000000000042  serial: 1',
      'purchase on card: count 3, 10.00 kWh',
      'meter write-back: balance 3.50 kWh, purchase count 3, events none, at 2025-03-01T08:30:00',
      'PSC attempts left: 3',
    ]);
  });

  it('card read --json gives the same as data', async () => {
    sim.insert(loaded(3));
    const r = await meterd('card', 'read', '--json');
    expect(JSON.parse(r.lines[0]!)).toMatchObject({
      role: 'purchase',
      meterNumber: METER,
      purchase: { count: 3, amount: 1000 },
      writeBack: { purchaseCount: 3 },
      valid: true,
    });
  });

  it('card sell writes, verifies and records; a second sale before the meter loads it is PURCHASE_PENDING', async () => {
    const card = loaded(3);
    sim.insert(card);
    books.sales.push({
      channel: 'card',
      meterNumber: METER,
      purchaseCount: 3,
      amount: 1000,
      unit: '0.01kWh',
      operator: 'bob',
      encoder: 'counter',
      layout: layout.id,
      at: '2025-02-01T00:00:00.000Z',
    });
    const r = await meterd('card', 'sell', '--meter', '12345678', '--kwh', '20', '--operator', 'alice');
    expect(r.error).toBeUndefined();
    expect(r.lines).toEqual(['sold 20.00 kWh to meter 000012345678: purchase count 4, card verified, recorded for alice']);
    expect(books.sales.at(-1)).toMatchObject({ purchaseCount: 4, amount: 2000, operator: 'alice', at: '2025-03-01T09:00:00.000Z' });

    const again = await meterd('card', 'sell', '--meter', METER, '--kwh', '5', '--operator', 'alice');
    expect(again.error).toMatch(/^meterd: PURCHASE_PENDING: purchase 4 is still on the card/);
    expect(books.sales).toHaveLength(2);

    expect(insertIntoMeter(card, layout, { meterNumber: METER, purchaseCount: 3, balance: 350 }).outcome).toBe('loaded');
    sim.insert(card);
    expect((await meterd('card', 'sell', '--meter', METER, '--kwh', '12.5', '--operator', 'alice')).lines[0]).toMatch(
      /sold 12.50 kWh .* purchase count 5/,
    );
  });

  it("amounts are exact decimals in the layout's unit; anything else is a usage error", async () => {
    sim.insert(loaded(0));
    expect((await meterd('card', 'sell', '--meter', METER, '--amount', '50', '--operator', 'alice')).error).toMatch(
      /USAGE: this card layout carries energy .* use --kwh/,
    );
    expect((await meterd('card', 'sell', '--meter', METER, '--kwh', '1.234', '--operator', 'alice')).error).toMatch(
      /USAGE: --kwh must be a positive number with at most 2 decimals/,
    );
    expect((await meterd('card', 'sell', '--meter', METER, '--operator', 'alice')).error).toMatch(
      /USAGE: give exactly one of --kwh N or --amount Y/,
    );
    expect(books.sales).toEqual([]);
  });

  it('a wrong site PSC from METERD_CARD_PSC is one PSC_REJECTED line with the attempts left, and no sale', async () => {
    sim.insert(loaded(0));
    env.METERD_CARD_PSC = '123456';
    const r = await meterd('card', 'sell', '--meter', METER, '--kwh', '20', '--operator', 'alice');
    expect(r.error).toMatch(/^meterd: PSC_REJECTED: .*2 attempts left/);
    expect(books.sales).toEqual([]);
  });

  it("card reissue writes the books' last purchase again; with no sale in the books there is nothing to re-issue", async () => {
    sim.insert(
      cards.ours(layout, {
        meterNumber: METER,
        purchaseCount: 4,
        purchaseAmount: 2000,
        writeBack: { balance: 350, purchaseCount: 3 },
        valid: false,
      }),
    );
    expect((await meterd('card', 'reissue', '--meter', METER)).error).toMatch(/NOTHING_TO_REISSUE/);
    books.sales.push({
      channel: 'card',
      meterNumber: METER,
      purchaseCount: 4,
      amount: 2000,
      unit: '0.01kWh',
      operator: 'bob',
      encoder: 'counter',
      layout: layout.id,
      at: '2025-02-01T00:00:00.000Z',
    });
    const r = await meterd('card', 'reissue', '--meter', METER);
    expect(r.lines).toEqual(['re-issued purchase 4 (20.00 kWh) for meter 000012345678; not a new sale, nothing recorded']);
    expect(books.sales).toHaveLength(1);
  });

  it('card check and card clear (clear only with --yes)', async () => {
    sim.insert(loaded(2));
    expect((await meterd('card', 'check', '--any-meter')).lines).toEqual([
      'check card ready for any meter: insert it in the meter, then run card read',
    ]);
    expect((await meterd('card', 'clear', '--meter', METER)).error).toMatch(/^meterd: CONFIRMATION_REQUIRED: /);
    expect((await meterd('card', 'clear', '--meter', METER, '--yes')).lines[0]).toMatch(/clear card ready for meter 000012345678/);
  });

  it('a foreign card and an empty slot are one typed line each', async () => {
    sim.insert(cards.foreign());
    expect((await meterd('card', 'read')).error).toMatch(/^meterd: NOT_OUR_CARD: /);
    sim.remove();
    expect((await meterd('card', 'read')).error).toMatch(/^meterd: NO_CARD: /);
  });

  it('--wait gives the cashier time to insert the card', async () => {
    const reading = meterd('card', 'read', '--wait', '10');
    setTimeout(() => sim.insert(loaded(1)), 100);
    expect((await reading).lines[0]).toBe('card: SLE4442 (ATR A2131091), layout sle4442-dorm, valid');
  });

  it('an unknown encoder profile names where it looked', async () => {
    expect((await meterd('card', 'read', '--encoder', 'acme-9000')).error).toMatch(/PROFILE_NOT_FOUND: no encoder profile "acme-9000"/);
  });

  it('--help shows examples', async () => {
    const r = await meterd('card', 'sell', '--help');
    expect(r.lines.join('\n')).toMatch(/Examples:[\s\S]*meterd card sell --port/);
  });
});

describe('meterd sim encoder', () => {
  it('serves the framing asked for on a pty, with the card asked for, until stopped; meterd card read reads it', async () => {
    const pty = await createPtyPair();
    const stop = new AbortController();
    const simLines: string[] = [];
    const simProgram = new Command('meterd').exitOverride();
    registerSimEncoderCommand(simProgram.command('sim'), { out: (l) => simLines.push(l), signal: stop.signal });
    const running = simProgram.parseAsync(
      ['sim', 'encoder', '--pty', pty.b, '--framing', 'stx', '--card', 'ours', '--meter', '42', '--count', '7'],
      { from: 'user' },
    );
    try {
      await expect.poll(() => simLines.length).toBe(1);
      expect(simLines[0]).toBe(
        `stx encoder simulator on pty ${pty.b} with a sle4442-dorm card for meter 000000000042, purchase count 7 in the slot`,
      );
      const lines: string[] = [];
      const books = new ArrayBooks();
      const program = new Command('meterd').exitOverride();
      registerCardCommand(program, { out: (l) => lines.push(l) }, { recorder: books, books, env: {} });
      await program.parseAsync(['card', 'read', '--port', pty.a, '--encoder', 'generic-stx', '--json'], { from: 'user' });
      expect(JSON.parse(lines[0]!)).toMatchObject({ meterNumber: '000000000042', purchase: { count: 7 }, writeBack: { purchaseCount: 7 } });
    } finally {
      stop.abort();
      await running;
      await pty.close();
    }
  });

  it('refuses --pty and --tcp together, in one line', async () => {
    const program = new Command('meterd').exitOverride();
    registerSimEncoderCommand(program.command('sim'), { out: () => undefined });
    await expect(program.parseAsync(['sim', 'encoder', '--pty', '/tmp/x', '--tcp', '4001'], { from: 'user' })).rejects.toMatchObject({
      code: 'SIM_USAGE',
    });
  });
});
