import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BusError } from '../../src/bus/errors.js';
import { eventually, startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connectStation, gate, RecordingHandlers, startGateway, type Station, type TestGateway } from './commands-harness.js';

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

async function setUp(
  options: { settings?: { maxPayloadBytes?: number }; handlers?: RecordingHandlers } = {},
): Promise<{ gw: TestGateway; station: Station }> {
  const gw = await startGateway({ url: broker.url, ...options });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station };
}

const topup = (requestId: string, extra: Record<string, unknown> = {}) => ({ requestId, meter: 'room-101', energyKwh: 12.5, ...extra });

describe('a valid command', () => {
  it('is answered accepted, then done with the handler’s result, on cmd/<command>/result', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', topup('r-1', { purchaseCount: 8, customerNo: '000000000101' }));
    const replies = await station.waitForReplies(2, 'accepted and done', 'r-1');

    expect(replies.map((r) => r.topic)).toEqual([`meterd/${gw.gatewayId}/cmd/topup/result`, `meterd/${gw.gatewayId}/cmd/topup/result`]);
    expect(replies.map((r) => r.reply)).toEqual([
      { requestId: 'r-1', status: 'accepted' },
      { requestId: 'r-1', status: 'done', result: { handled: 'topup', meter: 'room-101' } },
    ]);
    expect(gw.handlers.calls).toHaveLength(1);
    expect(gw.handlers.calls[0]?.cmd).toMatchObject({
      requestId: 'r-1',
      meter: 'room-101',
      energyKwh: 12.5,
      purchaseCount: 8,
      credit: { unit: 'energy', amount: 1250 },
    });
    expect(gw.handlers.calls[0]?.ctx).toMatchObject({ requestId: 'r-1', command: 'topup', resumed: false });
    expect(gw.commands()).toMatchObject([{ requestId: 'r-1', command: 'topup', meterId: 'room-101', status: 'done' }]);
  });

  it('reaches the handler of its command: relay, read and time-sync (one meter or all)', async () => {
    const { gw, station } = await setUp();
    await station.send('relay', {
      requestId: 'r-relay',
      meter: 'room-101',
      action: 'trip',
      expiresAt: new Date(Date.now() + 60_000).toISOString(),
    });
    await station.send('read', { requestId: 'r-read', meter: 'room-102', points: ['energy.active.import', 'credit.balance.energy'] });
    await station.send('time-sync', { requestId: 'r-time', meter: 'all' });
    await station.send('topup', { requestId: 'r-money', meter: 'room-102', amountFen: 5000 });
    await station.waitForReplies(8, 'four accepted and four done replies');

    expect(gw.handlers.calls.map((c) => [c.handler, c.cmd.requestId])).toEqual([
      ['relay', 'r-relay'],
      ['read', 'r-read'],
      ['timeSync', 'r-time'],
      ['topup', 'r-money'],
    ]);
    expect(gw.handlers.calls[3]?.cmd.credit).toEqual({ unit: 'money', amount: 5000 });
    for (const command of ['relay', 'read', 'time-sync']) {
      expect(station.replies.filter((r) => r.topic === `meterd/${gw.gatewayId}/cmd/${command}/result`).map((r) => r.reply.status)).toEqual([
        'accepted',
        'done',
      ]);
    }
  });

  it('ends failed with the handler’s error and what is known, with a thrown gateway error’s code, or failed INTERNAL when the handler throws anything else', async () => {
    const handlers = new RecordingHandlers(async (call) => {
      if (call.cmd.requestId === 'r-throws') throw new Error('the bus arbiter is closed');
      if (call.cmd.requestId === 'r-bus-down') throw new BusError('BUS_DOWN', 'bus1 lost its port /dev/ttyUSB0');
      return {
        status: 'failed',
        error: { code: 'METER_TIMEOUT', message: 'no answer; settled by reading the meter' },
        result: { applied: false, purchaseCount: 7 },
      };
    });
    const { station } = await setUp({ handlers });
    await station.send('topup', topup('r-timeout'));
    await station.send('topup', topup('r-throws'));
    await station.send('topup', topup('r-bus-down'));
    await station.waitForReplies(6, 'three accepted and three failed');

    expect(station.repliesFor('r-timeout').map((r) => r.reply)[1]).toEqual({
      requestId: 'r-timeout',
      status: 'failed',
      error: { code: 'METER_TIMEOUT', message: 'no answer; settled by reading the meter' },
      result: { applied: false, purchaseCount: 7 },
    });
    expect(station.repliesFor('r-throws').map((r) => r.reply)[1]).toEqual({
      requestId: 'r-throws',
      status: 'failed',
      error: { code: 'INTERNAL', message: 'the bus arbiter is closed' },
    });
    // A named gateway error keeps its code: the station learns the bus is down, not that the gateway broke.
    expect(station.repliesFor('r-bus-down').map((r) => r.reply)[1]).toEqual({
      requestId: 'r-bus-down',
      status: 'failed',
      error: { code: 'BUS_DOWN', message: 'bus1 lost its port /dev/ttyUSB0' },
    });
  });
});

describe('a bad request is rejected with a code and the field, and changes nothing', () => {
  const cases: {
    name: string;
    command: string;
    payload: object | string | Buffer;
    code: string;
    field?: string;
    requestId?: string | null;
    mentions?: string;
  }[] = [
    { name: 'a payload that is not JSON', command: 'topup', payload: '{"requestId": "r-1", meter', code: 'NOT_JSON', requestId: null },
    { name: 'a payload that is JSON but not an object', command: 'topup', payload: '[1,2]', code: 'NOT_AN_OBJECT', requestId: null },
    {
      name: 'a payload over commands.maxPayloadBytes (not even parsed)',
      command: 'topup',
      payload: `{"requestId":"r-1","pad":"${'x'.repeat(300)}"}`,
      code: 'PAYLOAD_TOO_LARGE',
      requestId: null,
      mentions: '256',
    },
    {
      name: 'an unknown command',
      command: 'format-disk',
      payload: topup('r-1'),
      code: 'UNKNOWN_COMMAND',
      requestId: 'r-1',
      mentions: 'format-disk',
    },
    {
      name: 'a card sale without the cashier (operator)',
      command: 'card-sell',
      payload: topup('r-1'),
      code: 'INVALID_FIELD',
      field: 'operator',
    },
    {
      name: 'a missing requestId',
      command: 'topup',
      payload: { meter: 'room-101', energyKwh: 1 },
      code: 'MISSING_REQUEST_ID',
      field: 'requestId',
      requestId: null,
    },
    {
      name: 'a requestId that is not a string',
      command: 'topup',
      payload: { requestId: 42, meter: 'room-101', energyKwh: 1 },
      code: 'INVALID_FIELD',
      field: 'requestId',
      requestId: null,
    },
    {
      name: 'an unknown meter',
      command: 'topup',
      payload: topup('r-1', { meter: 'room-999' }),
      code: 'UNKNOWN_METER',
      field: 'meter',
      mentions: 'room-999',
    },
    {
      name: 'a missing meter',
      command: 'relay',
      payload: { requestId: 'r-1', action: 'trip' },
      code: 'INVALID_FIELD',
      field: 'meter',
      mentions: 'missing',
    },
    { name: 'negative energy', command: 'topup', payload: topup('r-1', { energyKwh: -5 }), code: 'INVALID_FIELD', field: 'energyKwh' },
    {
      name: 'energy with three decimals',
      command: 'topup',
      payload: topup('r-1', { energyKwh: 1.234 }),
      code: 'INVALID_FIELD',
      field: 'energyKwh',
      mentions: 'two decimals',
    },
    {
      name: 'both energy and money',
      command: 'topup',
      payload: topup('r-1', { amountFen: 1000 }),
      code: 'INVALID_FIELD',
      field: 'amountFen',
      mentions: 'energyKwh',
    },
    {
      name: 'neither energy nor money',
      command: 'topup',
      payload: { requestId: 'r-1', meter: 'room-101' },
      code: 'INVALID_FIELD',
      field: 'energyKwh',
      mentions: 'amountFen',
    },
    {
      name: 'an absurd amount of energy',
      command: 'topup',
      payload: topup('r-1', { energyKwh: 1_000_000 }),
      code: 'INVALID_FIELD',
      field: 'energyKwh',
      mentions: '10000',
    },
    {
      name: 'an absurd amount of money',
      command: 'topup',
      payload: { requestId: 'r-1', meter: 'room-101', amountFen: 1e12 },
      code: 'INVALID_FIELD',
      field: 'amountFen',
    },
    {
      name: 'money that is not whole fen',
      command: 'topup',
      payload: { requestId: 'r-1', meter: 'room-101', amountFen: 99.5 },
      code: 'INVALID_FIELD',
      field: 'amountFen',
    },
    {
      name: 'an unknown field (a typo)',
      command: 'topup',
      payload: topup('r-1', { expiresat: '2030-01-01T00:00:00Z' }),
      code: 'INVALID_FIELD',
      field: 'expiresat',
    },
    {
      name: 'a relay action that does not exist',
      command: 'relay',
      payload: { requestId: 'r-1', meter: 'room-101', action: 'open' },
      code: 'INVALID_FIELD',
      field: 'action',
    },
    {
      name: 'a read without points',
      command: 'read',
      payload: { requestId: 'r-1', meter: 'room-101', points: [] },
      code: 'INVALID_FIELD',
      field: 'points',
    },
    {
      name: 'an expiresAt in the past',
      command: 'relay',
      payload: { requestId: 'r-1', meter: 'room-101', action: 'trip', expiresAt: '2020-01-01T00:00:00Z' },
      code: 'EXPIRED',
      field: 'expiresAt',
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.code}`, async () => {
      const { gw, station } = await setUp({ settings: { maxPayloadBytes: 256 } });
      await station.send(c.command, c.payload);
      const [seen] = await station.waitForReplies(1, `the ${c.code} reply`);

      expect(seen?.topic).toBe(`meterd/${gw.gatewayId}/cmd/${c.command}/result`);
      expect(seen?.reply.status).toBe('rejected');
      expect(seen?.reply.requestId).toBe(c.requestId === undefined ? 'r-1' : c.requestId);
      expect(seen?.reply.error?.code).toBe(c.code);
      if (c.field !== undefined) {
        expect(seen?.reply.error?.field).toBe(c.field);
        expect(seen?.reply.error?.message).toContain(c.field);
      }
      if (c.mentions !== undefined) expect(seen?.reply.error?.message).toContain(c.mentions);
      expect(seen?.reply.result).toBeUndefined();
      expect(gw.handlers.calls).toEqual([]);
      expect(gw.commands()).toEqual([]);
      expect(gw.router.stats()).toMatchObject({ rejected: 1, accepted: 0 });
    });
  }

  it('a rejected requestId can be used again once the request is right', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', topup('r-1', { energyKwh: 1.234 }));
    await station.waitForReplies(1, 'the rejection', 'r-1');
    await station.send('topup', topup('r-1'));
    const replies = await station.waitForReplies(3, 'accepted and done after the fix', 'r-1');
    expect(replies.map((r) => r.reply.status)).toEqual(['rejected', 'accepted', 'done']);
    expect(gw.handlers.calls).toHaveLength(1);
  });
});

describe('a request id seen before', () => {
  it('sent again after it finished gets the same result, and the handler never runs twice', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', topup('r-1'));
    await station.waitForReplies(2, 'the first accepted and done', 'r-1');
    await station.send('topup', topup('r-1'));
    const replies = await station.waitForReplies(3, 'the answer to the repeat', 'r-1');

    expect(replies.map((r) => r.reply)).toEqual([
      { requestId: 'r-1', status: 'accepted' },
      { requestId: 'r-1', status: 'done', result: { handled: 'topup', meter: 'room-101' } },
      { requestId: 'r-1', status: 'done', result: { handled: 'topup', meter: 'room-101' } },
    ]);
    expect(gw.handlers.calls).toHaveLength(1);
    expect(gw.router.stats()).toMatchObject({ accepted: 1, duplicates: 1 });
  });

  it('sent twice at once is accepted twice and runs once; both see the same done', async () => {
    const release = gate();
    const handlers = new RecordingHandlers(async (call) => {
      await release.promise;
      return { status: 'done', result: { purchaseCount: 8, balanceKwh: 49.7, meter: call.cmd.meter } };
    });
    const { gw, station } = await setUp({ handlers });
    await Promise.all([station.send('topup', topup('r-1')), station.send('topup', topup('r-1'))]);
    await station.waitForReplies(2, 'both accepted', 'r-1');
    expect(gw.router.stats().running).toBe(1);
    release.open();
    await station.waitForReplies(3, 'the done reply', 'r-1');
    await station.send('topup', topup('r-1'));
    const replies = await station.waitForReplies(4, 'the done reply to a third send', 'r-1');

    expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'accepted', 'done', 'done']);
    expect(replies[2]?.reply).toEqual(replies[3]?.reply);
    expect(replies[3]?.reply.result).toEqual({ purchaseCount: 8, balanceKwh: 49.7, meter: 'room-101' });
    expect(handlers.calls).toHaveLength(1);
  });

  it('with other content is rejected REPLAYED and changes nothing', async () => {
    const { gw, station } = await setUp();
    await station.send('topup', topup('r-1'));
    await station.waitForReplies(2, 'accepted and done', 'r-1');
    await station.send('topup', topup('r-1', { energyKwh: 99 }));
    const replies = await station.waitForReplies(3, 'the REPLAYED rejection', 'r-1');

    expect(replies[2]?.reply).toMatchObject({ requestId: 'r-1', status: 'rejected', error: { code: 'REPLAYED', field: 'requestId' } });
    expect(gw.handlers.calls).toHaveLength(1);
    expect(gw.commands()).toMatchObject([{ requestId: 'r-1', status: 'done' }]);
  });

  it('is remembered across a restart: the restarted gateway answers from the record and runs nothing', async () => {
    const first = await startGateway({ url: broker.url });
    const station = await connectStation(broker.url, first.gatewayId, 4);
    cleanups.push(() => station.close());
    await station.send('topup', topup('r-1'));
    await station.waitForReplies(2, 'accepted and done before the restart', 'r-1');
    await first.stop();

    const restarted = await startGateway({ url: broker.url, restartOf: first });
    cleanups.push(() => restarted.close());
    await station.send('topup', topup('r-1'));
    const replies = await station.waitForReplies(3, 'the answer after the restart', 'r-1');

    expect(replies[2]?.reply).toEqual({ requestId: 'r-1', status: 'done', result: { handled: 'topup', meter: 'room-101' } });
    expect(first.handlers.calls).toHaveLength(1);
    expect(restarted.handlers.calls).toEqual([]);
  });
});

describe('a command interrupted by a shutdown', () => {
  it('stays accepted and is resumed at the next start, with ctx.resumed, and its done reply goes out then', async () => {
    const interrupted = new RecordingHandlers(
      (call) =>
        new Promise((_resolve, reject) => {
          call.ctx.signal.addEventListener('abort', () => reject(call.ctx.signal.reason), { once: true });
        }),
    );
    const first = await startGateway({ url: broker.url, handlers: interrupted });
    const station = await connectStation(broker.url, first.gatewayId, 4);
    cleanups.push(() => station.close());
    await station.send('relay', { requestId: 'r-1', meter: 'room-102', action: 'close' });
    await station.waitForReplies(1, 'accepted', 'r-1');
    await eventually(() => interrupted.calls.length === 1, 'the handler to start');
    await first.stop();
    expect(interrupted.calls[0]?.ctx.signal.aborted).toBe(true);

    const restarted = await startGateway({ url: broker.url, restartOf: first });
    cleanups.push(() => restarted.close());
    const replies = await station.waitForReplies(2, 'the done reply after the restart', 'r-1');

    expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done']);
    expect(restarted.handlers.calls).toHaveLength(1);
    expect(restarted.handlers.calls[0]?.ctx).toMatchObject({ requestId: 'r-1', command: 'relay', resumed: true });
    expect(restarted.handlers.calls[0]?.cmd).toMatchObject({ requestId: 'r-1', meter: 'room-102', action: 'close' });
  });
});
