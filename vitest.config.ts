import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'protocols/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests share ptys, ports and brokers; forks keep native modules (serialport, better-sqlite3) isolated.
    pool: 'forks',
    // `npm test -- --coverage` (CI, `npm run coverage`): v8's own counters, no instrumentation step. The text report
    // lists uncovered lines per file; read those of protocols/ and src/services/credit* rather than chase a percentage.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts', 'protocols/**/*.ts'],
      exclude: ['**/*.test.ts'],
      reporter: ['text-summary', ['text', { skipFull: true }]],
    },
  },
});
