import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerReportCommand } from '../../src/cli/commands/report.js';
import { errorLine } from '../../src/cli/errors.js';
import { ManualClock } from '../../src/clock.js';
import type { CreditPort, Wallet } from '../../src/devices/credit-port.js';
import { Books } from '../../src/services/books/index.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { CreditService } from '../../src/services/credit.js';
import { recordRefund } from '../../src/services/refunds.js';
import { insertReadings, openLedgerEntry, openStore, transitionLedger, type Store } from '../../src/store/index.js';

/**
 * One day at a dormitory counter in Asia/Shanghai (UTC+8), 2026-11-26:
 *
 * | time  | who    | channel   | meter                 | what                                   | state                            |
 * |-------|--------|-----------|-----------------------|----------------------------------------|----------------------------------|
 * | 09:00 | alice  | remote    | room-101 (money)      | 100.00 CNY, purchase 8                 | applied, read back               |
 * | 09:30 | alice  | remote    | room-101              | 50.50 CNY, purchase 9                  | applied, read back               |
 * | 09:45 | alice  | remote    | room-101              | 10.00 CNY                              | rejected (over the hoarding limit) |
 * | 10:00 | alice  | card      | 000000000102 (money)  | 200.00 CNY, purchase 4                 | counter reached 4 at 15:00       |
 * | 11:00 | bob    | card      | 000000000103 (energy) | 30.00 kWh, purchase 2                  | counter still 1: not inserted    |
 * | 12:00 | bob    | remote    | room-104 (energy)     | 25.50 kWh, purchase 6                  | applied, read back               |
 * | 13:00 | system | allowance | room-104              | 50.00 kWh free, purchase 7             | applied, read back               |
 * | 14:00 | bob    | refund    | room-101              | 20.00 CNY of alice's 50.50             | a money-back event               |
 * | 17:00 | alice  | remote    | room-101              | 8.00 CNY, purchase 10                  | not settled: no read-back yet    |
 * | 20:00 | poller |           | room-101              | counter read at 10                     |                                  |
 */
const DAY = '2026-11-26';
const local = (date: string, hhmm: string) => Date.parse(`${date}T${hhmm}:00+08:00`);
const clock = new ManualClock(local(DAY, '08:00'));
let dir: string;
let configPath: string;

/** A meter's wallet the credit service talks to: the purchase-count rule and a hoarding limit, nothing else. */
class WalletMeter implements CreditPort {
  /** The meter goes silent right after it takes the next load: the load lands, its read-back never comes. */
  silentAfterNextLoad = false;
  private silent = false;
  constructor(
    readonly unit: 'money' | 'energy',
    private wallet: Wallet,
    private readonly hoardingLimit = 1_000_000,
  ) {}
  async readWallet(): Promise<Wallet> {
    if (this.silent) throw new Error('meter did not answer');
    return this.wallet;
  }
  async load(l: { purchaseCount: number; amount: number }) {
    if (l.purchaseCount === this.wallet.count) return { kind: 'refused' as const, code: 'REPEAT_RECHARGE' as const, message: 'repeat' };
    if (this.wallet.balance + l.amount > this.hoardingLimit)
      return { kind: 'refused' as const, code: 'OVER_HOARDING_LIMIT' as const, message: 'over the hoarding limit' };
    this.wallet = { count: l.purchaseCount, balance: this.wallet.balance + l.amount, overdraft: 0 };
    this.silent = this.silentAfterNextLoad;
    return { kind: 'accepted' as const };
  }
}

function counterReading(store: Store, meterId: string, at: number, count: number): void {
  store.transaction((tx) => insertReadings(tx, [{ meterId, takenAt: at, values: { 'credit.purchase.count': { v: count, unit: '' } } }]));
}

async function buildDay(store: Store): Promise<void> {
  const room101 = new WalletMeter('money', { count: 7, balance: 1_000, overdraft: 0 }, 16_900);
  const room104 = new WalletMeter('energy', { count: 5, balance: 500, overdraft: 0 });
  const credit = new CreditService({
    store,
    clock,
    ports: new Map<string, CreditPort>([
      ['room-101', room101],
      ['room-104', room104],
    ]),
  });
  const cards = new LedgerCardSales(() => store);
  const at = (hhmm: string) => clock.set(local(DAY, hhmm));

  // The evening before: the poller read every counter.
  clock.set(local('2026-11-25', '23:00'));
  counterReading(store, 'room-101', clock.now(), 7);
  counterReading(store, 'room-102', clock.now(), 3);
  counterReading(store, 'room-103', clock.now(), 1);

  at('09:00');
  await credit.topUp({ requestId: 'counter-0001', meterId: 'room-101', channel: 'remote', amountFen: 10_000, operator: 'alice' });
  at('09:30');
  await credit.topUp({ requestId: 'counter-0002', meterId: 'room-101', channel: 'remote', amountFen: 5_050, operator: 'alice' });
  at('09:45');
  await credit.topUp({ requestId: 'counter-0003', meterId: 'room-101', channel: 'remote', amountFen: 1_000, operator: 'alice' });
  at('10:00');
  await cards.record({
    channel: 'card',
    meterNumber: '000000000102',
    purchaseCount: 4,
    amount: 20_000,
    unit: 'fen',
    operator: 'alice',
    encoder: 'star',
    layout: 'sle4442-dorm',
    at: new Date(clock.now()).toISOString(),
  });
  at('11:00');
  await cards.record({
    channel: 'card',
    meterNumber: '000000000103',
    purchaseCount: 2,
    amount: 3_000,
    unit: '0.01kWh',
    operator: 'bob',
    encoder: 'star',
    layout: 'sle4442-dorm',
    at: new Date(clock.now()).toISOString(),
  });
  at('12:00');
  await credit.topUp({ requestId: 'counter-0004', meterId: 'room-104', channel: 'remote', energyKwh: 25.5, operator: 'bob' });
  at('13:00');
  // The allowance service comes later; its entries look like this.
  store.transaction((tx) => {
    const { entry } = openLedgerEntry(tx, {
      requestId: 'allowance-2026-autumn-1-room-104',
      channel: 'allowance',
      meterId: 'room-104',
      unit: 'energy',
      amount: 5_000,
      operator: 'system',
      request: {},
    });
    transitionLedger(tx, entry.id, 'writing', { purchaseCount: 7, before: { count: 6, balance: 3_050, overdraft: 0 } });
    transitionLedger(tx, entry.id, 'applied', { after: { count: 7, balance: 8_050, overdraft: 0 } });
  });
  at('14:00');
  recordRefund(store, {
    requestId: 'refund-0001',
    originalRequestId: 'counter-0002',
    amount: 2_000,
    operator: 'bob',
    reason: 'customer overpaid',
  });
  at('15:00');
  counterReading(store, 'room-102', clock.now(), 4);
  at('16:00');
  counterReading(store, 'room-103', clock.now(), 1);
  at('17:00');
  room101.silentAfterNextLoad = true;
  await credit.topUp({ requestId: 'counter-0005', meterId: 'room-101', channel: 'remote', amountFen: 800, operator: 'alice' });
  at('20:00');
  // The 17:00 load did land: the poller sees the counter at 10 before the credit service has settled it.
  counterReading(store, 'room-101', clock.now(), 10);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-books-day-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-books, dataDir: ./data, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses: [{ id: bus1, port: /dev/ttyUSB0, baudRate: 2400, parity: even }]
meters:
  - { id: room-101, bus: bus1, address: "101", profile: dlt645-2007-single-phase-prepaid-money }
  - { id: room-102, bus: bus1, address: "102", profile: dlt645-2007-single-phase-prepaid-money }
  - { id: room-103, bus: bus1, address: "103", profile: dlt645-2007-single-phase-prepaid }
  - { id: room-104, bus: bus1, address: "104", profile: dlt645-2007-single-phase-prepaid }
`,
  );
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock });
  try {
    await buildDay(store);
  } finally {
    store.close();
  }
  clock.set(local(DAY, '21:00'));
});

async function meterd(...args: string[]): Promise<{ lines: string[]; error?: string }> {
  const lines: string[] = [];
  const program = new Command('meterd').exitOverride().configureOutput({ writeOut: (s) => lines.push(s), writeErr: () => undefined });
  registerReportCommand(program, { out: (l) => lines.push(l) }, { clock });
  try {
    await program.parseAsync([...args, '-c', configPath], { from: 'user' });
    return { lines };
  } catch (err) {
    return { lines, error: errorLine(err) };
  }
}

describe('the daily books of a day with two operators, two channels, a refund and an allowance', () => {
  it('JSON: every sum to the fen and the 0.01 kWh, per operator and channel, with the state split', async () => {
    const r = await meterd('report', 'daily', '--date', DAY, '--format', 'json');
    expect(r.error).toBeUndefined();
    const report = JSON.parse(r.lines.join('\n'));
    expect(report).toMatchObject({
      report: 'daily',
      period: DAY,
      gateway: 'gw-books',
      timeZone: 'Asia/Shanghai',
      from: '2026-11-25T16:00:00.000Z',
      until: '2026-11-26T16:00:00.000Z',
      operator: null,
    });
    const line = (operator: string, channel: string, unit: string) =>
      report.lines.find(
        (l: { operator: string; channel: string; unit: string }) => l.operator === operator && l.channel === channel && l.unit === unit,
      );
    expect(report.lines.map((l: { operator: string; channel: string; unit: string }) => `${l.operator} ${l.channel} ${l.unit}`)).toEqual([
      'alice remote money',
      'alice card money',
      'bob remote money',
      'bob remote energy',
      'bob card energy',
      'system allowance energy',
    ]);
    expect(line('alice', 'remote', 'money')).toEqual({
      operator: 'alice',
      channel: 'remote',
      unit: 'money',
      loads: { count: 3, amount: 15_850, text: '158.50 CNY' },
      refunds: { count: 0, amount: 0, text: '0.00 CNY' },
      net: { amount: 15_850, text: '158.50 CNY' },
      states: {
        applied: { count: 2, amount: 15_050, text: '150.50 CNY' },
        awaiting: { count: 0, amount: 0, text: '0.00 CNY' },
        unsettled: { count: 1, amount: 800, text: '8.00 CNY' },
        refused: { count: 1, amount: 1_000, text: '10.00 CNY' },
      },
    });
    expect(line('alice', 'card', 'money')).toMatchObject({
      loads: { count: 1, amount: 20_000 },
      states: { applied: { count: 1, amount: 20_000 }, awaiting: { count: 0 } },
    });
    expect(line('bob', 'remote', 'money')).toMatchObject({
      loads: { count: 0, amount: 0 },
      refunds: { count: 1, amount: 2_000, text: '20.00 CNY' },
      net: { amount: -2_000, text: '-20.00 CNY' },
    });
    expect(line('bob', 'remote', 'energy')).toMatchObject({
      loads: { count: 1, amount: 2_550, text: '25.50 kWh' },
      states: { applied: { count: 1, amount: 2_550 } },
    });
    expect(line('bob', 'card', 'energy')).toMatchObject({
      loads: { count: 1, amount: 3_000, text: '30.00 kWh' },
      states: { applied: { count: 0 }, awaiting: { count: 1, amount: 3_000 } },
    });
    expect(line('system', 'allowance', 'energy')).toMatchObject({
      loads: { count: 1, amount: 5_000, text: '50.00 kWh' },
      states: { applied: { count: 1, amount: 5_000 } },
    });

    expect(
      report.byOperator.map((o: { operator: string; unit: string; net: { amount: number } }) => [o.operator, o.unit, o.net.amount]),
    ).toEqual([
      ['alice', 'money', 35_850],
      ['bob', 'money', -2_000],
      ['bob', 'energy', 5_550],
      ['system', 'energy', 5_000],
    ]);
    expect(
      report.byChannel.map(
        (c: { channel: string; unit: string; loads: { count: number; amount: number }; refunds: { amount: number } }) => [
          c.channel,
          c.unit,
          c.loads.count,
          c.loads.amount,
          c.refunds.amount,
        ],
      ),
    ).toEqual([
      ['remote', 'money', 3, 15_850, 2_000],
      ['remote', 'energy', 1, 2_550, 0],
      ['card', 'money', 1, 20_000, 0],
      ['card', 'energy', 1, 3_000, 0],
      ['allowance', 'energy', 1, 5_000, 0],
    ]);
    const [money, energy] = report.totals;
    expect(money).toMatchObject({
      unit: 'money',
      loads: { count: 4, amount: 35_850, text: '358.50 CNY' },
      refunds: { count: 1, amount: 2_000 },
      net: { amount: 33_850, text: '338.50 CNY' },
      cash: { sales: { count: 4, amount: 35_850 }, refunds: { count: 1, amount: 2_000 }, net: { amount: 33_850, text: '338.50 CNY' } },
      allowances: { count: 0, amount: 0 },
      states: {
        applied: { count: 3, amount: 35_050 },
        awaiting: { count: 0, amount: 0 },
        unsettled: { count: 1, amount: 800 },
        refused: { count: 1, amount: 1_000 },
      },
    });
    expect(energy).toMatchObject({
      unit: 'energy',
      loads: { count: 3, amount: 10_550, text: '105.50 kWh' },
      net: { amount: 10_550 },
      // The free allowance is a load on the meter but never cash.
      cash: { sales: { count: 2, amount: 5_550, text: '55.50 kWh' }, refunds: { count: 0, amount: 0 }, net: { amount: 5_550 } },
      allowances: { count: 1, amount: 5_000, text: '50.00 kWh' },
      states: {
        applied: { count: 2, amount: 7_550 },
        awaiting: { count: 1, amount: 3_000 },
        unsettled: { count: 0 },
        refused: { count: 0 },
      },
    });
  });

  it('JSON: the loads not confirmed, each with why, and every active meter reconciled', async () => {
    const report = JSON.parse((await meterd('report', 'daily', '--date', DAY, '--format', 'json')).lines.join('\n'));
    expect(report.unconfirmed.map((u: { requestId: string; status: string; reason: string }) => [u.requestId, u.status, u.reason])).toEqual(
      [
        ['counter-0003', 'refused', 'rejected: OVER_HOARDING_LIMIT: over the hoarding limit'],
        [
          'card-000000000103-2',
          'awaiting',
          'card sold but not yet inserted: counter of room-103 at 1 on 2026-11-26 16:00, purchase 2 not reached',
        ],
        ['counter-0005', 'unsettled', expect.stringMatching(/^not settled yet \(verifying\): UNSETTLED: /)],
      ],
    );
    expect(
      report.reconciliation.map((m: { meter: string; counterDelta: number; booksLoads: number; difference: number; status: string }) => [
        m.meter,
        m.counterDelta,
        m.booksLoads,
        m.difference,
        m.status,
      ]),
    ).toEqual([
      ['room-101', 3, 2, -1, 'difference'],
      ['room-102', 1, 1, 0, 'balanced'],
      ['room-103', 0, 1, 1, 'difference'],
      // No polled readings at all: the loads' own read-before and read-after give the counter.
      ['room-104', 2, 2, 0, 'balanced'],
    ]);
    expect(report.reconciliation[3]).toMatchObject({ opening: { count: 5, source: 'ledger' }, closing: { count: 7, source: 'ledger' } });
    expect(report.reconciliation[0].findings).toEqual([
      {
        kind: 'unsettled-load',
        purchaseCount: 10,
        requestId: 'counter-0005',
        meaning: 'load counter-0005 (purchase 10) is not settled yet (verifying), but the counter shows it arrived',
      },
    ]);
    expect(report.reconciliation[2].findings).toEqual([
      {
        kind: 'card-not-inserted',
        purchaseCount: 2,
        requestId: 'card-000000000103-2',
        meaning: 'card sold but not yet inserted (purchase 2, card-000000000103-2): the counter was at 1 at the end of the period',
      },
    ]);
  });

  it('table: rows per operator and channel in yuan and kWh, totals, the state split, then the reconciliation', async () => {
    const r = await meterd('report', 'daily', '--date', DAY);
    expect(r.error).toBeUndefined();
    expect(r.lines).toEqual([
      'Daily books 2026-11-26 (Asia/Shanghai), gateway gw-books, as of 2026-11-26 21:00',
      '',
      'Sales and refunds per operator and channel',
      'operator  channel    unit  loads  amount  refunds  amount     net',
      'alice     remote     CNY       3  158.50        0    0.00  158.50',
      'alice     card       CNY       1  200.00        0    0.00  200.00',
      'bob       remote     CNY       0    0.00        1   20.00  -20.00',
      'bob       remote     kWh       1   25.50        0    0.00   25.50',
      'bob       card       kWh       1   30.00        0    0.00   30.00',
      'system    allowance  kWh       1   50.00        0    0.00   50.00',
      'alice     all        CNY       4  358.50        0    0.00  358.50',
      'bob       all        CNY       0    0.00        1   20.00  -20.00',
      'bob       all        kWh       2   55.50        0    0.00   55.50',
      'system    all        kWh       1   50.00        0    0.00   50.00',
      'all       remote     CNY       3  158.50        1   20.00  138.50',
      'all       remote     kWh       1   25.50        0    0.00   25.50',
      'all       card       CNY       1  200.00        0    0.00  200.00',
      'all       card       kWh       1   30.00        0    0.00   30.00',
      'all       allowance  kWh       1   50.00        0    0.00   50.00',
      'TOTAL     all        CNY       4  358.50        1   20.00  338.50',
      'TOTAL     all        kWh       3  105.50        0    0.00  105.50',
      '',
      'Cash (allowances and transfers are not cash)',
      '  CNY: sales 4 = 358.50, refunds 1 = 20.00, net 338.50 CNY',
      '  kWh: sales 2 = 55.50, refunds 0 = 0.00, net 55.50 kWh; allowances 1 = 50.00 kWh',
      '',
      'State of loads',
      'state                           count     CNY  count    kWh',
      'applied                             3  350.50      2  75.50',
      'awaiting meter confirmation         0    0.00      1  30.00',
      'not settled                         1    8.00      0   0.00',
      'rejected/failed (not in sales)      1   10.00      0   0.00',
      '',
      'Loads not confirmed by their meter',
      expect.stringMatching(/^time +meter +channel +operator +amount +count +state +request +why$/),
      expect.stringMatching(
        /^2026-11-26 09:45 +room-101 +remote +alice +10\.00 CNY +10 +rejected\/failed +counter-0003 +rejected: OVER_HOARDING_LIMIT/,
      ),
      expect.stringMatching(
        /^2026-11-26 11:00 +000000000103 +card +bob +30\.00 kWh +2 +awaiting meter confirmation +card-000000000103-2 +card sold but not yet inserted/,
      ),
      expect.stringMatching(
        /^2026-11-26 17:00 +room-101 +remote +alice +8\.00 CNY +10 +not settled +counter-0005 +not settled yet \(verifying\)/,
      ),
      '',
      "Reconciliation against the meters' purchase counters (all operators)",
      'meter     counter  moved  books  difference  status',
      'room-101  7 -> 10      3      2          -1  difference',
      '    - load counter-0005 (purchase 10) is not settled yet (verifying), but the counter shows it arrived',
      'room-102  3 -> 4       1      1           0  balanced',
      'room-103  1 -> 1       0      1          +1  difference',
      '    - card sold but not yet inserted (purchase 2, card-000000000103-2): the counter was at 1 at the end of the period',
      'room-104  5 -> 7       2      2           0  balanced',
    ]);
  });

  it('CSV: a header row, then lines, subtotals and totals with amounts in yuan and kWh', async () => {
    const r = await meterd('report', 'daily', '--date', DAY, '--format', 'csv');
    expect(r.error).toBeUndefined();
    expect(r.lines[0]).toBe(
      'period,row,operator,channel,unit,loads,loads_amount,refunds,refunds_amount,net,applied,applied_amount,awaiting,awaiting_amount,not_settled,not_settled_amount,rejected_failed,rejected_failed_amount',
    );
    expect(r.lines).toContain('2026-11-26,line,alice,remote,CNY,3,158.50,0,0.00,158.50,2,150.50,0,0.00,1,8.00,1,10.00');
    expect(r.lines).toContain('2026-11-26,line,bob,remote,CNY,0,0.00,1,20.00,-20.00,0,0.00,0,0.00,0,0.00,0,0.00');
    expect(r.lines).toContain('2026-11-26,line,bob,card,kWh,1,30.00,0,0.00,30.00,0,0.00,1,30.00,0,0.00,0,0.00');
    expect(r.lines).toContain('2026-11-26,line,system,allowance,kWh,1,50.00,0,0.00,50.00,1,50.00,0,0.00,0,0.00,0,0.00');
    expect(r.lines).toContain('2026-11-26,operator,alice,,CNY,4,358.50,0,0.00,358.50,3,350.50,0,0.00,1,8.00,1,10.00');
    expect(r.lines).toContain('2026-11-26,channel,,card,CNY,1,200.00,0,0.00,200.00,1,200.00,0,0.00,0,0.00,0,0.00');
    expect(r.lines.slice(-2)).toEqual([
      '2026-11-26,total,,,CNY,4,358.50,1,20.00,338.50,3,350.50,0,0.00,1,8.00,1,10.00',
      '2026-11-26,total,,,kWh,3,105.50,0,0.00,105.50,2,75.50,1,30.00,0,0.00,0,0.00',
    ]);
    expect(r.lines).toHaveLength(1 + 6 + 4 + 5 + 2);
  });

  it("--operator keeps one cashier's drawer: her sales, and the refunds she paid out", async () => {
    const bob = JSON.parse((await meterd('report', 'daily', '--date', DAY, '--operator', 'bob', '--format', 'json')).lines.join('\n'));
    expect(bob.operator).toBe('bob');
    expect(bob.lines.map((l: { operator: string }) => l.operator)).toEqual(['bob', 'bob', 'bob']);
    expect(bob.totals.map((t: { unit: string; cash: { net: { text: string } } }) => [t.unit, t.cash.net.text])).toEqual([
      ['money', '-20.00 CNY'],
      ['energy', '55.50 kWh'],
    ]);
    // A meter's counter knows no operators: the reconciliation stays whole.
    expect(bob.reconciliation).toHaveLength(4);
  });

  it('the monthly report sums the same entries over the local month', async () => {
    const r = await meterd('report', 'monthly', '--month', '2026-11', '--format', 'json');
    const month = JSON.parse(r.lines.join('\n'));
    expect(month).toMatchObject({
      report: 'monthly',
      period: '2026-11',
      from: '2026-10-31T16:00:00.000Z',
      until: '2026-11-30T16:00:00.000Z',
    });
    expect(month.totals.map((t: { unit: string; net: { amount: number } }) => [t.unit, t.net.amount])).toEqual([
      ['money', 33_850],
      ['energy', 10_550],
    ]);
    expect(month.reconciliation.map((m: { meter: string; status: string }) => [m.meter, m.status])).toEqual([
      ['room-101', 'difference'],
      ['room-102', 'balanced'],
      ['room-103', 'difference'],
      ['room-104', 'balanced'],
    ]);
  });

  it("without --date, today in the gateway's time zone; a bad date is a usage error", async () => {
    const today = JSON.parse((await meterd('report', 'daily', '--format', 'json')).lines.join('\n'));
    expect(today.period).toBe(DAY);
    expect((await meterd('report', 'daily', '--date', '2026-02-30')).error).toBe(
      'meterd: USAGE: "2026-02-30" is not a date written YYYY-MM-DD (e.g. 2026-11-27)',
    );
    expect((await meterd('report', 'monthly', '--month', '2026-13')).error).toMatch(/^meterd: USAGE: "2026-13" is not a month/);
  });
});

describe('meterd report without books', () => {
  it('a config whose dataDir holds no database is an error, and creates none', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'meterd-books-none-'));
    const config = join(empty, 'meterd.yaml');
    writeFileSync(
      config,
      'gateway: { id: gw-empty, dataDir: ./nothing, timeZone: Asia/Shanghai }\nmqtt: { url: "mqtt://127.0.0.1:1883" }\n',
    );
    const program = new Command('meterd').exitOverride();
    registerReportCommand(program, { out: () => undefined }, { clock });
    const error = await program.parseAsync(['report', 'daily', '-c', config], { from: 'user' }).then(
      () => undefined,
      (err: unknown) => errorLine(err),
    );
    expect(error).toBe(
      `meterd: STORE_MISSING: no books at ${join(empty, 'nothing', 'meterd.db')}: the gateway has not run with this config's dataDir yet`,
    );
    expect(existsSync(join(empty, 'nothing'))).toBe(false);
  });
});

describe("days are the gateway's local days", () => {
  let store: Store;
  afterAll(() => store?.close());

  it('in Asia/Shanghai, a sale at 23:59 and one at 00:01 the next day land on their own local days', async () => {
    store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-books-midnight-')), 'meterd.db'), clock });
    const cards = new LedgerCardSales(() => store);
    const sale = (count: number, amount: number) =>
      cards.record({
        channel: 'card',
        meterNumber: '000000000102',
        purchaseCount: count,
        amount,
        unit: 'fen',
        operator: 'alice',
        encoder: 'star',
        layout: 'sle4442-dorm',
        at: new Date(clock.now()).toISOString(),
      });
    clock.set(Date.parse('2026-11-26T15:59:00Z')); // 23:59 in Shanghai
    await sale(1, 1_111);
    clock.set(Date.parse('2026-11-26T16:01:00Z')); // 00:01 on the 27th in Shanghai
    await sale(2, 2_222);
    const books = new Books({
      store,
      clock,
      gateway: { id: 'gw', timeZone: 'Asia/Shanghai' },
      meters: [{ id: 'room-102', address: '000000000102' }],
    });
    const net = (date: string) => books.report({ kind: 'daily', date }).totals.map((t) => t.net);
    expect(net('2026-11-26')).toEqual([1_111]);
    expect(net('2026-11-27')).toEqual([2_222]);
    // The same instants are one UTC day: a UTC gateway puts both on the 26th.
    const utc = new Books({ store, clock, gateway: { id: 'gw', timeZone: 'UTC' }, meters: [] });
    expect(utc.report({ kind: 'daily', date: '2026-11-26' }).totals.map((t) => t.net)).toEqual([3_333]);
  });
});
