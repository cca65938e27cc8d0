import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { registerCardCommand } from '../../src/cli/commands/card.js';
import { errorLine } from '../../src/cli/errors.js';
import { systemClock } from '../../src/clock.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { Books, localDate } from '../../src/services/books/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { Poller } from '../../src/services/poller.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { cards, insertIntoMeter, SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const METER = '000012345678';
const layout = loadCardLayout('sle4442-dorm');
const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
const TZ = 'Asia/Shanghai';
let pty: PtyPair;
let encoder: SimulatedEncoder;
let meterSim: Dlt645Simulator;
let bus: FrameBus<Frame>;
let store: Store;

beforeAll(async () => {
  pty = await createPtyPair();
  encoder = new SimulatedEncoder({ framing: 'star' });
  await encoder.attach(pty.b);
  meterSim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: METER, kind: 'energy', balance: 3.5, purchaseCount: 3 }] },
  });
  bus = await openBus<Frame>({
    id: 'bus1',
    port: `tcp://127.0.0.1:${meterSim.address!.tcpPort}`,
    line: profile.line,
    decoder: new Dlt645Decoder(),
    gapMs: 0,
  });
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-cardrec-')), 'meterd.db'), clock: systemClock });
});
afterAll(async () => {
  store?.close();
  await bus?.close();
  await meterSim?.close();
  await encoder?.close();
  await pty?.close();
});

describe('a card sale from the counter to the meter and back into the books', () => {
  it('sold on a card, inserted into the simulated card meter, read by the poller: the daily report shows it confirmed and balanced', async () => {
    const books = new LedgerCardSales(() => store);
    // The books know the last purchase (count 3), which the meter has taken and written back onto the card.
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
    const card = cards.ours(layout, {
      meterNumber: METER,
      customerNumber: '000000000042',
      purchaseCount: 3,
      purchaseAmount: 1000,
      writeBack: { balance: 350, purchaseCount: 3 },
    });
    encoder.insert(card);

    // The cashier sells 20 kWh onto the card.
    const lines: string[] = [];
    const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => lines.push(s), writeErr: () => undefined });
    registerCardCommand(program, { out: (l) => lines.push(l) }, { recorder: books, books, env: {} });
    try {
      await program.parseAsync(['card', 'sell', '--meter', METER, '--kwh', '20', '--operator', 'bob', '--port', pty.a], { from: 'user' });
    } catch (err) {
      throw new Error(errorLine(err));
    }
    encoder.remove();

    // Before insertion: sold, awaiting the meter.
    const meterConfig = [{ id: 'room-201', address: METER }];
    const report = new Books({ store, clock: systemClock, gateway: { id: 'gw', timeZone: TZ }, meters: meterConfig });
    const today = { kind: 'daily' as const, date: localDate(Date.now(), TZ) };
    expect(report.report(today).unconfirmed.map((u) => u.requestId)).toContain(`card-${METER}-4`);

    // The gateway's poller reads the meter's purchase counter: still 3, the card is not inserted yet.
    const reader = new Dlt645PointReader(new Dlt645Meter({ link: bus, address: METER, timeoutMs: 500 }), profile);
    const poller = new Poller({
      targets: [{ meterId: 'room-201', busId: 'bus1', profile, reader: { read: (n, o) => reader.read(n, o) } }],
      store,
      clock: systemClock,
      timeZone: TZ,
      offlineAfter: 3,
      offlineProbeMs: 60_000,
    });
    expect((await poller.pollNow('room-201', ['credit.purchase.count'])).get('credit.purchase.count')).toEqual({ v: 3, unit: '' });

    // The customer inserts the card at home: the meter loads it and writes its state back.
    const sim = meterSim.meters.get(METER)!;
    const snap = sim.snapshot();
    const inserted = insertIntoMeter(card, layout, { meterNumber: METER, purchaseCount: snap.purchaseCount!, balance: snap.balance! });
    expect(inserted.outcome).toBe('loaded');
    expect(sim.insertCardLoad(4, 2000, Date.now())).toBe('loaded');

    // The next poll sees the counter at 4 and the balance 20 kWh higher.
    const values = await poller.pollNow('room-201', ['credit.purchase.count', 'credit.balance.energy']);
    expect(values.get('credit.purchase.count')).toEqual({ v: 4, unit: '' });
    expect(values.get('credit.balance.energy')).toEqual({ v: 23.5, unit: 'kWh' });

    const after = report.report(today);
    expect(after.unconfirmed.map((u) => u.requestId)).not.toContain(`card-${METER}-4`);
    const rec = after.reconciliation.find((r) => r.meterId === 'room-201')!;
    // The counter moved 3 -> 4 in the period: purchase 4 (bob's card) is accounted for; purchase 3 predates the readings.
    expect(rec.findings.filter((f) => f.purchaseCount === 4)).toEqual([]);
    const bob = after.lines.find((l) => l.operator === 'bob' && l.channel === 'card')!;
    expect(bob.states.applied).toEqual({ count: 1, amount: 2000 });
    expect(bob.states.awaiting.count).toBe(0);
  });
});
