import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { openStore, StoreError } from '../../src/store/index.js';
import { startDaemon } from '../helpers/daemon.js';

// Real faults: the immutable flag (chattr), a read-only bind mount, random bytes over a real b-tree page. This machine
// runs the tests as root; if chattr or mount is refused the test fails (it does not skip): the behaviour it proves
// is only worth something against the real fault.

const dir = mkdtempSync(join(tmpdir(), 'meterd-open-faults-'));
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const undo of cleanups.splice(0).reverse()) undo();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function makeStore(path: string): void {
  const store = openStore({ path, clock: new ManualClock(1_700_000_000_000) });
  store.close();
}

/** A config whose store is the first thing `run` opens: the bus and broker are never reached when it is refused. */
function configFor(dataDir: string): string {
  return `gateway:
  id: gw-open-faults
  dataDir: ${dataDir}
mqtt:
  url: mqtt://127.0.0.1:1
buses:
  - id: bus1
    port: tcp://127.0.0.1:1
meters:
  - { id: m1, bus: bus1, address: "000000000001", profile: dlt645-2007-single-phase-prepaid-money }
`;
}

async function runDaemon(dataDir: string): Promise<{ code: number | NodeJS.Signals | null; stderr: string }> {
  const daemon = startDaemon(configFor(dataDir), { dir: mkdtempSync(join(dir, 'cfg-')) });
  const code = await daemon.exited();
  return { code, stderr: daemon.stderr() };
}

function expectStoreError(fn: () => unknown, code: string): StoreError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    return error as StoreError;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('a store that cannot be written', () => {
  it('with chattr +i on the database: `meterd run` refuses to start with one STORE_READ_ONLY line naming the file and the fix', async () => {
    const dataDir = join(dir, 'immutable');
    const path = join(dataDir, 'meterd.db');
    makeStore(path);
    execFileSync('chattr', ['+i', path]);
    cleanups.push(() => execFileSync('chattr', ['-i', path]));

    const { code, stderr } = await runDaemon(dataDir);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^meterd: STORE_READ_ONLY: /);
    expect(lines[0]).toContain(path);
    expect(lines[0]).toContain(`chattr -i ${path}`);
    expect(stderr).not.toContain('gateway started');
  });

  it('on a read-only bind mount: openStore refuses with STORE_READ_ONLY, for an existing file and for a new one', () => {
    const source = join(dir, 'rw');
    const mount = join(dir, 'ro');
    mkdirSync(mount, { recursive: true });
    makeStore(join(source, 'meterd.db'));
    execFileSync('mount', ['--bind', '-o', 'ro', source, mount]);
    cleanups.push(() => execFileSync('umount', [mount]));

    const existing = expectStoreError(() => openStore({ path: join(mount, 'meterd.db'), clock: new ManualClock() }), 'STORE_READ_ONLY');
    expect(existing.message).toContain(`findmnt -T ${mount}`);
    expectStoreError(() => openStore({ path: join(mount, 'new.db'), clock: new ManualClock() }), 'STORE_READ_ONLY');
  });
});

describe('a damaged page', () => {
  /** Random bytes over the root page of `commands`, found through sqlite_schema as an operator would. */
  function damageCommandsRoot(path: string): number {
    const db = new Database(path, { readonly: true });
    const rootPage = db.prepare<[], number>("SELECT rootpage FROM sqlite_schema WHERE name = 'commands'").pluck().get()!;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.close();
    const fd = openSync(path, 'r+');
    const noise = randomBytes(pageSize);
    // Byte 0 is the page type; keep it out of the four valid ones, as most random values are.
    noise[0] = 0xff;
    writeSync(fd, noise, 0, pageSize, (rootPage - 1) * pageSize);
    closeSync(fd);
    return rootPage;
  }

  it('is found by quick_check at open: `meterd run` refuses with one STORE_CORRUPT line naming the file and the fix', async () => {
    const dataDir = join(dir, 'damaged');
    const path = join(dataDir, 'meterd.db');
    makeStore(path);
    const rootPage = damageCommandsRoot(path);
    expect(rootPage).toBeGreaterThan(1);

    const error = expectStoreError(() => openStore({ path, clock: new ManualClock() }), 'STORE_CORRUPT');
    expect(error.message).toContain('unreadable table(s): commands');

    const { code, stderr } = await runDaemon(dataDir);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^meterd: STORE_CORRUPT: /);
    expect(lines[0]).toContain(path);
    expect(lines[0]).toContain('restore the last backup');
    expect(lines[0]).toContain('.recover');
  });

  it('opens with checkAtOpen: false (for tools that report the damage themselves)', () => {
    const path = join(dir, 'damaged-unchecked', 'meterd.db');
    makeStore(path);
    damageCommandsRoot(path);
    const store = openStore({ path, clock: new ManualClock(), checkAtOpen: false });
    try {
      expect(store.integrityCheck().ok).toBe(false);
    } finally {
      store.close();
    }
  });
});
