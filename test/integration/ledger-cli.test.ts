import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { LedgerCardSales } from '../../src/cards/index.js';
import { buildProgram } from '../../src/cli/main.js';
import { errorLine } from '../../src/cli/errors.js';
import { systemClock } from '../../src/clock.js';
import { openStore } from '../../src/store/index.js';

let dir: string;
let configPath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-ledger-cli-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-ledger, dataDir: "${join(dir, 'data')}" }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses: [{ id: bus1, port: "tcp://127.0.0.1:1" }]
meters:
  - { id: room-201, bus: bus1, address: "000012345678", profile: dlt645-2007-single-phase-prepaid }
`,
  );
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
  const books = new LedgerCardSales(() => store);
  for (const [meterNumber, purchaseCount, amount] of [
    ['000012345678', 4, 1500],
    ['000099999999', 1, 250],
  ] as const) {
    await books.record({
      channel: 'card',
      meterNumber,
      purchaseCount,
      amount,
      unit: '0.01kWh',
      operator: 'carol',
      encoder: 'counter-1',
      layout: 'sle4442-dorm',
      at: '2026-11-27T08:00:00.000Z',
    });
  }
  store.close();
});

/** `meterd ledger …` as main() builds it: only the ledger command is loaded, from its own module. */
async function ledger(...args: string[]): Promise<{ lines: string[]; error?: string }> {
  const lines: string[] = [];
  try {
    const program = await buildProgram({ stdin: Readable.from([]), out: (l) => lines.push(l) }, 'ledger');
    expect(program.commands.map((c) => c.name())).toEqual(['ledger']);
    await program.parseAsync(['ledger', ...args], { from: 'user' });
    return { lines };
  } catch (err) {
    return { lines, error: errorLine(err) };
  }
}

describe('meterd ledger lists the credit ledger of the gateway in the config', () => {
  it('one line per load with its channel, amount, count and state, and a count of entries', async () => {
    const r = await ledger('-c', configPath);
    expect(r.error).toBeUndefined();
    expect(r.lines[0]).toBe('time                      meter        channel   amount        count  state      request');
    expect(r.lines.slice(1, -1).map((l) => l.split(/\s+/).slice(1))).toEqual([
      ['000012345678', 'card', '15.00', 'kWh', '4', 'applied', 'card-000012345678-4'],
      ['000099999999', 'card', '2.50', 'kWh', '1', 'applied', 'card-000099999999-1'],
    ]);
    expect(r.lines.at(-1)).toBe('2 entries');
  });

  it('--meter keeps one meter; --json prints each entry as the station receives it', async () => {
    const r = await ledger('-c', configPath, '--meter', '000099999999', '--json');
    expect(r.error).toBeUndefined();
    expect(r.lines).toHaveLength(1);
    expect(JSON.parse(r.lines[0]!)).toMatchObject({ meter: '000099999999', channel: 'card', state: 'applied', purchaseCount: 1 });
  });

  it('a --since that is not a date is one USAGE line; a config that does not check is CONFIG_INVALID', async () => {
    expect((await ledger('-c', configPath, '--since', 'yesterday')).error).toBe(
      'meterd: USAGE: --since "yesterday" is not a date (YYYY-MM-DD or ISO 8601)',
    );
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'gateway: { id: "" }\n');
    expect((await ledger('-c', bad)).error).toMatch(/^meterd: CONFIG_INVALID: /);
  });
});
