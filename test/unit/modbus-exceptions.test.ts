import { describe, expect, it } from 'vitest';
import { classifyModbusError, describeException, EXCEPTIONS } from '../../protocols/modbus/index.js';

describe('Modbus exception codes', () => {
  it('names every code the standard assigns, 01–08 and 0A–0B', () => {
    expect(EXCEPTIONS.map((e) => [e.code, e.name])).toEqual([
      [0x01, 'ILLEGAL_FUNCTION'],
      [0x02, 'ILLEGAL_DATA_ADDRESS'],
      [0x03, 'ILLEGAL_DATA_VALUE'],
      [0x04, 'SERVER_DEVICE_FAILURE'],
      [0x05, 'ACKNOWLEDGE'],
      [0x06, 'SERVER_DEVICE_BUSY'],
      [0x07, 'NEGATIVE_ACKNOWLEDGE'],
      [0x08, 'MEMORY_PARITY_ERROR'],
      [0x0a, 'GATEWAY_PATH_UNAVAILABLE'],
      [0x0b, 'GATEWAY_TARGET_FAILED_TO_RESPOND'],
    ]);
  });

  it('keeps an unassigned code visible instead of guessing a name', () => {
    expect(describeException(0x09)).toEqual({
      code: 9,
      name: 'UNKNOWN_EXCEPTION',
      message: "the meter answered with exception code 9, which the Modbus standard does not assign (see the meter's manual)",
    });
  });

  it('tells a technician to read back, not resend, after ACKNOWLEDGE', () => {
    expect(describeException(5).message).toBe('the meter accepted the request and is still processing it; do not resend, read back later');
  });

  it('classifies anything thrown, including non-errors, without throwing itself', () => {
    expect(classifyModbusError(undefined)).toEqual({ kind: 'transport', code: 'UNKNOWN', message: 'Modbus request failed: undefined' });
    expect(classifyModbusError('boom')).toEqual({ kind: 'transport', code: 'UNKNOWN', message: 'Modbus request failed: boom' });
    expect(classifyModbusError(new Error('something else'))).toEqual({ kind: 'transport', code: 'UNKNOWN', message: 'something else' });
    // A socket that timed out while connecting is a transport problem: no request was sent.
    const connectTimeout = Object.assign(new Error('connect ETIMEDOUT 10.0.0.9:502'), { errno: -110, code: 'ETIMEDOUT' });
    expect(classifyModbusError(connectTimeout)).toEqual({
      kind: 'transport',
      code: 'ETIMEDOUT',
      message: 'connect ETIMEDOUT 10.0.0.9:502',
    });
  });
});
