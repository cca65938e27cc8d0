import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connectStation, gate, RecordingHandlers, signed, startGateway, type Station, type TestGateway } from './commands-harness.js';

// The command router's local door (CommandRouter.submit), which the control socket serves: the same checks, record,
// de-duplication and handlers as MQTT, no signature, the operator recorded, and replies that never reach the broker.

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

const KEY = 'k'.repeat(32);

async function setUp(handlers?: RecordingHandlers): Promise<{ gw: TestGateway; station: Station }> {
  // A station key: over MQTT everything must be signed; the local door needs no signature.
  const gw = await startGateway({ url: broker.url, settings: { hmacKey: KEY, allowUnsigned: false }, ...(handlers ? { handlers } : {}) });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station };
}

const outboxReplies = (gw: TestGateway) => gw.store.outbox.counts().byClass.reply;

describe('a request through the local door', () => {
  it('runs the same handler unsigned, records origin and operator, and answers only the caller', async () => {
    const { gw, station } = await setUp();
    const { first, final } = gw.router.submit('topup', { requestId: 'l-1', meter: 'room-101', amountFen: 500 }, { operator: 'alice' });
    expect(first).toEqual({ requestId: 'l-1', status: 'accepted' });
    expect(await final).toEqual({ requestId: 'l-1', status: 'done', result: { handled: 'topup', meter: 'room-101' } });
    expect(gw.handlers.calls).toHaveLength(1);
    expect(gw.handlers.calls[0]?.ctx).toMatchObject({ requestId: 'l-1', origin: 'socket', operator: 'alice', resumed: false });
    expect(gw.commands()[0]).toMatchObject({ requestId: 'l-1', status: 'done', origin: 'socket', operator: 'alice' });
    expect(outboxReplies(gw)).toBe(0);

    // The same request unsigned over MQTT is refused; signed it is a duplicate answered from the record on MQTT.
    await station.send('topup', { requestId: 'l-2', meter: 'room-101', amountFen: 500 });
    expect((await station.waitForReplies(1, 'the refusal', 'l-2'))[0]?.reply).toMatchObject({
      status: 'rejected',
      error: { code: 'UNSIGNED' },
    });
    await station.send('topup', signed({ requestId: 'l-1', meter: 'room-101', amountFen: 500 }, KEY));
    expect((await station.waitForReplies(1, 'the recorded answer', 'l-1'))[0]?.reply).toMatchObject({ status: 'done' });
    expect(gw.handlers.calls).toHaveLength(1);
    expect(station.repliesFor('l-1')).toHaveLength(1);
  });

  it('is checked like MQTT: schema, meter, command name; nothing recorded', async () => {
    const { gw } = await setUp();
    const bad = gw.router.submit('topup', { requestId: 'l-3', meter: 'room-101', energyKwh: 1.234 }, { operator: 'bob' });
    expect(bad.first).toMatchObject({ requestId: 'l-3', status: 'rejected', error: { code: 'INVALID_FIELD', field: 'energyKwh' } });
    expect(await bad.final).toBe(bad.first);
    const unknownMeter = gw.router.submit('relay', { requestId: 'l-4', meter: 'room-999', action: 'trip' }, { operator: 'bob' });
    expect(unknownMeter.first).toMatchObject({ status: 'rejected', error: { code: 'UNKNOWN_METER' } });
    const unknownCommand = gw.router.submit('launch', { requestId: 'l-5' }, { operator: 'bob' });
    expect(unknownCommand.first).toMatchObject({ status: 'rejected', error: { code: 'UNKNOWN_COMMAND' } });
    expect(gw.commands()).toEqual([]);
    expect(gw.handlers.calls).toEqual([]);
    expect(outboxReplies(gw)).toBe(0);
  });

  it('a duplicate while it runs waits for the same outcome; the handler runs once', async () => {
    const release = gate();
    const handlers = new RecordingHandlers(async (call) => {
      await release.promise;
      return { status: 'done', result: { handled: call.handler } };
    });
    const { gw } = await setUp(handlers);
    const request = { requestId: 'l-6', meter: 'room-102', action: 'trip' };
    const a = gw.router.submit('relay', request, { operator: 'alice' });
    const b = gw.router.submit('relay', request, { operator: 'bob' });
    expect(a.first.status).toBe('accepted');
    expect(b.first.status).toBe('accepted');
    await eventually(() => handlers.calls.length === 1, 'the handler to start');
    release.open();
    expect(await a.final).toEqual(await b.final);
    expect((await b.final).status).toBe('done');
    expect(handlers.calls).toHaveLength(1);
    // The first sender is the one recorded.
    expect(gw.commands()[0]).toMatchObject({ operator: 'alice' });
  });

  it('interrupted by a stop, its caller hears accepted; resumed at the next start, its reply still never goes to MQTT', async () => {
    const interrupted = new RecordingHandlers(
      (call) =>
        new Promise((_resolve, reject) => {
          call.ctx.signal.addEventListener('abort', () => reject(call.ctx.signal.reason), { once: true });
        }),
    );
    const { gw: first, station } = await setUp(interrupted);
    const { final } = first.router.submit('read', { requestId: 'l-7', meter: 'room-101', points: ['voltage.a'] }, { operator: 'alice' });
    await eventually(() => interrupted.calls.length === 1, 'the handler to start');
    await first.stop();
    expect(await final).toEqual({ requestId: 'l-7', status: 'accepted' });

    const restarted = await startGateway({ url: broker.url, restartOf: first, settings: { hmacKey: KEY, allowUnsigned: false } });
    cleanups.push(() => restarted.close());
    await eventually(() => restarted.commands()[0]?.status === 'done', 'the resumed command done');
    expect(restarted.handlers.calls[0]?.ctx).toMatchObject({ requestId: 'l-7', resumed: true, origin: 'socket', operator: 'alice' });
    expect(outboxReplies(restarted)).toBe(0);
    expect(station.repliesFor('l-7')).toEqual([]);
  });
});
