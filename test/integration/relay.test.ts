import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { systemClock } from '../../src/clock.js';
import { dlt645CreditPort } from '../../src/devices/credit-port.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { dlt645RelayPort, type RelayPort } from '../../src/devices/relay-port.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { CreditService } from '../../src/services/credit.js';
import { RelayService } from '../../src/services/relay.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;
const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid-money')!;
let sim: Dlt645Simulator;
let bus: FrameBus<Frame>;
let store: Store;
let relays: RelayService;
let credit: CreditService;
const ports = new Map<string, RelayPort>();

beforeAll(async () => {
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        { address: '1', balance: 30 },
        { address: '2', keepPower: true },
        { address: '3', balance: 5, purchaseCount: 1 },
      ],
    },
  });
  bus = await openBus<Frame>({
    id: 'bus1',
    port: `tcp://127.0.0.1:${sim.address!.tcpPort}`,
    line: LINE,
    decoder: new Dlt645Decoder(),
    gapMs: 0,
  });
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-relay-')), 'meterd.db'), clock: systemClock });
  const auth = { password: { level: 2, code: '000000' }, operator: '00000007' };
  const creditPorts = new Map();
  for (const [id, address] of [
    ['room-1', '000000000001'],
    ['room-2', '000000000002'],
    ['room-3', '000000000003'],
  ] as const) {
    const meter = new Dlt645Meter({ link: bus, address, timeoutMs: 300, readRetries: 1 });
    ports.set(id, dlt645RelayPort(meter, profile, auth));
    creditPorts.set(id, dlt645CreditPort(meter, profile, auth));
  }
  ports.set(
    'room-9',
    dlt645RelayPort(new Dlt645Meter({ link: bus, address: '000000000001', timeoutMs: 300 }), profile, {
      ...auth,
      password: { level: 2, code: '999999' },
    }),
  );
  relays = new RelayService({ store, clock: systemClock, ports });
  credit = new CreditService({ store, clock: systemClock, ports: creditPorts });
});
afterAll(async () => {
  store?.close();
  await bus?.close();
  await sim?.close();
});

const open = (a: string) => sim.meters.get(a)!.snapshot().relay.open;

describe('relay control for arrears', () => {
  it('a trip then a close, each confirmed by the meter, and the new state published (retained)', async () => {
    const trip = await relays.switch({ meterId: 'room-1', action: 'trip', requestedBy: 'req-trip-1', receivedAt: Date.now() });
    expect(trip).toMatchObject({ status: 'done', state: { open: true, commandTrip: true } });
    expect(open('000000000001')).toBe(true);
    const close = await relays.switch({ meterId: 'room-1', action: 'close', requestedBy: 'req-close-1', receivedAt: Date.now() });
    expect(close).toMatchObject({ status: 'done', state: { open: false } });
    expect(open('000000000001')).toBe(false);
    const states = store.outbox.peek({ limit: 10 }).filter((m) => m.topic === 'meters/room-1/state');
    expect(states.at(-1)!.retain).toBe(true);
    expect(JSON.parse(states.at(-1)!.payload)).toMatchObject({
      relay: 'closed',
      relayChange: { action: 'close', requestedBy: 'req-close-1' },
    });
    expect(store.meterStates.get('room-1')?.relayState).toBe('closed');
  });

  it("a meter in keep-power refuses the trip, and the refusal is reported with the meter's reason", async () => {
    const r = await relays.switch({ meterId: 'room-2', action: 'trip', requestedBy: 'req-trip-2', receivedAt: Date.now() });
    expect(r).toMatchObject({ status: 'rejected', code: 'RELAY_REFUSED' });
    expect(open('000000000002')).toBe(false);
  });

  it('a wrong password is reported as unauthorised', async () => {
    const r = await relays.switch({ meterId: 'room-9', action: 'trip', requestedBy: 'req-trip-9', receivedAt: Date.now() });
    expect(r).toMatchObject({ status: 'rejected', code: 'RELAY_UNAUTHORISED' });
  });

  it('a pending trip for a meter topped up since the request is cancelled, not executed', async () => {
    const receivedAt = Date.now() - 1000;
    await credit.topUp({ requestId: 'pay-3', meterId: 'room-3', channel: 'remote', amountFen: 2000 });
    const r = await relays.switch({ meterId: 'room-3', action: 'trip', requestedBy: 'req-trip-3', receivedAt });
    expect(r).toMatchObject({ status: 'cancelled' });
    expect(open('000000000003')).toBe(false);
  });

  it('a lost acknowledgement is settled from the status word, never re-sent', async () => {
    const before = sim.meters.get('000000000001')!.snapshot().relay.tripCount;
    sim.bus.dropNext(1, '000000000001');
    const r = await relays.switch({ meterId: 'room-1', action: 'trip', requestedBy: 'req-trip-4', receivedAt: Date.now() });
    expect(r).toMatchObject({ status: 'done', state: { open: true }, note: expect.stringMatching(/acknowledgement was lost/) });
    expect(sim.meters.get('000000000001')!.snapshot().relay.tripCount).toBe(before + 1);
  });

  it('after a top-up, a relay the meter left open is closed (station policy), and a closed one is left alone', async () => {
    await relays.switch({ meterId: 'room-1', action: 'trip', requestedBy: 'arrears', receivedAt: Date.now() - 5000 });
    expect(open('000000000001')).toBe(true);
    expect(await relays.closeIfOpen('room-1', 'pay-9:after-topup')).toBe('closed');
    expect(open('000000000001')).toBe(false);
    expect(await relays.closeIfOpen('room-1', 'pay-10:after-topup')).toBe('closed');
  });
});
