import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { type ICruiseResult, cruise } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

// The layer rules of docs/architecture.md live in .dependency-cruiser.cjs; `npm run depcruise` checks the tree in CI.
// These tests prove the same rules hold for the real tree and bite on a tree that breaks each of them.
const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));
const config = require(`${root}.dependency-cruiser.cjs`) as { forbidden: unknown[] };

async function violations(baseDir: string, dirs: string[]): Promise<string[]> {
  const result = await cruise(
    dirs,
    {
      baseDir,
      validate: true,
      ruleSet: { forbidden: config.forbidden } as never,
      doNotFollow: { path: 'node_modules' },
      tsPreCompilationDeps: true,
    },
    undefined,
    { tsConfig: { fileName: `${root}tsconfig.json` } } as never,
  );
  const out = result.output as ICruiseResult;
  return out.summary.violations
    .filter((v) => v.rule.severity === 'error')
    .map((v) => `${v.rule.name}: ${v.from} -> ${v.to.replace(/^.*node_modules\/([^/]+)\/.*$/, 'node_modules/$1')}`)
    .sort();
}

describe('layer rules', () => {
  it('hold for the real tree', async () => {
    expect(await violations(root, ['src', 'protocols', 'bin'])).toEqual([]);
  }, 60_000);

  it('bite on a tree that breaks each of them, and let the sim command import the simulator', async () => {
    const probe = fileURLToPath(new URL('../fixtures/layer-probe/', import.meta.url));
    expect(await violations(probe, ['src', 'protocols'])).toEqual([
      'control-is-a-door: src/control/server.js -> src/store/db.js',
      'nothing-depends-on-the-simulators: src/services/uses-sim-and-uplink.js -> src/sim/meter.js',
      'only-store-touches-sqlite: src/daemon/opens-sqlite-and-mqtt.js -> node_modules/better-sqlite3',
      'only-uplink-publishes: src/daemon/opens-sqlite-and-mqtt.js -> node_modules/mqtt',
      'protocols-are-pure: protocols/demo/codec.js -> fs',
      'protocols-are-pure: protocols/demo/codec.js -> src/store/db.js',
      'services-do-not-publish: src/services/uses-sim-and-uplink.js -> src/uplink/session.js',
      'web-calls-services-not-sql: src/web/page.js -> src/store/db.js',
    ]);
  }, 60_000);
});
