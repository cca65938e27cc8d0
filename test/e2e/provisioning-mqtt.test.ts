import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, type SimulatedEncoder, type VirtualSle4442 } from '../../src/sim/encoder/index.js';
import { openStore } from '../../src/store/index.js';
import { runMeterd } from '../helpers/cli.js';
import type { DaemonProcess } from '../helpers/daemon.js';
import { startDaemonRig, type CommandReplyMessage, type DaemonRig } from '../helpers/daemon-rig.js';

// card-open and card-replace are commands like the others: validated and signed over MQTT (the station drives the
// counter remotely), and the same command through the control socket (meterd card open|replace -c FILE).

const METER = '000000000501';
const CUSTOMER = '880000000501';
const KEY = 'provisioning-test-key';
let rig: DaemonRig;
let encoder: SimulatedEncoder;
let daemon: DaemonProcess;

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-prov',
    buses: [{ meters: [{ address: METER, kind: 'energy', purchaseCount: 0 }] }],
    encoder: true,
  });
  encoder = rig.encoder!;
  daemon = await rig.start(
    `gateway: { id: ${rig.gw}, dataDir: ./data }
mqtt: { url: "${rig.broker.url}", protocolVersion: ${rig.broker.kind === 'external' ? 5 : 4} }
commands: { hmacKey: "${KEY}" }
buses: [{ id: bus1, port: "${rig.busUrl()}" }]
meters: [{ id: room-501, bus: bus1, address: "${METER}", profile: dlt645-2007-single-phase-prepaid }]
encoders: [{ id: counter-1, port: "${rig.encoderPort}" }]
`,
  );
}, 60_000);
afterAll(async () => {
  await rig?.close({ retained: ['status', 'meters/room-501/state'] });
});

const send = (command: string, request: Record<string, unknown>, sign = true): Promise<CommandReplyMessage> =>
  rig.send(command, request, { ...(sign ? { key: KEY } : {}), timeoutMs: 20_000 });

describe('card-open and card-replace over MQTT and the control socket', { timeout: 90_000 }, () => {
  let first: VirtualSle4442;

  it('an unsigned card-open and one with a bad field are refused before the encoder is touched', async () => {
    first = cards.blank();
    encoder.insert(first);
    const unsigned = await send('card-open', { requestId: 'co-0', meter: 'room-501', customerNo: CUSTOMER, operator: 'alice' }, false);
    expect(unsigned).toMatchObject({ status: 'rejected', error: { code: 'UNSIGNED' } });
    const bad = await send('card-open', { requestId: 'co-1', meter: 'room-501', customerNo: '88A', operator: 'alice' });
    expect(bad).toMatchObject({ status: 'rejected', error: { field: 'customerNo' } });
  });

  it('a signed card-open opens the blank card with a first purchase and records it', async () => {
    const r = await send('card-open', {
      requestId: 'co-2',
      meter: 'room-501',
      customerNo: CUSTOMER,
      name: 'Zhou Yi',
      room: '5-501',
      energyKwh: 20,
      operator: 'alice',
    });
    expect(r, JSON.stringify(r)).toMatchObject({
      status: 'done',
      result: { meterNumber: METER, customerNo: CUSTOMER, cardSerial: 1, purchaseCount: 1, amount: 2000, openedBooks: true },
    });
    encoder.remove();
  });

  it('meterd card replace through the daemon writes the last purchase onto a blank card; the old card is then refused', async () => {
    encoder.insert(cards.blank());
    const r = await runMeterd(
      ['card', 'replace', '-c', daemon.configPath, '--customer', CUSTOMER, '--reason', 'lost', '--operator', 'carol', '--json'],
      {
        cwd: daemon.dir,
      },
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ cardSerial: 2, oldSerial: '1', purchaseCount: 1, amount: 2000 });
    encoder.remove();

    encoder.insert(first);
    const sell = await send('card-sell', { requestId: 'cs-1', meter: 'room-501', energyKwh: 5, operator: 'bob' });
    expect(sell).toMatchObject({ status: 'rejected', error: { code: 'CARD_REPORTED_LOST' } });
    expect(sell.error!.message).toMatch(
      /^card 1 was reported lost on .* and replaced by card 2: keep it, and serve the customer on the replacement card$/,
    );
    encoder.remove();

    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(store.ledger.list({ meterId: METER }).map((e) => [e.channel, e.purchaseCount, e.amount])).toEqual([
        ['opening', 0, 0],
        ['card', 1, 2000],
      ]);
      expect(store.archive.history(CUSTOMER).map((h) => [h.operator, h.action])).toEqual([
        ['alice', 'open-card'],
        ['carol', 'replace-card (lost)'],
      ]);
    } finally {
      store.close();
    }
  });

  it('a damaged card is rewritten from the books through the daemon (meterd card rewrite -c) and over MQTT (card-rewrite, signed)', async () => {
    const layout = loadCardLayout('sle4442-dorm');
    const damaged = cards.ours(layout, {
      meterNumber: METER,
      customerNumber: CUSTOMER,
      cardSerial: 2,
      purchaseCount: 1,
      purchaseAmount: 2000,
    });
    damaged.main[0x46] = damaged.main[0x46]! ^ 0xff; // the purchase amount, its checksum no longer holds
    encoder.insert(damaged);
    const r = await runMeterd(['card', 'rewrite', '-c', daemon.configPath, '--operator', 'dave', '--json'], { cwd: daemon.dir });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({
      cardSerial: '2',
      customerNo: CUSTOMER,
      purchaseCount: 1,
      amount: 2000,
      role: 'replacement',
    });
    encoder.remove();

    const unreadable = cards.ours(layout, {
      meterNumber: METER,
      customerNumber: CUSTOMER,
      cardSerial: 9,
      purchaseCount: 1,
      purchaseAmount: 2000,
    });
    unreadable.main.fill(0xee, 0x31, 0x35);
    encoder.insert(unreadable);
    const unsigned = await send('card-rewrite', { requestId: 'cw-0', meter: 'room-501', operator: 'erin' }, false);
    expect(unsigned).toMatchObject({ status: 'rejected', error: { code: 'UNSIGNED' } });
    const unknown = await send('card-rewrite', { requestId: 'cw-1', operator: 'erin' });
    expect(unknown).toMatchObject({ status: 'rejected', error: { code: 'CARD_UNKNOWN' } });
    const done = await send('card-rewrite', { requestId: 'cw-2', meter: 'room-501', operator: 'erin' });
    expect(done, JSON.stringify(done)).toMatchObject({ status: 'done', result: { cardSerial: '2', purchaseCount: 1, amount: 2000 } });
    encoder.remove();

    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(store.ledger.list({ meterId: METER }).map((e) => e.channel)).toEqual(['opening', 'card']);
      expect(
        store.archive
          .history(CUSTOMER)
          .slice(-2)
          .map((h) => [h.operator, h.action]),
      ).toEqual([
        ['dave', 'rewrite-card'],
        ['erin', 'rewrite-card'],
      ]);
    } finally {
      store.close();
    }
  });

  it('a parameter card over MQTT (card-param, signed) and through the daemon (meterd card param -c), read back and recorded', async () => {
    const request = { requestId: 'cp-1', priceYuan: 0.5283, alarm1: 20, alarm2: 10, overdraft: 5, hoarding: 500, operator: 'frank' };
    encoder.insert(cards.blank());
    expect(await send('card-param', { ...request, requestId: 'cp-0' }, false)).toMatchObject({
      status: 'rejected',
      error: { code: 'UNSIGNED' },
    });
    expect(await send('card-param', { ...request, requestId: 'cp-00', alarm2: 21 })).toMatchObject({
      status: 'rejected',
      error: { code: 'INVALID_FIELD', field: 'alarm2' },
    });
    const done = await send('card-param', request);
    expect(done, JSON.stringify(done)).toMatchObject({
      status: 'done',
      result: {
        operator: 'frank',
        meterAddress: null,
        unit: '0.01kWh',
        price: 5283,
        alarm1: 2000,
        alarm2: 1000,
        overdraft: 500,
        hoarding: 50_000,
      },
    });
    const read = await send('card-read', { requestId: 'cp-read' });
    expect(read.result).toMatchObject({ role: 'parameter', valid: true, parameters: { price: 5283, hoarding: 50_000 } });

    const r = await runMeterd(
      [
        'card',
        'param',
        '-c',
        daemon.configPath,
        '--meter',
        'room-501',
        '--price',
        '0.6',
        '--alarm1',
        '30',
        '--alarm2',
        '15',
        '--overdraft',
        '0',
        '--hoarding',
        '0',
        '--operator',
        'grace',
      ],
      { cwd: daemon.dir },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(
      /^parameter card \d+ written for meter 000000000501: price 0\.6000 yuan\/kWh, alarm 1 30\.00 kWh, alarm 2 15\.00 kWh, overdraft 0\.00 kWh, hoarding no limit; read back and recorded for grace \(through the daemon\)/,
    );
    encoder.remove();

    const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
    try {
      expect(store.parameterCards.list().map((p) => [p.operator, p.meterAddress, p.price])).toEqual([
        ['frank', null, 5283],
        ['grace', METER, 6000],
      ]);
      expect(store.archive.history(CUSTOMER).at(-1)).toMatchObject({ operator: 'grace', action: 'parameter-card' });
    } finally {
      store.close();
    }
  });
});
