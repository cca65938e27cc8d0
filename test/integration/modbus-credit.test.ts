/**
 * The dormitory prepaid meter's credit and relay rules, through ModbusLink and ModbusMeter over Modbus TCP: a load
 * writes purchase count and amount in one FC16 request and is applied only when the count is the meter's + 1; the
 * same count again adds nothing; any other count is ILLEGAL_DATA_VALUE. The relay coil shows in relay.state.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeValue, removeScale } from '../../protocols/modbus/index.js';
import { ModbusError, ModbusLink } from '../../src/bus/modbus-link.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { DeviceProfile } from '../../src/profiles/types.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';

const dorm = loadProfiles().get('modbus-dorm-prepaid')!;

/** The FC16 payload for a load, laid out by the profile's credit registers (purchase count, then amount in 0.01 kWh). */
function creditWrite(profile: DeviceProfile, purchaseCount: number, amount: number): { start: number; words: number[] } {
  if (profile.credit?.method !== 'modbus-write') throw new Error(`${profile.id} does not load credit by a register write`);
  const registers = [...profile.credit.registers].sort((a, b) => a.address - b.address);
  const start = registers[0]!.address;
  const words: number[] = [];
  for (const r of registers) {
    const value = r.field === 'purchaseCount' ? purchaseCount : amount;
    const raw = removeScale(value, { scale: r.scale });
    if (!raw.ok) throw new Error(raw.error.message);
    const encoded = encodeValue(raw.value, r.type, r.order);
    if (!encoded.ok) throw new Error(encoded.error.message);
    words.splice(r.address - start, encoded.value.length, ...encoded.value);
  }
  return { start, words };
}

let sim: ModbusSimulator;
let link: ModbusLink;
let meter: ModbusMeter;

beforeEach(async () => {
  sim = await startModbusSimulator({ profile: dorm, tcpPort: 0, values: { 'credit.purchase.count': 7, 'credit.balance.energy': 87.65 } });
  link = new ModbusLink({ id: 'dorm-bus', port: `tcp://127.0.0.1:${sim.port}`, protocol: 'modbus-tcp', line: dorm.line, gapMs: 0 });
  await link.open();
  meter = new ModbusMeter({ link, unit: 1, profile: dorm, meterId: 'room-312' });
});

afterEach(async () => {
  await link.close();
  await sim.close();
});

async function wallet(): Promise<unknown> {
  const read = await meter.read(['credit.purchase.count', 'credit.balance.energy'], { priority: 'credit' });
  return Object.fromEntries(read);
}

async function failureOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure, got a result');
}

describe('modbus-dorm-prepaid credit registers', () => {
  it('the layout on the wire: count 8 and 12.5 kWh are [8, 0, 1250] at 0x0200', () => {
    expect(creditWrite(dorm, 8, 12.5)).toEqual({ start: 0x0200, words: [8, 0, 1250] });
  });

  it('a load with the meter count + 1 is applied: the balance grows by the amount and the count by one', async () => {
    const load = creditWrite(dorm, 8, 12.5);

    await meter.writeRegisters('credit', load.start, load.words);

    expect(await wallet()).toEqual({ 'credit.purchase.count': { v: 8, unit: '' }, 'credit.balance.energy': { v: 100.15, unit: 'kWh' } });
    expect(sim.stats().credits).toEqual({ applied: 1, repeat: 0, refused: 0 });
  });

  it('the same load again (a repeat after a lost reply) is answered normally but adds nothing', async () => {
    const load = creditWrite(dorm, 8, 12.5);
    await meter.writeRegisters('credit', load.start, load.words);

    await meter.writeRegisters('credit', load.start, load.words);

    expect(await wallet()).toEqual({ 'credit.purchase.count': { v: 8, unit: '' }, 'credit.balance.energy': { v: 100.15, unit: 'kWh' } });
    expect(sim.stats().credits).toEqual({ applied: 1, repeat: 1, refused: 0 });
  });

  it('a load whose count skips ahead is refused with ILLEGAL_DATA_VALUE and changes nothing', async () => {
    const load = creditWrite(dorm, 10, 12.5);

    const err = await failureOf(meter.writeRegisters('credit', load.start, load.words));

    expect(err).toBeInstanceOf(ModbusError);
    expect(err).toMatchObject({ code: 'MODBUS_EXCEPTION', exception: 'ILLEGAL_DATA_VALUE', exceptionCode: 3, functionCode: 16 });
    expect(await wallet()).toEqual({ 'credit.purchase.count': { v: 7, unit: '' }, 'credit.balance.energy': { v: 87.65, unit: 'kWh' } });
  });

  it('the credit service pattern: in one session read the count, write count + 1, read the wallet back', async () => {
    const after = await link.session('credit', async (tx) => {
      const [count] = await tx.readRegisters(1, 'holding', 0x0102, 1);
      const load = creditWrite(dorm, count! + 1, 5);
      await tx.writeRegisters(1, load.start, load.words);
      return tx.readRegisters(1, 'holding', 0x0100, 3);
    });

    expect(after).toEqual([0, 9265, 8]);
  });

  it('neither half of a load on its own, nor a direct write to the wallet, gets past the meter', async () => {
    await expect(meter.writeRegisters('credit', 0x0200, [8])).rejects.toMatchObject({ exception: 'ILLEGAL_DATA_VALUE' });
    await expect(meter.writeRegisters('credit', 0x0201, [0, 1250])).rejects.toMatchObject({ exception: 'ILLEGAL_DATA_VALUE' });
    await expect(meter.writeRegisters('operator', 0x0100, [0x0001, 0x86a0])).rejects.toMatchObject({ exception: 'ILLEGAL_DATA_ADDRESS' });
    expect(await wallet()).toEqual({ 'credit.purchase.count': { v: 7, unit: '' }, 'credit.balance.energy': { v: 87.65, unit: 'kWh' } });
  });
});

describe('modbus-dorm-prepaid relay coil', () => {
  it('writing the relay coil with the open value opens the relay: relay.state 1, status.word1 bit 0; and back', async () => {
    if (dorm.relay?.method !== 'modbus-coil') throw new Error('the dorm profile switches its relay by a coil');
    const relay = dorm.relay;

    await meter.writeCoil('operator', relay.address, relay.openValue);
    expect(Object.fromEntries(await meter.read(['relay.state', 'status.word1'], { priority: 'operator' }))).toEqual({
      'relay.state': { v: 1, unit: '' },
      'status.word1': { v: 1, unit: '' },
    });
    expect(await link.readBits('operator', 1, 'coil', relay.address, 1)).toEqual([relay.openValue]);

    await meter.writeCoil('operator', relay.address, !relay.openValue);
    expect((await meter.read(['relay.state'], { priority: 'operator' })).get('relay.state')).toEqual({ v: 0, unit: '' });
    expect(sim.getValue('relay.state')).toBe(0);
  });
});
