import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The bad-input probe's config cases 37 and 38 (item 19 of issue 17), through the real entry point: an alias bomb
// is a CONFIG_INVALID with file and line, not a bare library sentence; a file that cannot be read is named without
// a line 0.

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-config-errors-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function meterd(...args: string[]): Promise<{ status: number | null; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, lines: out.trim().split('\n') });
    });
  });
}

const BOMB = `gateway: { id: gw-bomb, dataDir: ./data }
mqtt: { url: "mqtt://127.0.0.1:9" }
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`;

describe('config files meterd cannot use', { timeout: 60_000 }, () => {
  it('a billion-laughs alias bomb: run prints the file and line, then CONFIG_INVALID, and starts nothing', async () => {
    const file = join(dir, 'bomb.yaml');
    writeFileSync(file, BOMB);
    const run = await meterd('run', '-c', file);
    expect(run.status).toBe(1);
    expect(run.lines).toHaveLength(2);
    expect(run.lines[0]).toMatch(new RegExp(`^${file}:4: the YAML aliases \\(\\*name\\) here expand to more than the parser allows`));
    expect(run.lines[1]).toBe(`meterd: CONFIG_INVALID: 1 problem(s) in ${file}; nothing was started`);
  });

  it('a file that does not exist: config check names it without a line', async () => {
    const file = join(dir, 'missing.yaml');
    const check = await meterd('config', 'check', '-c', file);
    expect(check.status).toBe(1);
    expect(check.lines).toEqual([
      `${file}: cannot read the config file: ENOENT: no such file or directory, stat '${file}'`,
      `meterd: CONFIG_INVALID: 1 problem(s) in ${file}`,
    ]);
  });
});
