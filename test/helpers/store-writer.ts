import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = join(ROOT, 'test/fixtures/store-writer.ts');

/**
 * Runs test/fixtures/store-writer.ts on the database at `path` until it has printed `cycles` committed cycles, then
 * kills it with SIGKILL, as a power cut or the OOM killer would; resolves with what it printed (one seq a line).
 */
export function writeUntilKilled(path: string, cycles: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, path], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const printed: number[] = [];
    let pending = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) printed.push(Number(line));
      if (printed.length >= cycles && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(printed);
      else reject(new Error(`writer exited with code ${code} before it was killed: ${stderr}`));
    });
  });
}
