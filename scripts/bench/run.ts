/**
 * `npm run bench`: runs every benchmark of this folder in turn, each in its own process so one's memory and
 * timers cannot skew another's, and prints their figures. Pass names to run some: npm run bench -- dlt645 store
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2);
const chosen = wanted.length > 0 ? wanted : all;
let failed = 0;
for (const name of chosen) {
  const file = join(here, `${name}.ts`);
  if (!existsSync(file)) {
    process.stderr.write(`no benchmark "${name}"; there are: ${all.join(', ')}\n`);
    failed++;
    continue;
  }
  process.stdout.write(`\n== ${name} ==\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    process.stderr.write(`benchmark ${name} exited with ${r.status ?? r.signal}\n`);
    failed++;
  }
}
process.exitCode = failed > 0 ? 1 : 0;
