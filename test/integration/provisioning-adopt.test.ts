import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { registerCardCommand } from '../../src/cli/commands/card.js';
import { errorLine } from '../../src/cli/errors.js';
import { systemClock } from '../../src/clock.js';
import { dlt645CreditPort } from '../../src/devices/credit-port.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { Books, localDate } from '../../src/services/books/index.js';
import { CreditService } from '../../src/services/credit.js';
import { Poller } from '../../src/services/poller.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { cards, insertIntoMeter, SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { runMeterd } from '../helpers/cli.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

// Going live on an installation whose 50 meters have been selling for years: `meterd adopt` reads each meter's
// purchase count and balance and starts the books there; afterwards a remote top-up and a card sale go through and
// the day's books reconcile, with the opening entries neither sales nor loads from outside.

const N = 50;
const TZ = 'Asia/Shanghai';
const addressOf = (i: number) => String(100 + i).padStart(12, '0');
const countOf = (i: number) => (i % 9) + 1;
const balanceOf = (i: number) => 10 + i / 4;
const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
const layout = loadCardLayout('sle4442-dorm');

let sim: Dlt645Simulator;
let dir: string;
let configPath: string;
let store: () => Store;
let opened: Store | undefined;

beforeAll(async () => {
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: Array.from({ length: N }, (_, i) => ({
        address: addressOf(i),
        kind: 'energy' as const,
        balance: balanceOf(i),
        purchaseCount: countOf(i),
      })),
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'meterd-adopt-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-adopt, dataDir: ${join(dir, 'data')}, timeZone: ${TZ} }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 2s, retries: 1 }
meters:
${Array.from({ length: N }, (_, i) => `  - { id: room-${i}, bus: bus1, address: "${addressOf(i)}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
`,
  );
  store = () => (opened ??= openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock }));
});
afterAll(async () => {
  opened?.close();
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Line = { meterId: string; outcome: string; message: string; wallet?: { count: number; balance: number } };
const lines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

describe('meterd adopt on 50 meters already in service', () => {
  it('the first run records one opening entry per meter: its count and balance, no money, the operator named', async () => {
    const r = await runMeterd(['adopt', '-c', configPath, '--operator', 'zhang', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(N);
    expect(out.every((l) => l.outcome === 'adopted')).toBe(true);
    expect(out[13]).toMatchObject({ meterId: 'room-13', wallet: { count: countOf(13), balance: balanceOf(13) * 100 } });

    const openings = store()
      .ledger.list({})
      .filter((e) => e.channel === 'opening');
    expect(openings).toHaveLength(N);
    expect(openings.find((e) => e.meterId === addressOf(13))).toMatchObject({
      kind: 'opening',
      state: 'applied',
      amount: 0,
      purchaseCount: countOf(13),
      after: { count: countOf(13), balance: balanceOf(13) * 100, overdraft: 0 },
      operator: 'zhang',
    });
  });

  it('a second run changes nothing: every meter is already in the books', async () => {
    const r = await runMeterd(['adopt', '-c', configPath, '--operator', 'zhang']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`0 adopted, ${N} already in the books, 0 moved since, 0 unreadable`);
    expect(store().ledger.list({})).toHaveLength(N);
  });

  it('a meter whose count moved since (a card from another system) is reported, not adopted again', async () => {
    const i = 7;
    expect(sim.meters.get(addressOf(i))!.insertCardLoad(countOf(i) + 1, 500, Date.now())).toBe('loaded');
    const r = await runMeterd(['adopt', '-c', configPath, '--meter', `room-${i}`, 'room-8', '--json']);
    expect(r.status).toBe(1);
    const out = lines(r.stdout);
    expect(out.map((l) => [l.meterId, l.outcome])).toEqual([
      [`room-${i}`, 'moved'],
      ['room-8', 'already-adopted'],
    ]);
    expect(out[0]!.message).toBe(
      `meter room-${i} counts ${countOf(i) + 1} purchases but the books know ${countOf(i)}: 1 load(s) reached it from outside meterd; not re-adopted: see meterd report for the difference and settle it with the station`,
    );
    expect(r.stderr).toMatch(/^meterd: ADOPT_INCOMPLETE: 1 meter\(s\) not adopted \(room-7\)/);
    expect(store().ledger.list({})).toHaveLength(N);
  });

  it('then a remote top-up and a card sale both go through, and the day reconciles with the openings as its start', async () => {
    const bus: FrameBus<Frame> = await openBus<Frame>({
      id: 'bus1',
      port: `tcp://127.0.0.1:${sim.address!.tcpPort}`,
      line: profile.line,
      decoder: new Dlt645Decoder(),
      gapMs: 0,
    });
    const pty: PtyPair = await createPtyPair();
    const encoder = new SimulatedEncoder({ framing: 'star' });
    await encoder.attach(pty.b);
    try {
      const driver = (i: number) => new Dlt645Meter({ link: bus, address: addressOf(i), timeoutMs: 1000 });
      // Remote top-up on room-1: the meter's own count + 1, as always.
      const credit = new CreditService({
        store: store(),
        clock: systemClock,
        ports: new Map([
          ['room-1', dlt645CreditPort(driver(1), profile, { password: { level: 2, code: '000000' }, operator: '00000001' })],
        ]),
      });
      const { entry } = await credit.topUp({ requestId: 'station-0001', meterId: 'room-1', channel: 'remote', energyKwh: 5 });
      expect(entry).toMatchObject({ state: 'applied', purchaseCount: countOf(1) + 1 });

      // Card sale on room-2 (a card meter): the books' count is the opening's, so the sale is at opening + 1.
      const books = new LedgerCardSales(store);
      const card = cards.ours(layout, {
        meterNumber: addressOf(2),
        customerNumber: '000000000002',
        purchaseCount: countOf(2),
        purchaseAmount: 1000,
        writeBack: { balance: balanceOf(2) * 100, purchaseCount: countOf(2) },
      });
      encoder.insert(card);
      const out: string[] = [];
      const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: () => undefined });
      registerCardCommand(program, { out: (l) => out.push(l) }, { recorder: books, books, env: {} });
      try {
        await program.parseAsync(['card', 'sell', '--meter', addressOf(2), '--kwh', '20', '--operator', 'bob', '--port', pty.a], {
          from: 'user',
        });
      } catch (err) {
        throw new Error(errorLine(err));
      }
      encoder.remove();
      expect(store().ledger.get(`card-${addressOf(2)}-${countOf(2) + 1}`)).toMatchObject({ channel: 'card', amount: 2000 });
      const snap = sim.meters.get(addressOf(2))!.snapshot();
      expect(
        insertIntoMeter(card, layout, { meterNumber: addressOf(2), purchaseCount: snap.purchaseCount!, balance: snap.balance! }).outcome,
      ).toBe('loaded');
      expect(sim.meters.get(addressOf(2))!.insertCardLoad(countOf(2) + 1, 2000, Date.now())).toBe('loaded');

      // The poller reads the counters of every meter, as the daemon does.
      const poller = new Poller({
        targets: Array.from({ length: N }, (_, i) => {
          const reader = new Dlt645PointReader(driver(i), profile);
          return { meterId: `room-${i}`, busId: 'bus1', profile, reader: { read: (n, o) => reader.read(n, o) } };
        }),
        store: store(),
        clock: systemClock,
        timeZone: TZ,
        offlineAfter: 3,
        offlineProbeMs: 60_000,
      });
      for (let i = 0; i < N; i++) await poller.pollNow(`room-${i}`, ['credit.purchase.count']);

      const report = new Books({
        store: store(),
        clock: systemClock,
        gateway: { id: 'gw-adopt', timeZone: TZ },
        meters: Array.from({ length: N }, (_, i) => ({ id: `room-${i}`, address: addressOf(i) })),
      });
      const today = report.report({ kind: 'daily', date: localDate(Date.now(), TZ) });
      const rec = new Map(today.reconciliation.map((m) => [m.meterId, m]));
      expect(rec.get('room-1')).toMatchObject({ status: 'balanced', counterDelta: 1, booksLoads: 1 });
      expect(rec.get('room-2')).toMatchObject({ status: 'balanced', counterDelta: 1, booksLoads: 1 });
      // The one meter loaded from outside after adoption is the one difference of the day.
      expect(rec.get('room-7')!.findings.map((f) => [f.kind, f.purchaseCount])).toEqual([['outside-load', countOf(7) + 1]]);
      const outside = today.reconciliation.filter((m) => m.findings.some((f) => f.kind === 'outside-load')).map((m) => m.meterId);
      expect(outside).toEqual(['room-7']);
      // Cash is the two sales; the 50 openings took no money.
      const energy = today.totals.find((t) => t.unit === 'energy')!;
      expect(energy.cash.sales).toEqual({ count: 2, amount: 2500 });
      expect(today.lines.some((l) => l.channel === 'opening')).toBe(false);
    } finally {
      await bus.close();
      await encoder.close();
      await pty.close();
    }
  });
});
