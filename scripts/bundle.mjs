// The production build of the daemon and CLI: one minified ES module per entry point and per lazily loaded command,
// in dist/meterd/. Why a bundle and not tsc's file tree: V8 keeps the source text of every module it loads in the
// heap, and a gateway's heap is small (64 MB); minified and tree-shaken, the same code costs about 3 MB less
// (npm run bench -- capacity). Native addons and what only the demo or tests load stay outside, resolved from
// node_modules as before.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunk names carry a content hash: without a clean folder every build would leave the previous chunks beside the new.
rmSync('dist/meterd', { recursive: true, force: true });

const result = await build({
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/meterd',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Whitespace and syntax minified, names kept as written: logs name error classes and functions as the sources do.
  // (esbuild's keepNames would restore mangled names with a defineProperty on every function made, 250 bytes of
  // property storage each: 1.5 MB for a gateway of 2,000 meters.)
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: false,
  sourcemap: true,
  metafile: true,
  external: ['better-sqlite3', 'serialport', '@serialport/*', 'modbus-serial', 'pino', 'aedes', 'tsx', 'playwright-core'],
  // Bundled CommonJS packages call require(); in an ES module it has to be made.
  banner: { js: "import { createRequire as __meterdRequire } from 'node:module'; const require = __meterdRequire(import.meta.url);" },
  logLevel: 'warning',
});
const bytes = Object.entries(result.metafile.outputs)
  .filter(([file]) => file.endsWith('.js'))
  .reduce((sum, [, out]) => sum + out.bytes, 0);
console.log(
  `dist/meterd: ${Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length} modules, ${(bytes / 1048576).toFixed(2)} MB`,
);
