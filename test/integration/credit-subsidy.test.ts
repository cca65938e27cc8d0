/**
 * The free-energy credit method through the credit service, a real SQLite ledger, ModbusLink and the simulated
 * dormitory meter with free-energy registers per circuit (device-profiles/modbus-dorm-subsidy.yaml) over Modbus TCP.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { systemClock } from '../../src/clock.js';
import { modbusCreditPort } from '../../src/devices/credit-port.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { modbusSubsidyPort } from '../../src/devices/subsidy-port.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { CreditError, CreditService } from '../../src/services/credit.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';
import { openStore, type Store } from '../../src/store/index.js';

const profile = loadProfiles().get('modbus-dorm-subsidy')!;
const AC = 0x0110;
const LIGHTING = 0x0112;

let sim: ModbusSimulator;
let link: ModbusLink;
let store: Store;
let path: string;

function service(): CreditService {
  const meter = new ModbusMeter({ link, unit: 1, profile, meterId: 'room-7', timeoutMs: 300 });
  return new CreditService({
    store,
    clock: systemClock,
    ports: new Map([['room-7', modbusCreditPort(meter, profile)]]),
    subsidyPorts: new Map([['room-7', modbusSubsidyPort(meter, profile)]]),
    maxAttempts: 2,
  });
}
const allowance = (requestId: string, energyKwh = 30) =>
  ({ requestId, meterId: 'room-7', channel: 'allowance', operator: 'system', priority: 'batch', energyKwh }) as const;
const m = () => sim.meter;
const free = () => [m().getValue('credit.free.energy.ac'), m().getValue('credit.free.energy.lighting')];

beforeEach(async () => {
  sim = await startModbusSimulator({
    profile,
    tcpPort: 0,
    values: {
      'credit.purchase.count': 9,
      'credit.balance.energy': 40,
      'energy.active.import': 500,
      'credit.free.energy.ac': 3,
      'credit.free.energy.lighting': 1,
    },
  });
  link = new ModbusLink({ id: 'dorm', port: `tcp://127.0.0.1:${sim.port}`, protocol: 'modbus-tcp', line: profile.line, gapMs: 0 });
  await link.open();
  path = join(mkdtempSync(join(tmpdir(), 'meterd-subsidy-')), 'meterd.db');
  store = openStore({ path, clock: systemClock });
});

afterEach(async () => {
  store.close();
  await link.close();
  await sim.close();
});

describe('an allowance on a meter with free-energy registers per circuit', () => {
  it('writes each circuit its share once and verifies it; the paid wallet and the purchase counter stay as they were', async () => {
    const { entry } = await service().topUp(allowance('a-1'));

    expect(entry).toMatchObject({ state: 'applied', channel: 'allowance', purchaseCount: null, amount: 3000, before: null });
    expect(free()).toEqual([23, 11]);
    expect(
      m()
        .writes()
        .map((w) => [w.start, w.words]),
    ).toEqual([
      [AC, [0, 2300]],
      [LIGHTING, [0, 1100]],
    ]);
    expect([m().getValue('credit.purchase.count'), m().getValue('credit.balance.energy')]).toEqual([9, 40]);

    // The same request again: the ledger answers, nothing reaches the meter.
    const again = await service().topUp(allowance('a-1'));
    expect(again).toMatchObject({ fresh: false, entry: { state: 'applied' } });
    expect(m().writes()).toHaveLength(2);
  });

  it('an ordinary top-up on the same meter is a purchase: counter + 1, paid balance up, free energy untouched', async () => {
    const { entry } = await service().topUp({ requestId: 't-1', meterId: 'room-7', channel: 'remote', energyKwh: 5 });

    expect(entry).toMatchObject({ state: 'applied', purchaseCount: 10 });
    expect([m().getValue('credit.purchase.count'), m().getValue('credit.balance.energy')]).toEqual([10, 45]);
    expect(free()).toEqual([3, 1]);
  });

  it('a money allowance for kWh registers is refused before anything is written', async () => {
    const err = await service()
      .topUp({ requestId: 'y-1', meterId: 'room-7', channel: 'allowance', amountFen: 1500 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CreditError);
    expect(err).toMatchObject({ code: 'UNIT_MISMATCH' });
    expect(m().writes()).toEqual([]);
  });

  it('no read-back, the room uses energy, a restart: settled as applied from the committed values, never written again', async () => {
    // The meter takes both writes and then stops answering: the read-back times out.
    const realWrite = m().writeRegisters.bind(m());
    let writes = 0;
    m().writeRegisters = (start, words) => {
      const answer = realWrite(start, words);
      if (++writes === 2) sim.setFaults({ silent: true });
      return answer;
    };
    const first = await service().topUp(allowance('a-2'));
    expect(first.entry).toMatchObject({ state: 'verifying', error: { code: 'UNSETTLED' } });
    expect(free()).toEqual([23, 11]);

    // 2.5 kWh used meanwhile, free energy first; then the meter answers again and a new process settles the entry.
    m().consume(2.5);
    sim.setFaults({ silent: false });
    store.close();
    store = openStore({ path, clock: systemClock });
    const settled = await service().settleOpen();

    expect(settled.map((e) => [e.requestId, e.state])).toEqual([['a-2', 'applied']]);
    expect(free()).toEqual([20.5, 11]);
    expect(m().writes()).toHaveLength(2);
    expect(settled[0]!.request.subsidy).toMatchObject({
      registers: [
        { before: 300, target: 2300, after: 2050 },
        { before: 100, target: 1100, after: 1100 },
      ],
    });
  });

  it('a write that never landed is written again from the value now, committed first; one grant in all', async () => {
    // The first request to the lighting register is lost on the way (the meter never sees it).
    const realWrite = m().writeRegisters.bind(m());
    let dropped = false;
    m().writeRegisters = (start, words) => {
      if (start === LIGHTING && !dropped) {
        dropped = true;
        sim.setFaults({ silent: true });
        setTimeout(() => sim.setFaults({ silent: false }), 150);
        return { ok: true, value: 'written' };
      }
      return realWrite(start, words);
    };
    const { entry } = await service().topUp(allowance('a-3'));

    expect(entry.state).toBe('applied');
    expect(entry.attempts).toBe(2);
    expect(free()).toEqual([23, 11]);
    expect(
      m()
        .writes()
        .map((w) => [w.start, w.words]),
    ).toEqual([
      [AC, [0, 2300]],
      [LIGHTING, [0, 1100]],
    ]);
  });
});
