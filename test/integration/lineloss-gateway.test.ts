import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { Command } from 'commander';
import { registerLinelossCommand } from '../../src/cli/commands/lineloss.js';
import { silentLogger } from '../../src/log.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';

/**
 * The line-loss job inside the real gateway: a district of a supply meter (0.125 kW, CT 20) and two members (1 and
 * 1.25 kW) on a simulated line, the gateway's wall clock moved by the test. Every day: supply 0.125 × 24 × 20 = 60 kWh,
 * sales 24 + 30 = 54 kWh, loss 6 kWh = 10 %. The meters were switched on at 2026-10-31 00:00 local time, so their
 * oldest freeze is 2026-11-01 00:00.
 */
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;
const local = (date: string, hhmm = '00:00') => {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const [h, min] = hhmm.split(':').map(Number) as [number, number];
  return new Date(y, m - 1, d, h, min).getTime();
};
const clock = new ManualClock(local('2026-10-31'));
const gatewayId = uniqueId('gw-lineloss');
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let file: string;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    clock,
    spec: {
      meters: [
        { address: '000000000801', kind: 'plain', phases: 3, powerKw: 0.125 },
        { address: '000000000802', kind: 'plain', powerKw: 1 },
        { address: '000000000803', kind: 'plain', powerKw: 1.25 },
      ],
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-lineloss-gw-'));
  file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: ${TZ} }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: b1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", timeout: 200ms, retries: 0, gap: 0ms }
districts:
  - { id: d1, name: North dorms transformer, supplyMeter: d1-general, ctRatio: 20 }
meters:
  - { id: d1-general, bus: b1, address: "000000000801", profile: dlt645-2007-three-phase, district: d1 }
  - { id: room-101, bus: b1, address: "000000000802", profile: dlt645-2007-single-phase-prepaid, district: d1 }
  - { id: room-102, bus: b1, address: "000000000803", profile: dlt645-2007-single-phase-prepaid, district: d1 }
`,
  );
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/lineloss/#`);
});

afterAll(async () => {
  await watcher?.close();
  await sim?.close();
  await broker?.close();
});

/** Starts the gateway at a local time, lets its start-up catch-up finish and the outbox drain, and stops it. */
async function runGatewayAt(date: string, hhmm: string): Promise<void> {
  clock.set(local(date, hhmm));
  const gw: Gateway = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger, clock });
  try {
    await gw.lineloss.idle();
    await watcher.waitFor(() => gw.store.outbox.counts().byClass.report === 0, 'the line-loss reports delivered', 10_000);
  } finally {
    await gw.stop();
  }
}

const dates = () => watcher.json<{ date: string; revision: number; ratePct: number }>(`meterd/${gatewayId}/lineloss/d1/daily`);
const months = () => watcher.json<Record<string, unknown>>(`meterd/${gatewayId}/lineloss/d1/monthly`);
const range = (from: number, to: number, month = '11') =>
  Array.from({ length: to - from + 1 }, (_, i) => `2026-${month}-${String(from + i).padStart(2, '0')}`);

/** Runs `meterd lineloss …` in process, on the gateway's database, with the test's clock; returns its stdout lines. */
async function cli(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const program = new Command('meterd').exitOverride();
  registerLinelossCommand(program, { out: (l) => lines.push(l) }, { clock });
  await program.parseAsync(['node', 'meterd', 'lineloss', '-c', file, ...args]);
  return lines;
}
async function cliExplain(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const program = new Command('meterd').exitOverride();
  registerLinelossCommand(program, { out: (l) => lines.push(l) }, { clock });
  await program.parseAsync(['node', 'meterd', 'lineloss', 'explain', '-c', file, ...args]);
  return lines;
}

describe('the line-loss job in the gateway', () => {
  it('a first start catches up as far back as the supply meter keeps freezes, each day once, 10 %', async () => {
    await runGatewayAt('2026-11-22', '00:20');
    await watcher.waitFor(() => dates().length === 21, 'the first 21 days');
    expect(dates().map((d) => d.date)).toEqual(range(1, 21));
    expect(new Set(dates().map((d) => `${d.ratePct}#${d.revision}`))).toEqual(new Set(['10#1']));
  }, 60_000);

  it('after three days off, the gateway computes the three missed days on start, each once', async () => {
    await runGatewayAt('2026-11-25', '00:20');
    await watcher.waitFor(() => dates().length === 24, 'the three missed days');
    expect(dates().map((d) => [d.date, d.revision])).toEqual(range(1, 24).map((d) => [d, 1]));
  }, 60_000);

  it('a restart on the same day publishes nothing again', async () => {
    await runGatewayAt('2026-11-25', '09:00');
    await new Promise((r) => setTimeout(r, 300));
    expect(dates().map((d) => d.date)).toEqual(range(1, 24));
  }, 30_000);

  it('the closed month is published from the freezes at its two first-of-month midnights', async () => {
    await runGatewayAt('2026-12-02', '00:20');
    await watcher.waitFor(() => months().length === 1, 'the monthly figure of November');
    // supply 60 × 30 = 1800 kWh, sales 54 × 30 = 1620 kWh: 10 %
    expect(months()[0]).toMatchObject({
      district: 'd1',
      month: '2026-11',
      supplyKwh: 1800,
      salesKwh: 1620,
      lossKwh: 180,
      ratePct: 10,
      class: 'qualified',
      revision: 1,
      days: { qualified: 30, high: 0, negative: 0, notComputable: 0 },
    });
    expect(dates().map((d) => d.date)).toEqual([...range(1, 30), '2026-12-01']);
  }, 60_000);

  it('meterd lineloss prints the month day by day with its class, and the month; --csv and --json too', async () => {
    const table = await cli('--month', '2026-11');
    expect(table[0]).toMatch(/^District d1 \(North dorms transformer\), 2026-11-01 … 2026-11-30 .* band 0–10 %/);
    expect(table[1]).toMatch(/^period\s+supply kWh\s+sales kWh\s+loss kWh\s+rate %\s+class\s+read\s+rev\s+missing$/);
    expect(table[2]).toMatch(/^2026-11-01\s+60\.00\s+54\.00\s+6\.00\s+10\.00\s+qualified\s+2\/2\s+1$/);
    expect(table.at(-1)).toMatch(/^2026-11\s+1800\.00\s+1620\.00\s+180\.00\s+10\.00\s+qualified\s+2\/2\s+1$/);
    const csv = await cli('--from', '2026-11-30', '--to', '2026-12-01', '--csv');
    expect(csv).toEqual([
      'district,kind,period,supplyKwh,salesKwh,lossKwh,ratePct,class,flagged20,target,diffPct,membersRead,membersExpected,missing,revision',
      'd1,daily,2026-11-30,60,54,6,10,qualified,false,,,2,2,,1',
      'd1,daily,2026-12-01,60,54,6,10,qualified,false,,,2,2,,1',
      'd1,monthly,2026-11,1800,1620,180,10,qualified,false,,,2,2,,1',
    ]);
    const json = JSON.parse((await cli('--district', 'd1', '--from', '2026-12-01', '--to', '2026-12-01', '--json')).join('\n'));
    expect(json).toEqual({ days: [expect.objectContaining({ date: '2026-12-01', ratePct: 10 })], months: [] });
    await expect(cli('--district', 'nope')).rejects.toThrow(/no district "nope" .*districts are: d1/);
    await expect(cli('--month', '2026-13')).rejects.toThrow(/not a month written YYYY-MM/);
  });

  it('meterd lineloss explain lists the members behind a day against their previous week', async () => {
    const out = await cliExplain('--district', 'd1', '--date', '2026-11-27');
    expect(out[0]).toBe('District d1, 2026-11-27: qualified, rate 10.00 %, supply 60.00 kWh, sales 54.00 kWh, revision 1');
    expect(out.slice(2)).toEqual([
      expect.stringMatching(/^meter\s+kWh\s+week avg\s+change\s+note$/),
      expect.stringMatching(/^room-101\s+24\.00\s+24\.00\s+\+0\.00$/),
      expect.stringMatching(/^room-102\s+30\.00\s+30\.00\s+\+0\.00$/),
    ]);
    await expect(cliExplain('--district', 'd1', '--date', '2026-12-24')).rejects.toThrow(/no figure for district d1 on 2026-12-24/);
  });
});
