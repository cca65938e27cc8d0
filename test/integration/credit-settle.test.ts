import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { systemClock, type Timers } from '../../src/clock.js';
import { dlt645CreditPort, type CreditPort } from '../../src/devices/credit-port.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { CreditService } from '../../src/services/credit.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { openStore, type Store } from '../../src/store/index.js';

// CreditService.topUpSettled against a simulated meter that loses the acknowledgement and then goes quiet for the
// read-back: the service keeps reading it (pacing on injected timers) until the counter decides.

const ADDRESS = '000000000007';
const AUTH = { password: { level: 2, code: '000000' }, operator: '00000001' };
const POLICY = { tries: 4, pauseMs: 3000 };

let sim: Dlt645Simulator;
let bus: FrameBus<Frame>;
let store: Store;
let port: CreditPort;

/** Timers that record each pause and fire it on the next turn of the event loop, after `onPause` had its say. */
function steppedTimers(onPause: (n: number) => void): Timers & { readonly pauses: number[] } {
  const pauses: number[] = [];
  return {
    pauses,
    now: () => performance.now(),
    setTimeout(fn, ms) {
      pauses.push(ms);
      onPause(pauses.length);
      return setImmediate(fn);
    },
    clearTimeout: (h) => clearImmediate(h as NodeJS.Immediate),
  };
}

/** The port, but the load's acknowledgement is lost and the meter then goes silent (the load itself lands). */
function ackLostThenSilent(): CreditPort {
  return {
    unit: port.unit,
    readWallet: (o) => port.readWallet(o),
    async load(l, o) {
      sim.bus.dropNext(1, ADDRESS);
      const outcome = await port.load(l, o);
      sim.bus.setFaults({ silent: true }, ADDRESS);
      return outcome;
    },
  };
}

const snap = () => sim.meters.get(ADDRESS)!.snapshot();
const service = (timers: Timers) =>
  new CreditService({ store, clock: systemClock, timers, ports: new Map([['room-7', ackLostThenSilent()]]) });

beforeAll(async () => {
  sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [{ address: '7', kind: 'energy', balance: 10, purchaseCount: 3 }] } });
  bus = await openBus<Frame>({
    id: 'bus1',
    port: `tcp://127.0.0.1:${sim.address!.tcpPort}`,
    line: { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 },
    decoder: new Dlt645Decoder(),
    gapMs: 0,
  });
  const meter = new Dlt645Meter({ link: bus, address: ADDRESS, timeoutMs: 200, readRetries: 0 });
  port = dlt645CreditPort(meter, loadProfiles().get('dlt645-2007-single-phase-prepaid')!, AUTH);
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-settle-')), 'meterd.db'), clock: systemClock });
});
beforeEach(() => sim.bus.setFaults({ silent: undefined }, ADDRESS));
afterAll(async () => {
  store?.close();
  await bus?.close();
  await sim?.close();
});

describe('CreditService.topUpSettled: the settle-after-top-up policy', () => {
  it('keeps reading a meter that missed the read-back until it answers: applied, loaded exactly once', async () => {
    const before = snap();
    // The meter is back during the second pause: the first re-read fails too, the second decides.
    const timers = steppedTimers((n) => {
      if (n === 2) sim.bus.setFaults({ silent: undefined }, ADDRESS);
    });
    const r = await service(timers).topUpSettled(
      { requestId: 's-1', meterId: 'room-7', channel: 'remote', energyKwh: 5 },
      undefined,
      POLICY,
    );
    expect(r.fresh).toBe(true);
    expect(r.entry).toMatchObject({ state: 'applied', purchaseCount: before.purchaseCount! + 1, error: null });
    expect(timers.pauses).toEqual([3000, 3000]);
    expect(snap()).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 500 });
    const outbox = store.outbox.peek({ limit: 50 }).filter((m) => m.topic === 'meters/room-7/credit');
    expect(outbox.map((m) => JSON.parse(m.payload).state)).toEqual(['applied']);
  });

  it("gives up waiting after the policy's tries and leaves the entry open for settlement, never failed by guessing", async () => {
    const before = snap();
    const timers = steppedTimers(() => {});
    const s = service(timers);
    const r = await s.topUpSettled({ requestId: 's-2', meterId: 'room-7', channel: 'remote', energyKwh: 1 }, undefined, POLICY);
    expect(r.entry).toMatchObject({ state: 'verifying', error: { code: 'UNSETTLED' } });
    expect(timers.pauses).toHaveLength(POLICY.tries);
    // The load landed; later settlement finds it, once.
    sim.bus.setFaults({ silent: undefined }, ADDRESS);
    const settled = await s.settleOpen();
    expect(settled.map((e) => [e.requestId, e.state])).toEqual([['s-2', 'applied']]);
    expect(snap()).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 100 });
  });

  it('an abort ends the waiting, not the load: the entry stays open and is settled later', async () => {
    const before = snap();
    const ctl = new AbortController();
    const timers = steppedTimers((n) => {
      if (n === 1) ctl.abort(new Error('the station gave up'));
    });
    const s = service(timers);
    const r = await s.topUpSettled({ requestId: 's-3', meterId: 'room-7', channel: 'remote', energyKwh: 2 }, ctl.signal, POLICY);
    expect(r.entry.state).toBe('verifying');
    expect(timers.pauses).toHaveLength(1);
    sim.bus.setFaults({ silent: undefined }, ADDRESS);
    expect((await s.settleOne('s-3'))?.state).toBe('applied');
    expect(snap()).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 200 });
  });

  it('a top-up that settles at once does not wait, and a repeated request id returns the first result', async () => {
    const timers = steppedTimers(() => {});
    const s = new CreditService({ store, clock: systemClock, timers, ports: new Map([['room-7', port]]) });
    const first = await s.topUpSettled({ requestId: 's-4', meterId: 'room-7', channel: 'remote', energyKwh: 1 }, undefined, POLICY);
    const again = await s.topUpSettled({ requestId: 's-4', meterId: 'room-7', channel: 'remote', energyKwh: 1 }, undefined, POLICY);
    expect([first.entry.state, first.fresh, again.entry.state, again.fresh]).toEqual(['applied', true, 'applied', false]);
    expect(timers.pauses).toEqual([]);
  });
});
