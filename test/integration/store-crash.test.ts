import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { writeUntilKilled } from '../helpers/store-writer.js';
import { openStore } from '../../src/store/index.js';

/** As in the writer: readings and telemetry messages per cycle. */
const METERS = 20;

const dir = mkdtempSync(join(tmpdir(), 'meterd-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a writer killed with SIGKILL mid-write', () => {
  it('leaves an intact database holding every cycle it reported, with seq contiguous from 1', async () => {
    const path = join(dir, 'meterd.db');
    const printed: number[] = [];
    for (const cycles of [150, 40, 300]) {
      printed.push(...(await writeUntilKilled(path, cycles)));

      const store = openStore({ path, clock: new ManualClock() });
      try {
        expect(store.integrityCheck()).toEqual({ ok: true, messages: ['ok'] });

        const messages = store.outbox.peek({ limit: 1_000_000 });
        const telemetry = messages
          .filter((m) => m.class === 'telemetry')
          .map((m) => JSON.parse(m.payload) as { seq: number; cycle: number });
        const committed = telemetry.at(-1)?.cycle ?? 0;

        // Every cycle the writer printed is there, whole: its readings, its messages, its credit row.
        expect(committed).toBeGreaterThanOrEqual(Math.max(...printed));
        expect(telemetry.map((t) => t.cycle)).toEqual(Array.from({ length: committed * METERS }, (_, i) => Math.floor(i / METERS) + 1));
        for (let m = 0; m < METERS; m++) {
          expect(store.readings.since(`room-${m}`, 0, 1_000_000).map((r) => r.takenAt / 1000)).toEqual(
            Array.from({ length: committed }, (_, i) => i + 1),
          );
        }
        const credits = messages.filter((m) => m.class === 'credit').map((m) => (JSON.parse(m.payload) as { cycle: number }).cycle);
        expect(credits).toEqual(Array.from({ length: Math.floor(committed / 10) }, (_, i) => (i + 1) * 10));

        // No gap, no repeat: a killed transaction gave its seq back.
        expect(telemetry.map((t) => t.seq)).toEqual(Array.from({ length: telemetry.length }, (_, i) => i + 1));
      } finally {
        store.close();
      }
    }
  });
});
