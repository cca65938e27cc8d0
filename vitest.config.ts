import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'protocols/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests share ptys, ports and brokers; forks keep native modules (serialport, better-sqlite3) isolated.
    pool: 'forks',
  },
});
