import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerCardCommand } from '../../src/cli/commands/card.js';
import { errorLine } from '../../src/cli/errors.js';
import { systemClock } from '../../src/clock.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { cards, SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const layout = loadCardLayout('sle4442-dorm');
const METER = '000012345678';
let pty: PtyPair;
let sim: SimulatedEncoder;
let store: Store;
let books: LedgerCardSales;

beforeAll(async () => {
  pty = await createPtyPair();
  sim = new SimulatedEncoder({ framing: 'star' });
  await sim.attach(pty.b);
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-cardbooks-')), 'meterd.db'), clock: systemClock });
  books = new LedgerCardSales(() => store);
});
afterAll(async () => {
  store?.close();
  await sim?.close();
  await pty?.close();
});

async function meterd(...args: string[]): Promise<{ lines: string[]; error?: string }> {
  const lines: string[] = [];
  const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => lines.push(s), writeErr: () => undefined });
  registerCardCommand(program, { out: (l) => lines.push(l) }, { recorder: books, books, env: {} });
  try {
    await program.parseAsync([...args, '--port', pty.a], { from: 'user' });
    return { lines };
  } catch (err) {
    return { lines, error: errorLine(err) };
  }
}

describe('card sales go into the same ledger as remote top-ups', () => {
  it('a verified card sale is one ledger entry (channel card), and the books give the next count from it', async () => {
    sim.insert(
      cards.ours(layout, {
        meterNumber: METER,
        customerNumber: '000000000042',
        purchaseCount: 3,
        purchaseAmount: 1000,
        writeBack: { balance: 350, purchaseCount: 3 },
      }),
    );
    await books.record({
      channel: 'card',
      meterNumber: METER,
      purchaseCount: 3,
      amount: 1000,
      unit: '0.01kWh',
      operator: 'alice',
      encoder: 'star-st102',
      layout: 'sle4442-dorm',
      at: new Date().toISOString(),
    });
    const r = await meterd('card', 'sell', '--meter', METER, '--kwh', '20', '--operator', 'bob');
    expect(r.error).toBeUndefined();
    const entries = store.ledger.list({ meterId: METER });
    expect(entries.map((e) => [e.channel, e.state, e.purchaseCount, e.amount, e.operator])).toEqual([
      ['card', 'applied', 3, 1000, 'alice'],
      ['card', 'applied', 4, 2000, 'bob'],
    ]);
    expect(await books.lastSale(METER)).toEqual({ count: 4, amount: 2000 });
  });

  it('recording the same meter and count twice keeps one entry', async () => {
    const sale = {
      channel: 'card' as const,
      meterNumber: '000000000777',
      purchaseCount: 1,
      amount: 500,
      unit: 'fen' as const,
      operator: 'alice',
      encoder: 'x',
      layout: 'y',
      at: new Date().toISOString(),
    };
    await books.record(sale);
    await books.record(sale);
    expect(store.ledger.list({ meterId: '000000000777' })).toHaveLength(1);
    expect(store.ledger.list({ meterId: '000000000777' })[0]).toMatchObject({ unit: 'money', amount: 500 });
  });
});
