import { closeSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import {
  capturingLogger,
  connectStation,
  gate,
  RecordingHandlers,
  startGateway,
  type Station,
  type TestGateway,
} from './commands-harness.js';

// A page of the commands table goes bad while the gateway runs (the start-up quick_check passed). The station must
// still hear back about every request: `failed INTERNAL`, published without the store.

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(handlers?: RecordingHandlers): Promise<{ gw: TestGateway; station: Station; lines: Record<string, unknown>[] }> {
  const { logger, lines } = capturingLogger();
  const gw = await startGateway({ url: broker.url, handlers, logger, protocolVersion: broker.kind === 'external' ? 5 : 4 });
  cleanups.push(() => gw.close().catch(() => undefined));
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station, lines };
}

/**
 * Random bytes over the root page of `commands` in the database file of a running gateway. Another connection first
 * checkpoints (so the page is read from the file, not the WAL) and afterwards commits a change, which makes the
 * gateway's connection drop its page cache at its next read, as it would after any write by the CLI.
 */
function damageCommandsRootWhileOpen(path: string): void {
  const other = new Database(path);
  try {
    other.pragma('wal_checkpoint(TRUNCATE)');
    const rootPage = other.prepare<[], number>("SELECT rootpage FROM sqlite_schema WHERE name = 'commands'").pluck().get()!;
    const pageSize = other.pragma('page_size', { simple: true }) as number;
    const noise = randomBytes(pageSize);
    noise[0] = 0xff; // not one of the four b-tree page types
    const fd = openSync(path, 'r+');
    writeSync(fd, noise, 0, pageSize, (rootPage - 1) * pageSize);
    closeSync(fd);
    other.pragma(`user_version = ${1 + (other.pragma('user_version', { simple: true }) as number)}`);
  } finally {
    other.close();
  }
}

const read = (requestId: string) => ({ requestId, meter: 'room-101', points: ['voltage.a'] });

describe('a damaged commands page after start', () => {
  it('a request the store cannot record is answered failed INTERNAL, directly, and no handler runs', async () => {
    const { gw, station, lines } = await setUp();
    await station.send('read', read('before'));
    await station.waitForReplies(2, 'accepted and done before the damage', 'before');

    damageCommandsRootWhileOpen(join(gw.dir, 'meterd.db'));
    await station.send('read', read('after-1'));
    await station.send('read', read('after-1')); // the station's retry: answered again, never silence
    const replies = await station.waitForReplies(2, 'a reply to each try', 'after-1');

    for (const { topic, reply } of replies) {
      expect(topic).toBe(`meterd/${gw.gatewayId}/cmd/read/result`);
      expect(reply).toMatchObject({ requestId: 'after-1', status: 'failed', error: { code: 'INTERNAL' } });
      expect(reply.error?.message).toMatch(/SQLITE_CORRUPT/);
    }
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['before']);
    expect(lines.some((l) => l.msg === 'the store could not record the command; answering failed INTERNAL directly')).toBe(true);
  });

  it('a handler that throws while the store cannot record its outcome still gets failed INTERNAL to the station', async () => {
    const running = gate();
    const handlers = new RecordingHandlers(async () => {
      await running.promise;
      throw new Error('the meter driver broke');
    });
    const { gw, station } = await setUp(handlers);
    await station.send('read', read('during'));
    await station.waitForReplies(1, 'accepted', 'during');

    damageCommandsRootWhileOpen(join(gw.dir, 'meterd.db'));
    running.open();
    const replies = await station.waitForReplies(2, 'accepted, then failed', 'during');
    expect(replies.map((r) => r.reply)).toEqual([
      { requestId: 'during', status: 'accepted' },
      { requestId: 'during', status: 'failed', error: { code: 'INTERNAL', message: 'the meter driver broke' } },
    ]);
  });
});
