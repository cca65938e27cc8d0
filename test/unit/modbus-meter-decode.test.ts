/**
 * decodePoint: one Modbus point's words → the value stored and published. Pure; the words are what meters send.
 */
import { describe, expect, it } from 'vitest';
import { decodePoint } from '../../src/devices/modbus-meter.js';
import type { ModbusPoint } from '../../src/profiles/types.js';

function point(p: Partial<ModbusPoint>): ModbusPoint {
  return { kind: 'modbus', name: 'x', table: 'holding', address: 0, type: 'uint16', order: 'ABCD', scale: 1, offset: 0, unit: '', ...p };
}

describe('decodePoint', () => {
  it('float32 raw 2314 with scale 0.1 is exactly 231.4 V (DTSU666)', () => {
    expect(decodePoint(point({ type: 'float32', scale: 0.1, unit: 'V' }), [0x4510, 0xa000])).toEqual({
      value: { v: 231.4, unit: 'V' },
      raw: 2314,
    });
  });

  it('float32 230.2 unscaled reads as 230.2, not 230.1999969482422 (DDSU666)', () => {
    expect(decodePoint(point({ type: 'float32', unit: 'V' }), [0x4366, 0x3333]).value).toEqual({ v: 230.2, unit: 'V' });
  });

  it('a watt reading scaled to kW keeps its decimals exactly: 1131.6 W × 0.001 is 1.1316 kW', () => {
    expect(decodePoint(point({ type: 'float32', scale: 0.001, unit: 'kW' }), [0x448d, 0x7333]).value).toEqual({ v: 1.1316, unit: 'kW' });
  });

  it('a float32 NaN (the meter has no value) is NOT_A_NUMBER, never a number', () => {
    expect(decodePoint(point({ name: 'thd.voltage', type: 'float32', unit: '%' }), [0x7fc0, 0x0000]).value).toMatchObject({
      error: 'NOT_A_NUMBER',
      message: expect.stringMatching(/^thd\.voltage: /),
    });
    expect(decodePoint(point({ type: 'float32', unit: '%' }), [0x7f80, 0x0000]).value).toMatchObject({ error: 'NOT_A_NUMBER' });
  });

  it('int32 with the low word first (CDAB) and scale 0.01: [0xB43F, 0x0096] is 98765.43 kWh', () => {
    expect(decodePoint(point({ type: 'int32', order: 'CDAB', scale: 0.01, unit: 'kWh' }), [0xb43f, 0x0096]).value).toEqual({
      v: 98765.43,
      unit: 'kWh',
    });
  });

  it('int16 is signed: 0xFCAE × 0.001 is −0.85 kW (exporting)', () => {
    expect(decodePoint(point({ type: 'int16', scale: 0.001, unit: 'kW' }), [0xfcae]).value).toEqual({ v: -0.85, unit: 'kW' });
  });

  it('uint16 with scale and offset: 498 × 0.01 + 45 is 49.98 Hz', () => {
    expect(decodePoint(point({ type: 'uint16', scale: 0.01, offset: 45, unit: 'Hz' }), [498]).value).toEqual({ v: 49.98, unit: 'Hz' });
  });

  it('a uint64 counter beyond 2^53 is UNSAFE_INTEGER instead of a silently rounded number', () => {
    expect(decodePoint(point({ type: 'uint64', unit: 'kWh' }), [0x0020, 0x0000, 0x0000, 0x0001]).value).toMatchObject({
      error: 'UNSAFE_INTEGER',
    });
    expect(decodePoint(point({ type: 'uint64', scale: 0.01, unit: 'kWh' }), [0, 0, 0x0001, 0x0000])).toEqual({
      value: { v: 655.36, unit: 'kWh' },
      raw: 65536n,
    });
  });

  it('a coil or discrete input is 0 or 1', () => {
    expect(decodePoint(point({ table: 'discrete', type: 'bool' }), [true]).value).toEqual({ v: 1, unit: '' });
    expect(decodePoint(point({ table: 'coil', type: 'bool' }), [false]).value).toEqual({ v: 0, unit: '' });
  });

  it('the wrong number of words is a typed error naming the point', () => {
    expect(decodePoint(point({ name: 'voltage.a', type: 'float32' }), [0x4366]).value).toMatchObject({
      error: 'WRONG_WORD_COUNT',
      message: expect.stringMatching(/^voltage\.a: /),
    });
  });
});
