import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore } from '../../src/store/index.js';

// The careless and hostile arguments of the bad-input probe (item 13 and 19 of issue 17), each run through the real
// entry point against a simulated DL/T 645 bus: a bad argument is a usage error (exit 2), loads nothing and writes no
// ledger row.

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));
const KWH_METER = '000000000011';
const MONEY_METER = '000000000012';

let sim: Dlt645Simulator;
let dir: string;
let configPath: string;

beforeAll(async () => {
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        { address: KWH_METER, kind: 'energy', balance: 50, purchaseCount: 10, customerNumber: '880000000011' },
        { address: MONEY_METER, kind: 'money', balance: 100, purchaseCount: 30, customerNumber: '880000000012' },
      ],
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'meterd-topup-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-topup, dataDir: ./data }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 2s, retries: 1 }
meters:
  - { id: k-1, bus: bus1, address: "${KWH_METER}", customerNo: "880000000011", profile: dlt645-2007-single-phase-prepaid }
  - { id: room-101, bus: bus1, address: "${MONEY_METER}", customerNo: "880000000012", profile: dlt645-2007-single-phase-prepaid-money }
`,
  );
});

afterAll(async () => {
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI as a separate process; asynchronously, since the simulated bus answers from this one. */
function meterd(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function ledgerRows(): number {
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
  try {
    return store.ledger.list({}).length;
  } finally {
    store.close();
  }
}

const balance = (address: string) => {
  const { balance, purchaseCount } = sim.meters.get(address)!.snapshot();
  return { balance, purchaseCount };
};

describe('meterd topup refuses what MQTT refuses, before anything is written', () => {
  it('loads a good amount (so the refusals below are about the argument, not the set-up)', async () => {
    const r = await meterd('topup', '-c', configPath, '--meter', 'k-1', '--kwh', '2.5', '--request-id', 'good-1');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^meter k-1: 2\.50 kWh applied: purchase count 11/);
    expect(ledgerRows()).toBe(1);
  });

  const cases: { args: string[]; line: string }[] = [
    { args: ['--meter', 'k-1', '--kwh', '1e5'], line: 'meterd: USAGE: --kwh must be at most 10000 kWh' },
    { args: ['--meter', 'k-1', '--kwh', '20000'], line: 'meterd: USAGE: --kwh must be at most 10000 kWh' },
    { args: ['--meter', 'k-1', '--kwh', '1e308'], line: 'meterd: USAGE: --kwh must be at most 10000 kWh' },
    {
      args: ['--meter', 'k-1', '--kwh', '0x20'],
      line: 'meterd: USAGE: --kwh must be a positive number with at most 2 decimals in plain decimal digits (e.g. 12.5), not "0x20"',
    },
    {
      args: ['--meter', 'k-1', '--kwh', '0b11'],
      line: 'meterd: USAGE: --kwh must be a positive number with at most 2 decimals in plain decimal digits (e.g. 12.5), not "0b11"',
    },
    {
      args: ['--meter', 'room-101', '--amount', '0x10'],
      line: 'meterd: USAGE: --amount must be a positive number with at most 2 decimals in plain decimal digits (e.g. 12.5), not "0x10"',
    },
    { args: ['--meter', 'room-101', '--amount', '100000.01'], line: 'meterd: USAGE: --amount must be at most 100000 yuan' },
    {
      args: ['--meter', 'room-101', '--amount', '1', '--customer', 'abc'],
      line: 'meterd: USAGE: --customer must be 1 to 12 decimal digits, not "abc"',
    },
    {
      args: ['--meter', 'room-101', '--amount', '1', '--request-id', 'bad id with spaces'],
      line: 'meterd: USAGE: --request-id may hold printable ASCII only, without spaces',
    },
  ];

  for (const { args, line } of cases) {
    it(`topup ${args.join(' ')} → one usage line, exit 2, nothing loaded, no ledger row`, async () => {
      const before = { kwh: balance(KWH_METER), money: balance(MONEY_METER), rows: ledgerRows() };
      const r = await meterd('topup', '-c', configPath, ...args);
      expect(r.stderr.trim()).toBe(line);
      expect(r.stdout).toBe('');
      expect(r.status).toBe(2);
      expect(ledgerRows()).toBe(before.rows);
      expect(balance(KWH_METER)).toEqual(before.kwh);
      expect(balance(MONEY_METER)).toEqual(before.money);
    });
  }

  it('the largest allowed amount still loads (10000 kWh is the cap, not beyond it)', async () => {
    const r = await meterd('topup', '-c', configPath, '--meter', 'k-1', '--kwh', '10000');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/10000\.00 kWh applied/);
  });
});
