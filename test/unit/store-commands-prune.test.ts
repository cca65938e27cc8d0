import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { ConfigError, loadGatewayConfig } from '../../src/config/index.js';
import { findCommand, finishCommand, openStore, recordAcceptedCommand, type Store } from '../../src/store/index.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 5, 1, 8, 0, 0);

let dir: string;
let clock: ManualClock;
let store: Store | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-commands-prune-'));
  clock = new ManualClock(NOW);
});

afterEach(() => {
  store?.close();
  store = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function open(commandsKeepForMs?: number): Store {
  store = openStore({ path: join(dir, 'meterd.db'), clock, commandsKeepForMs });
  return store;
}

/** A command received `ageMs` ago; finished (done) unless `open`; with `expiresAt` in its request when given. */
function record(s: Store, requestId: string, ageMs: number, options: { open?: boolean; expiresAt?: number } = {}): void {
  const request = {
    requestId,
    meter: 'room-101',
    energyKwh: 1,
    ...(options.expiresAt ? { expiresAt: new Date(options.expiresAt).toISOString() } : {}),
  };
  s.transaction((tx) => {
    recordAcceptedCommand(tx, {
      requestId,
      command: 'topup',
      meterId: 'room-101',
      requestJson: JSON.stringify(request),
      receivedAt: NOW - ageMs,
    });
    if (options.open !== true) finishCommand(tx, requestId, { status: 'done', result: { ok: true } });
  });
}

const kept = (s: Store, ids: string[]) => ids.filter((id) => s.transaction((tx) => findCommand(tx, id)) !== null);

describe('commands.keepFor: the commands table pruned by age', () => {
  it('deletes finished commands older than keepFor, and keeps younger ones, running ones, and those whose expiresAt is still ahead', () => {
    const s = open(30 * DAY);
    record(s, 'old-done', 31 * DAY);
    record(s, 'young-done', 29 * DAY);
    record(s, 'old-open', 60 * DAY, { open: true });
    record(s, 'old-expires-later', 60 * DAY, { expiresAt: NOW + 10 * DAY });
    record(s, 'old-expired', 60 * DAY, { expiresAt: NOW - 40 * DAY });

    expect(s.enforceLimits().prunedCommands).toBe(2);
    expect(kept(s, ['old-done', 'young-done', 'old-open', 'old-expires-later', 'old-expired'])).toEqual([
      'young-done',
      'old-open',
      'old-expires-later',
    ]);
    expect(s.enforceLimits().prunedCommands).toBe(0);
  });

  it('never prunes inside the replay window of 2 days, whatever keepFor says', () => {
    const s = open(60_000);
    record(s, 'one-day', 1 * DAY);
    record(s, 'just-inside', 2 * DAY - 1);
    record(s, 'three-days', 3 * DAY);
    s.enforceLimits();
    expect(kept(s, ['one-day', 'just-inside', 'three-days'])).toEqual(['one-day', 'just-inside']);
  });

  it('keeps 30 days by default', () => {
    const s = open();
    record(s, 'd29', 29 * DAY);
    record(s, 'd31', 31 * DAY);
    s.enforceLimits();
    expect(kept(s, ['d29', 'd31'])).toEqual(['d29']);
  });

  it('is a duration in the config of at least 2d, 30d by default', () => {
    const load = (commands: string) => {
      const file = join(dir, 'meterd.yaml');
      writeFileSync(file, `gateway: { id: gw-1 }\nmqtt: { url: "mqtt://127.0.0.1:1883" }\n${commands}`);
      try {
        return loadGatewayConfig(file, {}).commands.keepForMs;
      } catch (err) {
        if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
        throw err;
      }
    };
    expect(load('')).toBe(30 * DAY);
    expect(load('commands: { keepFor: 90d }\n')).toBe(90 * DAY);
    expect(load('commands: { keepFor: 2d }\n')).toBe(2 * DAY);
    expect(load('commands: { keepFor: 1d }\n')).toEqual([
      expect.stringMatching(/^commands\.keepFor: "1d" is shorter than the replay window of 2d/),
    ]);
    expect(load('commands: { keepFor: soon }\n')).toEqual([expect.stringMatching(/^commands\.keepFor: /)]);
  });
});
