import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { loadProfileFile, loadProfiles } from '../../src/profiles/registry.js';
import { Books } from '../../src/services/books/index.js';
import { localDate } from '../../src/services/books/periods.js';
import { startModbusSimulator, type ModbusSimulator, type SimulatedModbusMeter } from '../../src/sim/modbus/index.js';
import { allowanceRows, purchaseCounterWindow } from '../../src/store/index.js';
import { eventually, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';
import { type DeskOutcome, stopGatewayRig, submitReplace } from '../helpers/replace-rig.js';

// Replacing Modbus meters (issue 16, docs/lifecycle.md): the in-process gateway on one Modbus TCP line where the old
// and the new meter of each point answer at their own unit ids (modbus-serial on both sides). A dormitory meter's kWh
// wallet moves onto the new meter once, proved by its purchase counter; readings go on under the point's id from the
// new unit; the same request again changes nothing; a yuan wallet moves its balance less its overdraft. A meter that
// keeps only free energy (no wallet) moves nothing and says so, and the allowance row its dead meter left pending
// loads onto the new meter once, never the old one.

const profiles = loadProfiles();
const prepaid = profiles.get('modbus-dorm-prepaid')!;
// The campus meter of docs/allowances.md without a purchase method: free energy per circuit, no wallet at all.
const FREE_ONLY = `id: test-dorm-free-only
name: Dormitory meter with free-energy registers only (test)
protocol: modbus-rtu
line: { baudRate: 9600, parity: none, dataBits: 8, stopBits: 1 }
maxGap: 4
points:
  energy.active.import: { table: holding, address: 0x0000, type: uint32, scale: 0.01, unit: kWh }
  energy.active.export: { table: holding, address: 0x0008, type: uint32, scale: 0.01, unit: kWh }
  credit.free.energy.ac: { table: holding, address: 0x0110, type: uint32, scale: 0.01, unit: kWh }
  credit.free.energy.lighting: { table: holding, address: 0x0112, type: uint32, scale: 0.01, unit: kWh }
groups:
  energy: { interval: 15m, points: [energy.active.import, energy.active.export] }
  credit: { interval: 5m, points: [credit.free.energy.ac, credit.free.energy.lighting] }
credit:
  - method: modbus-subsidy
    unit: energy
    registers:
      - { point: credit.free.energy.ac, share: 2 }
      - { point: credit.free.energy.lighting, share: 1 }
    consumed: energy.active.import
`;
// A money (yuan) wallet in the same register style, with an overdraft register.
const YUAN = `id: test-dorm-yuan
name: Dormitory meter with a yuan wallet (test)
protocol: modbus-rtu
line: { baudRate: 9600, parity: none, dataBits: 8, stopBits: 1 }
maxGap: 4
points:
  energy.active.import: { table: holding, address: 0x0000, type: uint32, scale: 0.01, unit: kWh }
  credit.balance.money: { table: holding, address: 0x0100, type: uint32, scale: 0.01, unit: CNY }
  credit.purchase.count: { table: holding, address: 0x0102, type: uint16, unit: "" }
  credit.overdraft: { table: holding, address: 0x0103, type: uint32, scale: 0.01, unit: CNY }
groups:
  energy: { interval: 15m, points: [energy.active.import] }
  credit: { interval: 5m, points: [credit.balance.money, credit.purchase.count, credit.overdraft] }
credit:
  method: modbus-write
  unit: money
  registers:
    - { field: purchaseCount, address: 0x0200, type: uint16 }
    - { field: amount, address: 0x0201, type: uint32, scale: 0.01 }
  readBack: { count: credit.purchase.count, balance: credit.balance.money, overdraft: credit.overdraft }
`;
const KEY = { allowance: 'dorm-free', term: 't1', round: 'r1' };
// Unit ids on the line: the money point's old and new meter, the free-energy point's old (dead) and new meter.
const M_OLD = 1;
const M_NEW = 2;
const F_OLD = 11;
const F_NEW = 12;
const Y_OLD = 21;
const Y_NEW = 22;

let broker: TestBroker;
let sim: ModbusSimulator;
let gw: Gateway;
const gatewayId = uniqueId('gw-replace-modbus');

beforeAll(async () => {
  broker = await startTestBroker();
  const dir = mkdtempSync(join(tmpdir(), 'meterd-replace-modbus-'));
  mkdirSync(join(dir, 'profiles'));
  writeFileSync(join(dir, 'profiles', 'test-dorm-free-only.yaml'), FREE_ONLY);
  const freeOnly = loadProfileFile(join(dir, 'profiles', 'test-dorm-free-only.yaml'));
  writeFileSync(join(dir, 'profiles', 'test-dorm-yuan.yaml'), YUAN);
  const yuan = loadProfileFile(join(dir, 'profiles', 'test-dorm-yuan.yaml'));
  sim = await startModbusSimulator({
    profile: prepaid,
    unit: M_OLD,
    tcpPort: 0,
    values: { 'credit.balance.energy': 37.5, 'credit.purchase.count': 5, 'energy.active.import': 5123.4 },
    neighbours: [
      { unit: M_NEW, values: { 'credit.balance.energy': 0, 'credit.purchase.count': 0, 'energy.active.import': 0.5 } },
      {
        unit: F_OLD,
        profile: freeOnly,
        values: { 'energy.active.import': 812.3, 'credit.free.energy.ac': 1, 'credit.free.energy.lighting': 0.5 },
      },
      {
        unit: F_NEW,
        profile: freeOnly,
        values: { 'energy.active.import': 0.2, 'credit.free.energy.ac': 0, 'credit.free.energy.lighting': 0 },
      },
      {
        unit: Y_OLD,
        profile: yuan,
        values: { 'energy.active.import': 4321, 'credit.balance.money': 40, 'credit.overdraft': 2.5, 'credit.purchase.count': 5 },
      },
      {
        unit: Y_NEW,
        profile: yuan,
        values: { 'energy.active.import': 0.1, 'credit.balance.money': 0, 'credit.overdraft': 0, 'credit.purchase.count': 0 },
      },
    ],
  });
  // The free-energy point's old meter died before the allowance round: it answers nothing.
  sim.setFaults({ silent: true }, F_OLD);
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
profiles: { dirs: [./profiles] }
buses:
  - { id: line1, port: "tcp://127.0.0.1:${sim.port}", protocol: modbus-tcp, gap: 2ms, timeout: 300ms, retries: 0 }
meters:
  - { id: room-m, bus: line1, unit: ${M_OLD}, profile: modbus-dorm-prepaid }
  - { id: room-f, bus: line1, unit: ${F_OLD}, profile: test-dorm-free-only, tags: [free] }
  - { id: room-y, bus: line1, unit: ${Y_OLD}, profile: test-dorm-yuan }
polling:
  intervals: { instant: 1h, energy: 1s, status: 1h, credit: 1s }
allowances:
  - id: dorm-free
    meters: { tags: [free] }
    energyKwh: 30
    retry: 1s
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2099-09-07" }
`,
  );
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger });
}, 30_000);

afterAll(() => stopGatewayRig({ gw, sim, broker, gatewayId, meterIds: ['room-m', 'room-f', 'room-y'], extra: ['allowances/dorm-free'] }));

const replace = (request: Record<string, unknown>): Promise<DeskOutcome> =>
  submitReplace(gw, { reason: 'failed verification', ...request });
const at = (unit: number): SimulatedModbusMeter => sim.meterAt(unit)!;
/** Waits for a poll of the point's purchase counter at this count, taken after `since`. */
const counted = (meterId: string, since: number, count: number) =>
  eventually(
    () => gw.store.transaction((tx) => purchaseCounterWindow(tx, meterId, since, Date.now() + 1)?.last.count === count),
    `a poll of ${meterId} at counter ${count}`,
    15_000,
  );
const transfers = (meterId: string) => gw.store.ledger.list({ meterId }).filter((e) => e.channel === 'transfer');

describe('replacing a Modbus meter', { timeout: 60_000 }, () => {
  it('refuses a DL/T 645 address and the point’s own unit, changing nothing', async () => {
    const wrongKind = await replace({ requestId: 'swap-m-dlt', meter: 'room-m', newAddress: '000000000002' });
    expect(wrongKind).toMatchObject({ status: 'rejected', error: { code: 'ADDRESS_INVALID' } });
    const own = await replace({ requestId: 'swap-m-own', meter: 'room-m', newAddress: `unit ${M_OLD}` });
    expect(own).toMatchObject({ status: 'rejected', error: { code: 'ADDRESS_IN_USE' } });
    const nobody = await replace({ requestId: 'swap-m-none', meter: 'room-m', newAddress: 'unit 99' });
    expect(nobody).toMatchObject({ status: 'rejected', error: { code: 'NEW_METER_SILENT' } });
    // A silent meter with a wallet needs its balance and count off the display, not its energy alone.
    sim.setFaults({ silent: true }, M_OLD);
    const energyOnly = await replace({
      requestId: 'swap-m-energy',
      meter: 'room-m',
      newAddress: `unit ${M_NEW}`,
      final: { importKwh: 5123.4 },
    });
    sim.setFaults({ silent: false }, M_OLD);
    expect(energyOnly).toMatchObject({ status: 'rejected', error: { code: 'FINAL_READING_NEEDED' } });
    expect(gw.store.register.active('room-m')?.address).toBe(`unit ${M_OLD}`);
    expect(at(M_NEW).writes()).toEqual([]);
  });

  it('moves the kWh wallet onto the new unit once, proved by its purchase counter; readings go on from the new unit', async () => {
    // The books have seen the old meter's counter before the swap.
    const before = Date.now();
    await counted('room-m', before, 5);
    const out = await replace({ requestId: 'swap-m', meter: 'room-m', newAddress: `unit ${M_NEW}`, newAssetNo: 'A-M2' });
    expect(out).toMatchObject({
      status: 'done',
      result: {
        meter: 'room-m',
        old: { address: `unit ${M_OLD}` },
        new: { address: `unit ${M_NEW}`, assetNo: 'A-M2' },
        final: { source: 'read', importKwh: 5123.4, balance: 37.5, purchaseCount: 5 },
        initial: { importKwh: 0.5, balance: 0, purchaseCount: 0 },
        moved: { amount: 37.5, unit: 'kWh', requestId: 'swap-m:transfer', purchaseCount: 1 },
        owed: 0,
      },
    });
    // The new meter took one load at count 1; the old one kept its wallet and was never written.
    expect(at(M_NEW).credits).toEqual({ applied: 1, repeat: 0, refused: 0 });
    expect([at(M_NEW).getValue('credit.balance.energy'), at(M_NEW).getValue('credit.purchase.count')]).toEqual([37.5, 1]);
    expect(at(M_OLD).writes()).toEqual([]);
    expect([at(M_OLD).getValue('credit.balance.energy'), at(M_OLD).getValue('credit.purchase.count')]).toEqual([37.5, 5]);
    expect(transfers('room-m').map((e) => [e.state, e.amount, e.purchaseCount])).toEqual([['applied', 3750, 1]]);
    expect(gw.store.register.active('room-m')).toMatchObject({ address: `unit ${M_NEW}`, profile: 'modbus-dorm-prepaid' });

    // The poller reads the point at the new unit id: its low import register, under the same meter id.
    const swappedAt = Date.now();
    await eventually(
      () => {
        const r = gw.store.readings.latest('room-m');
        return r !== null && r.takenAt > swappedAt && r.address === `unit ${M_NEW}`;
      },
      'a reading of room-m from the new unit',
      15_000,
    );
    expect(gw.store.readings.latest('room-m')!.values['energy.active.import']).toMatchObject({ v: 0.5 });
    // Top-ups go to the new meter too, counted on from the transfer.
    const { entry } = await gw.credit.topUp({ requestId: 'after-swap', meterId: 'room-m', channel: 'remote', operator: 'x', energyKwh: 2 });
    expect(entry).toMatchObject({ state: 'applied', purchaseCount: 2 });
    expect(at(M_NEW).getValue('credit.balance.energy')).toBe(39.5);

    // The books check each meter's counter over its own time at the point (the readings carry the unit they came
    // from): no "counter went back", the swap in plain words, the transfer apart from sales.
    await counted('room-m', Date.now(), 2);
    const cfg = gw.config;
    const report = new Books({ store: gw.store, clock: systemClock, gateway: cfg.gateway, meters: cfg.meters }).report({
      kind: 'daily',
      date: localDate(Date.now(), 'UTC'),
    });
    const row = report.reconciliation.find((m) => m.meterId === 'room-m')!;
    expect(row.findings).toEqual([]);
    expect(row).toMatchObject({ status: 'balanced', opening: { count: 5 }, closing: { count: 2 }, booksLoads: 2 });
    expect(row.swaps).toMatchObject([
      { oldAddress: `unit ${M_OLD}`, newAddress: `unit ${M_NEW}`, finalCount: 5, initialCount: 0, transfers: 1 },
    ]);
    const energy = report.totals.find((t) => t.unit === 'energy')!;
    expect(energy.transfers).toEqual({ count: 1, amount: 3750 });
  });

  it('the same request again returns the first result and changes nothing', async () => {
    const writes = at(M_NEW).writes().length;
    const again = await replace({ requestId: 'swap-m', meter: 'room-m', newAddress: `unit ${M_NEW}`, newAssetNo: 'A-M2' });
    expect(again).toMatchObject({ status: 'done', result: { moved: { amount: 37.5, purchaseCount: 1 } } });
    expect(at(M_NEW).writes().length).toBe(writes);
    expect(at(M_NEW).credits.applied).toBe(2);
    expect(transfers('room-m')).toHaveLength(1);
  });

  it('a yuan wallet: the balance less the overdraft moves onto the new unit once', async () => {
    const out = await replace({ requestId: 'swap-y', meter: 'room-y', newAddress: `unit ${Y_NEW}` });
    expect(out).toMatchObject({
      status: 'done',
      result: {
        final: { source: 'read', balance: 40, overdraft: 2.5, purchaseCount: 5 },
        moved: { amount: 37.5, unit: 'CNY', purchaseCount: 1 },
        owed: 0,
      },
    });
    expect(at(Y_NEW).credits).toEqual({ applied: 1, repeat: 0, refused: 0 });
    expect([at(Y_NEW).getValue('credit.balance.money'), at(Y_NEW).getValue('credit.purchase.count')]).toEqual([37.5, 1]);
    expect(at(Y_OLD).writes()).toEqual([]);
    expect(transfers('room-y').map((e) => [e.state, e.unit, e.amount, e.purchaseCount])).toEqual([['applied', 'money', 3750, 1]]);
  });

  it('a free-energy meter moves no credit, and the allowance row its dead meter left loads onto the new meter once', async () => {
    const row = () => gw.store.transaction((tx) => allowanceRows(tx, KEY))[0]!;
    gw.allowances.runNow(KEY, { by: 'test' });
    await eventually(() => row().reasonCode === 'METER_UNREACHABLE', 'the row waiting for the dead meter', 20_000);
    expect(row()).toMatchObject({ meterId: 'room-f', state: 'pending' });

    // The old meter is silent: its energy comes off its display (it has no wallet to read). An allowance attempt may be on the line right now
    // (ALLOWANCE_RUNNING: the technician sends again), never interleaved with the replacement.
    let out: DeskOutcome | undefined;
    for (let i = 0; i < 20 && (out === undefined || out.error?.code === 'ALLOWANCE_RUNNING'); i++)
      out = await replace({
        requestId: `swap-f-${i}`,
        meter: 'room-f',
        newAddress: `unit ${F_NEW}`,
        final: { importKwh: 812.3 },
      });
    expect(out).toMatchObject({
      status: 'done',
      result: {
        old: { address: `unit ${F_OLD}` },
        new: { address: `unit ${F_NEW}` },
        final: { source: 'manual', importKwh: 812.3, balance: null, purchaseCount: null },
        initial: { importKwh: 0.2, balance: null, purchaseCount: null },
        moved: { amount: 0, unit: null, requestId: null, nothing: 'no-wallet' },
      },
    });
    expect(transfers('room-f')).toEqual([]);

    await eventually(() => row().state === 'applied', 'the row applied on the new meter', 30_000);
    // 30 kWh split 2:1 over the circuits of the new meter, written once; the old meter was never written.
    expect([at(F_NEW).getValue('credit.free.energy.ac'), at(F_NEW).getValue('credit.free.energy.lighting')]).toEqual([20, 10]);
    expect(
      at(F_NEW)
        .writes()
        .map((w) => w.start),
    ).toEqual([0x0110, 0x0112]);
    expect(at(F_OLD).writes()).toEqual([]);
    expect([at(F_OLD).getValue('credit.free.energy.ac'), at(F_OLD).getValue('credit.free.energy.lighting')]).toEqual([1, 0.5]);
    const applied = gw.store.ledger.list({ meterId: 'room-f' }).filter((e) => e.state === 'applied');
    expect(applied.map((e) => [e.channel, e.amount])).toEqual([['allowance', 3000]]);
  });
});
