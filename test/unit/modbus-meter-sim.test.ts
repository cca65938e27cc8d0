/**
 * The simulated Modbus meter's register image and rules, without a wire: what it serves, what it refuses, and the
 * credit rules of a prepaid profile. The same object answers the TCP and RTU servers in the integration tests.
 */
import { describe, expect, it } from 'vitest';
import { loadProfiles } from '../../src/profiles/registry.js';
import {
  defaultValue,
  ILLEGAL_DATA_ADDRESS,
  ILLEGAL_DATA_VALUE,
  ILLEGAL_FUNCTION,
  SimulatedModbusMeter,
} from '../../src/sim/modbus/index.js';

const profiles = loadProfiles();
const sdm120 = profiles.get('eastron-sdm120')!;
const dtsu666 = profiles.get('chint-dtsu666')!;
const dorm = profiles.get('modbus-dorm-prepaid')!;

describe('SimulatedModbusMeter: the registers a profile declares', () => {
  it('serves each declared point and refuses any other register with ILLEGAL_DATA_ADDRESS', () => {
    const meter = new SimulatedModbusMeter(sdm120, { values: { 'voltage.a': 231.4 } });

    expect(meter.readRegisters('input', 0x0000, 2)).toEqual({ ok: true, value: [0x4367, 0x6666] });
    expect(meter.readRegisters('input', 0x0002, 2)).toMatchObject({
      ok: false,
      exception: ILLEGAL_DATA_ADDRESS,
      reason: 'input register 0x0002 is not mapped',
    });
    expect(meter.readRegisters('input', 0x0000, 4)).toMatchObject({ ok: false, exception: ILLEGAL_DATA_ADDRESS });
    expect(meter.readRegisters('holding', 0x0000, 2)).toMatchObject({ ok: false, exception: ILLEGAL_DATA_ADDRESS });
  });

  it('bridges gaps of at most the profile maxGap (they read 0), no wider', () => {
    // modbus-dorm-prepaid: maxGap 4; 0x000F lies between power.active and power.factor, 0x0002–0x0007 is a gap of 6.
    const meter = new SimulatedModbusMeter(dorm);

    expect(meter.readRegisters('holding', 0x000c, 6)).toMatchObject({ ok: true });
    expect(meter.readRegisters('holding', 0x000f, 1)).toEqual({ ok: true, value: [0] });
    expect(meter.readRegisters('holding', 0x0002, 1)).toMatchObject({ ok: false, exception: ILLEGAL_DATA_ADDRESS });
  });

  it('stores values with the profile scale: DTSU666 231.4 V is raw 2314 in a float32', () => {
    const meter = new SimulatedModbusMeter(dtsu666, { values: { 'voltage.a': 231.4 } });

    expect(meter.readRegisters('holding', 0x2006, 2)).toEqual({ ok: true, value: [0x4510, 0xa000] });
    expect(meter.getValue('voltage.a')).toBe(231.4);
  });

  it('refuses a value its registers cannot hold, saying why', () => {
    const meter = new SimulatedModbusMeter(dorm);

    expect(() => meter.setValue('voltage.a', 231.45)).toThrow(
      'cannot set voltage.a to 231.45: 231.45 is not a whole number of 0.1 steps; the nearest writable values are 231.4 and 231.5',
    );
    expect(() => meter.setValue('credit.purchase.count', -1)).toThrow(/does not fit a uint16/);
    expect(() => new SimulatedModbusMeter(sdm120, { values: { 'energy.active.import': 12345.6789 } })).toThrow(
      'cannot set energy.active.import to 12345.6789: 12345.6789 is not exact in a float32 (it would read back as 12345.679)',
    );
    expect(() => meter.setValue('voltage.b', 230)).toThrow('profile modbus-dorm-prepaid has no point "voltage.b"');
  });

  it('takes register writes as FC16 only, like several cheap meters (FC06 is ILLEGAL_FUNCTION)', () => {
    const meter = new SimulatedModbusMeter(dtsu666);

    expect(meter.writeRegister(0x0006)).toMatchObject({ ok: false, exception: ILLEGAL_FUNCTION });
    expect(meter.writeRegisters(0x0006, [40])).toEqual({ ok: true, value: 'written' });
    expect(meter.getValue('ct.ratio')).toBe(40);
  });
});

describe('SimulatedModbusMeter: plausible defaults', () => {
  it('a three-phase meter starts near 230 V, 5 A, PF 0.98, 50 Hz, with power = V × I × PF per phase and thousands of kWh', () => {
    const meter = new SimulatedModbusMeter(profiles.get('eastron-sdm630')!);
    const v = meter.snapshot();

    for (const p of ['a', 'b', 'c']) {
      expect(v[`voltage.${p}`]).toBeGreaterThan(225);
      expect(v[`voltage.${p}`]).toBeLessThan(235);
      expect(v[`current.${p}`]).toBeGreaterThan(4);
      expect(v[`current.${p}`]).toBeLessThan(6);
      expect(v[`power.active.${p}`]).toBeCloseTo((v[`voltage.${p}`]! * v[`current.${p}`]! * 0.98) / 1000, 3);
    }
    expect(v['power.active']).toBeCloseTo(v['power.active.a']! + v['power.active.b']! + v['power.active.c']!, 6);
    expect(v['power.factor']).toBe(0.98);
    expect(v.frequency).toBe(50);
    expect(v['energy.active.import']).toBeGreaterThan(1000);
  });

  it('counts and status words start at 0; integer registers hold the default rounded to their step', () => {
    const meter = new SimulatedModbusMeter(dorm);

    expect(meter.getValue('credit.purchase.count')).toBe(0);
    expect(meter.getValue('status.word1')).toBe(0);
    expect(meter.getValue('relay.state')).toBe(0);
    expect(meter.getValue('power.active')).toBe(Math.round(defaultValue('power.active', false) * 1000) / 1000);
  });
});

describe('SimulatedModbusMeter: modbus-write credit and the relay coil (modbus-dorm-prepaid)', () => {
  const load = (count: number, amountHundredths: number): number[] => [
    count,
    Math.floor(amountHundredths / 0x10000),
    amountHundredths % 0x10000,
  ];

  it('applies count + 1, ignores a repeat, refuses any other count and a load that is not whole', () => {
    const meter = new SimulatedModbusMeter(dorm, { values: { 'credit.purchase.count': 7, 'credit.balance.energy': 87.65 } });

    expect(meter.writeRegisters(0x0200, load(8, 1250))).toEqual({ ok: true, value: 'applied' });
    expect(meter.writeRegisters(0x0200, load(8, 1250))).toEqual({ ok: true, value: 'repeat' });
    expect(meter.writeRegisters(0x0200, load(7, 1250))).toMatchObject({
      ok: false,
      exception: ILLEGAL_DATA_VALUE,
      reason: "purchase count 7 is neither the meter's 8 (a repeat) nor 9",
    });
    expect(meter.writeRegisters(0x0200, load(9, 0))).toMatchObject({
      ok: false,
      exception: ILLEGAL_DATA_VALUE,
      reason: 'amount 0 is not positive',
    });
    expect(meter.writeRegisters(0x0201, [0, 1250])).toMatchObject({ ok: false, exception: ILLEGAL_DATA_VALUE });
    expect(meter.getValue('credit.purchase.count')).toBe(8);
    expect(meter.getValue('credit.balance.energy')).toBe(100.15);
    expect(meter.credits).toEqual({ applied: 1, repeat: 1, refused: 2 });
  });

  it('refuses a load that would overflow the balance register, and changes nothing', () => {
    const meter = new SimulatedModbusMeter(dorm, { values: { 'credit.balance.energy': 42949672.9 } });

    expect(meter.writeRegisters(0x0200, load(1, 100))).toMatchObject({ ok: false, exception: ILLEGAL_DATA_VALUE });
    expect(meter.getValue('credit.purchase.count')).toBe(0);
  });

  it('the relay coil opens and closes the relay bit of status.word1, and reads back as the coil state', () => {
    const meter = new SimulatedModbusMeter(dorm, { values: { 'status.word1': 0b100 } });

    expect(meter.writeCoil(0x0000, true)).toEqual({ ok: true, value: undefined });
    expect(meter.getValue('status.word1')).toBe(0b101);
    expect(meter.readBits('coil', 0x0000, 1)).toEqual({ ok: true, value: [true] });
    expect(meter.writeCoil(0x0000, false)).toMatchObject({ ok: true });
    expect(meter.getValue('relay.state')).toBe(0);
    expect(meter.getValue('status.word1')).toBe(0b100);
    expect(meter.writeCoil(0x0001, true)).toMatchObject({ ok: false, exception: ILLEGAL_DATA_ADDRESS });
  });
});
