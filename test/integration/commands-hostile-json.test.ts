import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { capturingLogger, connectStation, signed, startGateway, type Station, type TestGateway } from './commands-harness.js';

// Requests that are valid JSON but no request (item 16 of issue 17, the bad-input probe's D7 and D11), through a real
// broker: each gets exactly one `rejected` reply, runs nothing, records nothing and logs no error.

const KEY = 'station-7-shared-secret';

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

async function setUp(hmacKey?: string): Promise<{ gw: TestGateway; station: Station; logLines: Record<string, unknown>[] }> {
  const { logger, lines } = capturingLogger();
  const gw = await startGateway({ url: broker.url, settings: hmacKey === undefined ? {} : { hmacKey }, logger });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station, logLines: lines };
}

/** The probe's payload: a top-up with an extra field nested 2,500 objects deep (12.5 KB, under maxPayloadBytes). */
const DEEP = `{"requestId":"do1","meter":"room-101","amountFen":100,"x":${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}}`;

/**
 * Sends a valid top-up after the request under test and waits for its final reply: replies on one topic arrive in order,
 * so by then every reply the request under test will ever get has arrived.
 */
async function settle(station: Station, requestId: string, payload: Record<string, unknown>): Promise<void> {
  await station.send('topup', payload);
  await station.waitForReplies(2, `the reply to the valid request ${requestId} sent after`, requestId);
}

describe('a request nested deeper than 16 levels', () => {
  it('gets exactly one rejected reply naming the field, before the schema or canonicalisation walk it', async () => {
    const { gw, station, logLines } = await setUp();
    await station.send('topup', DEEP);
    await settle(station, 'after-1', { requestId: 'after-1', meter: 'room-101', amountFen: 100 });

    const replies = station.repliesFor('do1');
    expect(replies).toHaveLength(1);
    expect(replies[0]?.reply).toMatchObject({
      requestId: 'do1',
      status: 'rejected',
      error: { code: 'INVALID_FIELD', message: expect.stringContaining('nests deeper than 16 levels') },
    });
    expect(replies[0]?.reply.error?.field).toMatch(/^x(\.a){15}$/);
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['after-1']);
    expect(gw.commands().map((c) => c.requestId)).toEqual(['after-1']);
    expect(logLines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('in HMAC mode with a well-formed signature and a current ts: one rejected reply, no stack trace, nothing run', async () => {
    const { gw, station, logLines } = await setUp(KEY);
    const forged = `${DEEP.slice(0, -1)},"ts":"${new Date().toISOString()}","signature":"${'ab'.repeat(32)}"}`;
    await station.send('topup', forged);
    await settle(station, 'after-2', signed({ requestId: 'after-2', meter: 'room-101', amountFen: 100 }, KEY));

    const replies = station.repliesFor('do1');
    expect(replies).toHaveLength(1);
    expect(replies[0]?.reply).toMatchObject({ requestId: 'do1', status: 'rejected', error: { code: 'INVALID_FIELD' } });
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['after-2']);
    expect(logLines.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('a top-level array 8,000 deep is still NOT_AN_OBJECT, and 16 levels of an unknown field reach the schema', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', `${'['.repeat(8000)}${']'.repeat(8000)}`);
    const sixteen = `{"requestId":"deep-ok","meter":"room-101","amountFen":100,"x":${'{"a":'.repeat(15)}1${'}'.repeat(15)}}`;
    await station.send('topup', sixteen);
    await settle(station, 'after-3', { requestId: 'after-3', meter: 'room-101', amountFen: 100 });

    expect(station.repliesFor(null).map((r) => r.reply.error?.code)).toEqual(['NOT_AN_OBJECT']);
    expect(station.repliesFor('deep-ok').map((r) => r.reply)).toEqual([
      {
        requestId: 'deep-ok',
        status: 'rejected',
        error: { code: 'INVALID_FIELD', field: 'x', message: 'unknown field x in a topup request' },
      },
    ]);
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['after-3']);
  });
});

describe('a key given twice in one object', () => {
  it('{"amountFen":-5,"amountFen":100} is rejected naming amountFen, and loads nothing', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', '{"requestId":"dk1","meter":"room-101","amountFen":-5,"amountFen":100}');
    await settle(station, 'after-4', { requestId: 'after-4', meter: 'room-101', amountFen: 100 });

    expect(station.repliesFor('dk1').map((r) => r.reply)).toEqual([
      {
        requestId: 'dk1',
        status: 'rejected',
        error: {
          code: 'INVALID_FIELD',
          field: 'amountFen',
          message: 'amountFen appears twice in the request; give each field once (JSON parsers disagree on which one counts)',
        },
      },
    ]);
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['after-4']);
    expect(gw.commands().map((c) => c.requestId)).toEqual(['after-4']);
  });

  it('is found when escaped ("\\u0061mountFen") and inside a nested object; a repeated requestId leaves the reply unmatched', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', '{"requestId":"dk2","meter":"room-101","amountFen":1,"\\u0061mountFen":100}');
    await station.send(
      'topup',
      '{"requestId":"dk3","meter":"room-101","energyKwh":1,"esam":{"ciphertext":"0011223344556677","random":"0011223344556677","random":"FFFFFFFFFFFFFFFF"}}',
    );
    await station.send('topup', '{"requestId":"dk4","requestId":"dk5","meter":"room-101","amountFen":1}');
    await settle(station, 'after-5', { requestId: 'after-5', meter: 'room-101', amountFen: 100 });

    expect(station.repliesFor('dk2').map((r) => r.reply.error)).toMatchObject([{ code: 'INVALID_FIELD', field: 'amountFen' }]);
    expect(station.repliesFor('dk3').map((r) => r.reply.error)).toMatchObject([{ code: 'INVALID_FIELD', field: 'esam.random' }]);
    expect(station.repliesFor(null).map((r) => r.reply.error)).toMatchObject([{ code: 'INVALID_FIELD', field: 'requestId' }]);
    expect(gw.handlers.calls.map((c) => c.ctx.requestId)).toEqual(['after-5']);
  });
});
