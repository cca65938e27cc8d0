import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LedgerCardSales } from '../../src/cards/index.js';
import { systemClock } from '../../src/clock.js';
import type { GatewayConfig } from '../../src/config/index.js';
import { cardCommandHandlers } from '../../src/daemon/card-handlers.js';
import { silentLogger } from '../../src/log.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const layout = loadCardLayout('sle4442-dorm');
const METER = '000012345678';
let pty: PtyPair;
let sim: SimulatedEncoder;
let store: Store;

/** The two parts of the gateway config the counter reads; the rest of a config plays no part here. */
function config(encoders: GatewayConfig['encoders']): GatewayConfig {
  const meters = [
    { id: 'room-201', address: METER },
    { id: 'room-301-modbus', address: undefined },
  ];
  return { encoders, meters } as unknown as GatewayConfig;
}

const counter1 = () => ({ id: 'counter-1', port: pty.a, profile: 'star-st102', layout: 'sle4442-dorm' });

beforeAll(async () => {
  pty = await createPtyPair();
  sim = new SimulatedEncoder({ framing: 'star' });
  await sim.attach(pty.b);
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-gwcounter-')), 'meterd.db'), clock: systemClock });
  // The books hold purchase 3, which the meter has loaded (the card's write-back says 3).
  await new LedgerCardSales(() => store).record({
    channel: 'card',
    meterNumber: METER,
    purchaseCount: 3,
    amount: 1000,
    unit: '0.01kWh',
    operator: 'alice',
    encoder: 'counter-1',
    layout: 'sle4442-dorm',
    at: new Date().toISOString(),
  });
});
afterAll(async () => {
  store?.close();
  await sim?.close();
  await pty?.close();
});
beforeEach(() => {
  sim.insert(
    cards.ours(layout, {
      meterNumber: METER,
      customerNumber: '000000000042',
      purchaseCount: 3,
      purchaseAmount: 1000,
      writeBack: { balance: 350, purchaseCount: 3 },
    }),
  );
});

const ledger = () => store.ledger.list({ meterId: METER }).map((e) => [e.purchaseCount, e.amount, e.operator]);

describe("the gateway's card counter: each station command is one counter call on a configured encoder", () => {
  it('card-read on the default (first) encoder: done, with what the card carries', async () => {
    const handlers = cardCommandHandlers(config([counter1()]), store, silentLogger);
    const r = await handlers.cardRead({ encoder: undefined } as never);
    expect(r).toMatchObject({ status: 'done', result: { meterNumber: METER, customerNumber: '000000000042', purchase: { count: 3 } } });
  });

  it('card-sell writes books + 1 with the energy to the hundredth of a kWh, and records it', async () => {
    const handlers = cardCommandHandlers(config([counter1()]), store, silentLogger);
    const r = await handlers.cardSell({ meter: 'room-201', encoder: 'counter-1', energyKwh: 12.34, operator: 'carol' } as never);
    expect(r).toMatchObject({
      status: 'done',
      result: { meterNumber: METER, purchaseCount: 4, amount: 1234, unit: '0.01kWh', operator: 'carol' },
    });
    expect(ledger()).toEqual([
      [3, 1000, 'alice'],
      [4, 1234, 'carol'],
    ]);
  });

  it.each([
    [
      'an encoder id the config does not have',
      () => [counter1()],
      { encoder: 'counter-9' },
      'UNKNOWN_ENCODER',
      'no encoder "counter-9" in the gateway config',
    ],
    ['a gateway without encoders', () => [], {}, 'UNKNOWN_ENCODER', 'the gateway config has no encoders'],
    [
      'an encoder whose PSC is not 6 hex digits',
      () => [{ ...counter1(), psc: 'FFFFZZ' }],
      {},
      'CONFIG_INVALID',
      'encoder counter-1: psc must be 6 hex digits',
    ],
    [
      'a meter without a DL/T 645 meter number',
      () => [counter1()],
      { meter: 'room-301-modbus' },
      'NOT_A_CARD_METER',
      'meter room-301-modbus has no DL/T 645 meter number to sell cards for',
    ],
    [
      'money for a layout that carries energy',
      () => [counter1()],
      { energyKwh: undefined, amountFen: 500 },
      'UNIT_MISMATCH',
      'this card layout carries energy: give energyKwh',
    ],
  ] as const)('%s is rejected by code and message, and nothing is sold', async (_what, encoders, change, code, message) => {
    const handlers = cardCommandHandlers(config([...encoders()]), store, silentLogger);
    const before = ledger();
    const writesBefore = sim.stats().requests.write ?? 0;
    const r = await handlers.cardSell({ meter: 'room-201', energyKwh: 5, operator: 'carol', ...change } as never);
    expect(r).toEqual({ status: 'rejected', error: { code, message } });
    expect(ledger()).toEqual(before);
    expect(sim.stats().requests.write ?? 0).toBe(writesBefore);
  });

  it('the encoder is closed after each command: a technician can open it right after, and the next command works', async () => {
    const handlers = cardCommandHandlers(config([counter1()]), store, silentLogger);
    expect(await handlers.cardSell({ meter: 'room-201', amountFen: 500, operator: 'carol' } as never)).toMatchObject({
      status: 'rejected',
      error: { code: 'UNIT_MISMATCH' },
    });
    expect(await handlers.cardRead({} as never)).toMatchObject({ status: 'done' });
  });

  it('a failure that is not a card refusal (the books cannot be read) is failed with its code, and the card was not written', async () => {
    const closed = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-gwcounter-closed-')), 'meterd.db'), clock: systemClock });
    closed.close();
    const handlers = cardCommandHandlers(config([counter1()]), closed, silentLogger);
    const writesBefore = sim.stats().requests.write ?? 0;
    const r = await handlers.cardSell({ meter: 'room-201', energyKwh: 5, operator: 'carol' } as never);
    expect(r).toMatchObject({ status: 'failed', error: { code: 'STORE_CLOSED' } });
    expect(sim.stats().requests.write ?? 0).toBe(writesBefore);
  });
});
