import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UNCAUGHT_EXIT_CODE } from '../../src/daemon/last-resort.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/last-resort.ts');

function run(mode: 'throw' | 'reject'): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr, stdout }));
  });
}

describe('the daemon’s last-resort handler', () => {
  it.each([
    ['throw', 'uncaughtException', 'thrown from a timer'],
    ['reject', 'unhandledRejection', 'a rejection nobody handles'],
  ] as const)('an error nobody caught (%s) is one fatal JSON line and a non-zero exit', async (mode, event, message) => {
    const { code, stderr, stdout } = await run(mode);
    expect(code).toBe(UNCAUGHT_EXIT_CODE);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 60, app: 'meterd', code: 'UNCAUGHT', event, err: { message } });
  });
});
