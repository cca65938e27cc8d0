import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { capturingLogger, connectStation, signed, startGateway, type Station, type TestGateway } from './commands-harness.js';

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

async function setUp(settings: {
  hmacKey?: string;
  allowUnsigned: boolean;
}): Promise<{ gw: TestGateway; station: Station; logLines: Record<string, unknown>[] }> {
  const { logger, lines } = capturingLogger();
  const gw = await startGateway({ url: broker.url, settings, logger });
  cleanups.push(() => gw.close());
  const station = await connectStation(broker.url, gw.gatewayId, 4);
  cleanups.push(() => station.close());
  return { gw, station, logLines: lines };
}

const topup = (requestId: string) => ({ requestId, meter: 'room-101', energyKwh: 12.5 });

/** One request of every command that moves money or cuts power. */
const DANGEROUS: readonly { command: string; payload: (requestId: string) => Record<string, unknown> }[] = [
  { command: 'topup', payload: topup },
  { command: 'topup', payload: (requestId) => ({ requestId, meter: 'room-101', amountFen: 1000 }) },
  { command: 'relay', payload: (requestId) => ({ requestId, meter: 'room-101', action: 'trip' }) },
  { command: 'relay', payload: (requestId) => ({ requestId, meter: 'room-101', action: 'close' }) },
  { command: 'card-sell', payload: (requestId) => ({ requestId, meter: 'room-101', amountFen: 500, operator: 'alice' }) },
  { command: 'time-sync', payload: (requestId) => ({ requestId, meter: 'all' }) },
  { command: 'supply-notice', payload: (requestId) => ({ requestId, meter: 'room-101', reason: 'arrears', operator: 'alice' }) },
  { command: 'supply-approve', payload: (requestId) => ({ requestId, noticeId: 1, operator: 'bob' }) },
  { command: 'supply-cancel', payload: (requestId) => ({ requestId, noticeId: 1, operator: 'bob' }) },
  { command: 'supply-restore', payload: (requestId) => ({ requestId, meter: 'room-101', operator: 'bob', reason: 'paid' }) },
];

describe('without commands.hmacKey and without allowUnsigned (the default)', () => {
  it('every command that moves money or cuts power is refused UNSIGNED, runs nothing and records nothing', async () => {
    const { gw, station, logLines } = await setUp({ allowUnsigned: false });
    for (const [i, { command, payload }] of DANGEROUS.entries()) await station.send(command, payload(`r-${i}`));
    for (const [i, { command }] of DANGEROUS.entries()) {
      const [reply] = await station.waitForReplies(1, `the refusal of r-${i}`, `r-${i}`);
      expect(reply?.topic).toBe(`meterd/${gw.gatewayId}/cmd/${command}/result`);
      expect(reply?.reply).toMatchObject({ requestId: `r-${i}`, status: 'rejected', error: { code: 'UNSIGNED', field: 'signature' } });
      expect(reply?.reply.error?.message).toContain('commands.hmacKey');
    }
    expect(gw.handlers.calls).toEqual([]);
    expect(gw.commands()).toEqual([]);
    expect(logLines.filter((l) => l.code === 'UNSIGNED' && l.level === 40)).toHaveLength(DANGEROUS.length);
  });

  it('read-only commands still run unsigned', async () => {
    const { gw, station } = await setUp({ allowUnsigned: false });
    await station.send('read', { requestId: 'r-read', meter: 'room-101', points: ['energy.active.import'] });
    await station.send('card-read', { requestId: 'r-card' });
    expect((await station.waitForReplies(2, 'read accepted and done', 'r-read')).map((r) => r.reply.status)).toEqual(['accepted', 'done']);
    expect((await station.waitForReplies(2, 'card-read accepted and done', 'r-card')).map((r) => r.reply.status)).toEqual([
      'accepted',
      'done',
    ]);
    expect(gw.handlers.calls.map((c) => c.handler).sort()).toEqual(['cardRead', 'read']);
  });

  it('a refused request id can be sent again signed once a key is configured (the refusal recorded nothing)', async () => {
    const first = await setUp({ allowUnsigned: false });
    await first.station.send('topup', topup('r-1'));
    await first.station.waitForReplies(1, 'the UNSIGNED refusal', 'r-1');
    await first.gw.stop();
    const second = await startGateway({ url: broker.url, settings: { hmacKey: KEY, allowUnsigned: false }, restartOf: first.gw });
    cleanups.push(() => second.close());
    await first.station.send('topup', signed(topup('r-1'), KEY));
    const replies = await first.station.waitForReplies(3, 'accepted and done after the refusal', 'r-1');
    expect(replies.map((r) => r.reply.status)).toEqual(['rejected', 'accepted', 'done']);
    expect(second.handlers.calls).toHaveLength(1);
  });
});

describe('with commands.allowUnsigned: true and no key', () => {
  it('unsigned commands that move money or cut power are accepted and run', async () => {
    const { gw, station } = await setUp({ allowUnsigned: true });
    for (const [i, { command, payload }] of DANGEROUS.entries()) await station.send(command, payload(`r-${i}`));
    for (const [i] of DANGEROUS.entries()) {
      const replies = await station.waitForReplies(2, `accepted and done for r-${i}`, `r-${i}`);
      expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done']);
    }
    expect(gw.handlers.calls).toHaveLength(DANGEROUS.length);
  });
});

describe('with commands.hmacKey', () => {
  for (const allowUnsigned of [false, true]) {
    it(`a signed top-up is accepted and runs (allowUnsigned: ${allowUnsigned})`, async () => {
      const { gw, station } = await setUp({ hmacKey: KEY, allowUnsigned });
      await station.send('topup', signed(topup('r-1'), KEY));
      const replies = await station.waitForReplies(2, 'accepted and done', 'r-1');
      expect(replies.map((r) => r.reply.status)).toEqual(['accepted', 'done']);
      expect(gw.handlers.calls).toHaveLength(1);
    });

    it(`an unsigned top-up is refused UNSIGNED: a key makes signatures mandatory (allowUnsigned: ${allowUnsigned})`, async () => {
      const { gw, station } = await setUp({ hmacKey: KEY, allowUnsigned });
      await station.send('topup', { ...topup('r-1'), ts: new Date().toISOString() });
      const [reply] = await station.waitForReplies(1, 'the refusal', 'r-1');
      expect(reply?.reply).toMatchObject({ status: 'rejected', error: { code: 'UNSIGNED', field: 'signature' } });
      expect(gw.handlers.calls).toEqual([]);
    });
  }
});
