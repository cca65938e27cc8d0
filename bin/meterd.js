#!/usr/bin/env node
// With NODE_ENV=production and a build (npm run build), run the bundled JavaScript of dist/meterd: no TypeScript
// loader in the process, about 100 MB less memory on a gateway, and a few MB less heap than tsc's file tree
// (scripts/bundle.mjs says why). Otherwise run the sources through tsx, so a fresh clone works without a build step.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/meterd/main.js', import.meta.url);
let main;
if (process.env.NODE_ENV === 'production' && existsSync(compiled)) {
  ({ main } = await import(compiled.href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
