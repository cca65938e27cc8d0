import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { openModbusLink, type ModbusLink } from '../../src/bus/modbus-link.js';
import { systemClock } from '../../src/clock.js';
import { dlt645CreditPort, modbusCreditPort, type CreditPort } from '../../src/devices/credit-port.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfileFile, loadProfiles } from '../../src/profiles/registry.js';
import { CreditService } from '../../src/services/credit.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startModbusSimulator } from '../../src/sim/modbus/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;
const AUTH = { password: { level: 2, code: '000000' }, operator: '00000001' };
const profiles = loadProfiles();
const vendorProfile = loadProfileFile(new URL('../fixtures/profiles/acme-dds-vendor-credit.yaml', import.meta.url).pathname);

let sim: Dlt645Simulator;
let bus: FrameBus<Frame>;
let modbusSim: Awaited<ReturnType<typeof startModbusSimulator>>;
let modbusLink: ModbusLink;
let store: Store;
let service: CreditService;
const ports = new Map<string, CreditPort>();
const meters: Record<string, Dlt645Meter> = {};

beforeAll(async () => {
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        { address: '1', kind: 'energy', balance: 10, purchaseCount: 5, customerNumber: '880000000001' },
        { address: '2', kind: 'money', balance: 20, purchaseCount: 2, hoardingLimit: 500 },
        {
          address: '3',
          kind: 'energy',
          balance: 1,
          purchaseCount: 0,
          vendorCredit: { di: '04A00101', layout: vendorProfile.credit!.method === 'dlt645-write' ? vendorProfile.credit!.layout : [] },
          registers: { '04A00202': '0700' },
        }, // an identifier the simulator does not know: raw bytes, low first
        { address: '4', kind: 'energy', balance: 3, purchaseCount: 9 },
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
  const dlt = (id: string, address: string, profileId: string) => {
    const profile = profileId === vendorProfile.id ? vendorProfile : profiles.get(profileId)!;
    meters[id] = new Dlt645Meter({ link: bus, address, timeoutMs: 300, readRetries: 1 });
    ports.set(id, dlt645CreditPort(meters[id]!, profile, AUTH));
  };
  dlt('room-1', '000000000001', 'dlt645-2007-single-phase-prepaid');
  dlt('room-2', '000000000002', 'dlt645-2007-single-phase-prepaid-money');
  dlt('vendor-3', '000000000003', vendorProfile.id);
  dlt('room-4', '000000000004', 'dlt645-2007-single-phase-prepaid');
  const dorm = profiles.get('modbus-dorm-prepaid')!;
  modbusSim = await startModbusSimulator({
    profile: dorm,
    unit: 1,
    tcpPort: 0,
    values: { 'credit.balance.energy': 4, 'credit.purchase.count': 11 },
  });
  modbusLink = await openModbusLink({
    id: 'bus2',
    port: `tcp://127.0.0.1:${modbusSim.port}`,
    protocol: 'modbus-tcp',
    line: LINE,
    gapMs: 0,
  });
  ports.set('dorm-1', modbusCreditPort(new ModbusMeter({ link: modbusLink, unit: 1, profile: dorm, timeoutMs: 300 }), dorm));
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-credit-')), 'meterd.db'), clock: systemClock });
  service = new CreditService({ store, clock: systemClock, ports });
});
afterAll(async () => {
  store?.close();
  await bus?.close();
  await modbusLink?.close();
  await sim?.close();
  await modbusSim?.close();
});

const snap = (address: string) => sim.meters.get(address)!.snapshot();
const loads = (address: string) => sim.bus.stats().meters[address]!.requests;

describe('credit: purchased energy lands exactly once', () => {
  it('a top-up lands once: count +1, balance up by the amount, the ledger says applied with both readings', async () => {
    const r = await service.topUp({ requestId: 'r-1', meterId: 'room-1', channel: 'remote', energyKwh: 25.5, customerNo: '880000000001' });
    expect(r.fresh).toBe(true);
    expect(r.entry).toMatchObject({
      state: 'applied',
      purchaseCount: 6,
      amount: 2550,
      before: { count: 5, balance: 1000 },
      after: { count: 6, balance: 3550 },
    });
    expect(snap('000000000001')).toMatchObject({ purchaseCount: 6, balance: 3550 });
    const msg = store.outbox.peek({ limit: 10 }).find((m) => m.topic === 'meters/room-1/credit')!;
    expect(msg.class).toBe('credit');
    expect(JSON.parse(msg.payload)).toMatchObject({
      requestId: 'r-1',
      state: 'applied',
      amount: { value: 25.5, unit: 'kWh' },
      after: { count: 6, balance: 35.5 },
    });
  });

  it('the same request id again writes nothing and returns the first result', async () => {
    const requests = loads('000000000001');
    const r = await service.topUp({ requestId: 'r-1', meterId: 'room-1', channel: 'remote', energyKwh: 25.5, customerNo: '880000000001' });
    expect(r.fresh).toBe(false);
    expect(r.entry.state).toBe('applied');
    expect(loads('000000000001')).toBe(requests);
    expect(snap('000000000001').purchaseCount).toBe(6);
  });

  it('the same request sent twice at once lands once', async () => {
    const [a, b] = await Promise.all([
      service.topUp({ requestId: 'r-2', meterId: 'room-1', channel: 'remote', energyKwh: 1, customerNo: '880000000001' }),
      service.topUp({ requestId: 'r-2', meterId: 'room-1', channel: 'remote', energyKwh: 1, customerNo: '880000000001' }),
    ]);
    expect([a.entry.state, b.entry.state]).toEqual(['applied', 'applied']);
    expect(snap('000000000001')).toMatchObject({ purchaseCount: 7, balance: 3650 });
  });

  /** Runs `fault` just before the load frame goes out (after the gateway's own reads), then the load itself. */
  function faultBeforeLoad(meterId: string, fault: () => void): () => void {
    const port = ports.get(meterId)!;
    ports.set(meterId, {
      ...port,
      unit: port.unit,
      readWallet: port.readWallet,
      load: (l, o) => {
        fault();
        return port.load(l, o);
      },
    });
    return () => ports.set(meterId, port);
  }

  it('a lost acknowledgement is settled by the counter: applied once, no second load', async () => {
    const before = snap('000000000004');
    const restore = faultBeforeLoad('room-4', () => sim.bus.dropNext(1, '000000000004'));
    const r = await service.topUp({ requestId: 'r-3', meterId: 'room-4', channel: 'remote', energyKwh: 2 });
    restore();
    expect(r.entry.state).toBe('applied');
    expect(
      store.ledger
        .events(r.entry.id)
        .map((e) => e.detail)
        .join(' | '),
    ).toMatch(/unknown: BUS_TIMEOUT/);
    expect(snap('000000000004')).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 200 });
  });

  it('a meter silent during the load leaves the entry open; settlement reads the meter and loads exactly once', async () => {
    const before = snap('000000000004');
    const restore = faultBeforeLoad('room-4', () => sim.bus.setFaults({ silent: true }, '000000000004'));
    const r = await service.topUp({ requestId: 'r-4', meterId: 'room-4', channel: 'remote', energyKwh: 3 });
    restore();
    expect(r.entry.state).toBe('verifying');
    expect(r.entry.error?.code).toBe('UNSETTLED');
    expect(snap('000000000004').purchaseCount).toBe(before.purchaseCount);
    sim.bus.setFaults({ silent: undefined }, '000000000004');
    const settled = await service.settleOpen();
    expect(settled.map((e) => [e.requestId, e.state])).toEqual([['r-4', 'applied']]);
    expect(snap('000000000004')).toMatchObject({ purchaseCount: before.purchaseCount! + 1, balance: before.balance! + 300 });
  });

  it("a load over the hoarding limit is rejected with the meter's reason and nothing changes", async () => {
    const r = await service.topUp({ requestId: 'r-5', meterId: 'room-2', channel: 'remote', amountFen: 100_000 });
    expect(r.entry).toMatchObject({ state: 'rejected', error: { code: 'OVER_HOARDING_LIMIT' } });
    expect(snap('000000000002')).toMatchObject({ purchaseCount: 2, balance: 2000 });
  });

  it('a wrong customer number is rejected by name', async () => {
    const r = await service.topUp({ requestId: 'r-6', meterId: 'room-1', channel: 'remote', energyKwh: 1, customerNo: '880000000999' });
    expect(r.entry).toMatchObject({ state: 'rejected', error: { code: 'CUSTOMER_MISMATCH' } });
  });

  it('the wrong unit for the wallet is refused before anything is recorded', async () => {
    await expect(service.topUp({ requestId: 'r-7', meterId: 'room-2', channel: 'remote', energyKwh: 1 })).rejects.toMatchObject({
      code: 'UNIT_MISMATCH',
    });
    expect(store.ledger.get('r-7')).toBeNull();
  });

  it('an amount outside the shared limits is refused by the service itself, whichever door it came by, before anything is recorded', async () => {
    const cases: [string, Record<string, number>, RegExp][] = [
      ['room-1', { energyKwh: 12.345 }, /at most two decimals/],
      ['room-1', { energyKwh: 20_000 }, /at most 10000 kWh|at most 10,000/],
      ['room-1', { energyKwh: -1 }, /above 0/],
      ['room-2', { amountFen: 1e308 }, /at most 10000000 fen/],
      ['room-2', { amountFen: 1.5 }, /whole number of fen/],
    ];
    for (const [i, [meterId, amount, message]] of cases.entries()) {
      const requestId = `r-limit-${i}`;
      await expect(service.topUp({ requestId, meterId, channel: 'remote', ...amount })).rejects.toMatchObject({
        code: 'INVALID_AMOUNT',
        message: expect.stringMatching(message),
      });
      expect(store.ledger.get(requestId)).toBeNull();
    }
  });

  it('a Modbus dormitory meter takes credit by its register write, verified by its counter', async () => {
    const r = await service.topUp({ requestId: 'r-8', meterId: 'dorm-1', channel: 'operator', energyKwh: 12.5 });
    expect(r.entry).toMatchObject({
      state: 'applied',
      purchaseCount: 12,
      before: { count: 11, balance: 400 },
      after: { count: 12, balance: 1650 },
    });
    expect(modbusSim.getValue('credit.purchase.count')).toBe(12);
  });

  it('a model that exists only as a YAML fixture is read and credited through its own identifier and payload layout', async () => {
    const reader = new Dlt645PointReader(meters['vendor-3']!, vendorProfile);
    const values = await reader.read(['vendor.tariff.code', 'credit.balance.energy'], { priority: 'operator' });
    expect(values.get('vendor.tariff.code')).toEqual({ v: 7, unit: '' });
    expect(values.get('credit.balance.energy')).toEqual({ v: 1, unit: 'kWh' });
    const r = await service.topUp({ requestId: 'r-9', meterId: 'vendor-3', channel: 'remote', energyKwh: 8.25 });
    expect(r.entry).toMatchObject({ state: 'applied', purchaseCount: 1, after: { count: 1, balance: 925 } });
    expect(snap('000000000003')).toMatchObject({ purchaseCount: 1, balance: 925 });
  });
});
