import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Unusable data directories (item 15 of issue 17, the bad-input probe's D6 and cases 14 to 18), through the real
// entry point: `meterd run` says in one line that gateway.dataDir is the problem, which path and what is wrong, and
// exits 1. Before, /proc/meterd-data spun at 100 % CPU for ever and the others printed `meterd: EACCES: EACCES: …`.

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));
/** Generous: the point is that it ends at all (a hang is killed here and fails the test), not how fast. */
const GIVE_UP_MS = 25_000;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-datadir-'));
  // Readable by the unprivileged user the permission case runs as.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'afile'), 'not a directory\n');
  symlinkSync('/proc/self', join(dir, 'proc-link'));
  mkdirSync(join(dir, 'locked'), { mode: 0o555 });
  chmodSync(join(dir, 'locked'), 0o555);
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly out: string;
}

function meterd(args: string[], options: { uid?: number; gid?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), GIVE_UP_MS);
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, out });
    });
  });
}

function config(name: string, dataDir: string): string {
  const path = join(dir, `${name}.yaml`);
  // Nothing listens on the broker port: the data directory is checked before anything connects.
  writeFileSync(path, `gateway: { id: gw-datadir, dataDir: ${JSON.stringify(dataDir)} }\nmqtt: { url: "mqtt://127.0.0.1:9" }\n`);
  chmodSync(path, 0o644);
  return path;
}

// Each case starts node and tsx once or twice; on a loaded machine that alone can take several seconds.
describe('a dataDir meterd cannot use', { timeout: 60_000 }, () => {
  it('under /proc: config check and run refuse it at its line, and run ends instead of spinning', async () => {
    const file = config('proc', '/proc/meterd-data');
    const reason = 'gateway.dataDir: /proc/meterd-data is under /proc, a kernel file system that keeps no data';
    const check = await meterd(['config', 'check', '-c', file]);
    expect(check.out).toContain(`${file}:1: ${reason}`);
    expect(check.status).toBe(1);

    const run = await meterd(['run', '-c', file]);
    expect(run.signal).toBeNull();
    expect(run.status).toBe(1);
    expect(run.out.trim().split('\n')).toEqual([
      `${file}:1: ${reason}: choose a directory on a disk, e.g. /var/lib/meterd`,
      `meterd: CONFIG_INVALID: 1 problem(s) in ${file}; nothing was started`,
    ]);
  });

  const cases: { name: string; dataDir: () => string; says: () => string }[] = [
    {
      name: 'a symbolic link into /proc',
      dataDir: () => './proc-link/meterd',
      says: () => `gateway.dataDir ${join(dir, 'proc-link/meterd')} is under /proc (through /proc/`,
    },
    {
      name: 'a path under a regular file',
      dataDir: () => './afile/sub',
      says: () => `gateway.dataDir ${join(dir, 'afile/sub')} cannot be created: ${join(dir, 'afile')} is a file, not a directory`,
    },
    {
      name: 'a regular file',
      dataDir: () => './afile',
      says: () => `gateway.dataDir ${join(dir, 'afile')} is a file, not a directory`,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: run prints one DATA_DIR_UNUSABLE line naming gateway.dataDir, and exits 1`, async () => {
      const file = config(c.name.replace(/[^a-z]+/g, '-'), c.dataDir());
      const run = await meterd(['run', '-c', file]);
      expect(run.signal).toBeNull();
      expect(run.status).toBe(1);
      const lines = run.out.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`meterd: DATA_DIR_UNUSABLE: ${c.says()}`);
    });
  }

  it('a directory this user may not write to (run as an unprivileged user): one line, the code once', async () => {
    const file = config('locked', './locked/data');
    // As root, the permission bits do not apply: run as nobody, as a misconfigured service user would.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const run = await meterd(['run', '-c', file], asUser);
    expect(run.status).toBe(1);
    const lines = run.out.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^meterd: DATA_DIR_UNUSABLE: gateway\\.dataDir ${join(dir, 'locked/data')} cannot be created: ${join(dir, 'locked')} is not writable by this user \\(uid \\d+\\)$`,
      ),
    );
    expect(run.out).not.toMatch(/EACCES: EACCES/);
  });
});
