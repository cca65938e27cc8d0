import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { openStore, type LedgerEntry } from '../../src/store/index.js';
import { eventually } from '../helpers/broker.js';

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));

describe('meterd demo', () => {
  it('carries a dorm allowance whose round is due today: the newcomer sees the batch run and complete', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-demo-allow-'));
    const child = spawn(process.execPath, [BIN, 'demo', '--meters', '3', '--broker-port', '0', '--data', join(dir, 'data')], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => out.includes('Ctrl-C stops everything.'), `the demo's start-up lines (so far: ${out})`, 30_000);
      expect(out).toContain('allowance:         dorm-free gives each dorm room 15.00 yuan today, once');
      // Without a terminal the status line comes every 10 s.
      await eventually(() => out.includes('allowance 3/3 loaded (complete)'), `the allowance complete (so far: ${out})`, 40_000);
      // The Modbus dorm room keeps free energy per circuit: its allowance went to those registers, not to a purchase.
      const kwh = (): LedgerEntry | undefined => {
        const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock, checkAtOpen: false });
        try {
          return store.ledger.list().find((e) => e.meterId === 'dorm-201' && e.channel === 'allowance');
        } finally {
          store.close();
        }
      };
      await eventually(() => kwh()?.state === 'applied', 'the free-energy allowance of dorm-201 applied', 20_000);
      expect(kwh()).toMatchObject({ purchaseCount: null, amount: 1000, request: { wallet: 'subsidy' } });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
