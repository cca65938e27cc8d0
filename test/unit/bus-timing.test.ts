import { describe, expect, it } from 'vitest';
import { byteTimeMs, responseTimeoutMs } from '../../src/bus/timing.js';
import type { LineSettings } from '../../src/bus/types.js';

const dlt645: LineSettings = { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 };

describe('byteTimeMs', () => {
  it('counts start, data, parity and stop bits: 2400 8E1 is 11 bits, 4.583 ms a byte', () => {
    expect(byteTimeMs(dlt645)).toBeCloseTo(11_000 / 2400, 9);
  });

  it('drops the parity bit for no parity and adds the second stop bit', () => {
    expect(byteTimeMs({ baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 })).toBeCloseTo(10_000 / 9600, 9);
    expect(byteTimeMs({ baudRate: 1200, dataBits: 7, parity: 'odd', stopBits: 2 })).toBeCloseTo(11_000 / 1200, 9);
    expect(byteTimeMs({ baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 2 })).toBeCloseTo(11_000 / 9600, 9);
  });

  it('refuses a baud rate that is not a positive number', () => {
    expect(() => byteTimeMs({ ...dlt645, baudRate: 0 })).toThrow(/baudRate/);
    expect(() => byteTimeMs({ ...dlt645, baudRate: Number.NaN })).toThrow(/baudRate/);
  });
});

describe('responseTimeoutMs', () => {
  it('gives a DL/T 645 read with a 200-byte reply at 2400 8E1 990 ms on the line + 500 ms turnaround + 100 ms margin', () => {
    expect(responseTimeoutMs({ settings: dlt645, requestBytes: 16, expectedReplyBytes: 200 })).toBe(1590);
  });

  it('uses the turnaround and margin it is given', () => {
    // 20 + 20 bytes at 9600 8N1 = 41.67 ms on the line, rounded up to 42
    const fast: LineSettings = { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 };
    expect(responseTimeoutMs({ settings: fast, requestBytes: 20, expectedReplyBytes: 20, turnaroundMs: 50, adapterMarginMs: 0 })).toBe(92);
  });

  it('grows with the reply length and shrinks with the baud rate', () => {
    const short = responseTimeoutMs({ settings: dlt645, requestBytes: 16, expectedReplyBytes: 20 });
    const long = responseTimeoutMs({ settings: dlt645, requestBytes: 16, expectedReplyBytes: 200 });
    const faster = responseTimeoutMs({ settings: { ...dlt645, baudRate: 9600 }, requestBytes: 16, expectedReplyBytes: 200 });
    expect(short).toBeLessThan(long);
    expect(faster).toBeLessThan(long);
  });

  it('refuses byte counts and delays that make no sense, naming the input', () => {
    expect(() => responseTimeoutMs({ settings: dlt645, requestBytes: -1, expectedReplyBytes: 10 })).toThrow(/requestBytes/);
    expect(() => responseTimeoutMs({ settings: dlt645, requestBytes: 10, expectedReplyBytes: 1.5 })).toThrow(/expectedReplyBytes/);
    expect(() => responseTimeoutMs({ settings: dlt645, requestBytes: 10, expectedReplyBytes: 10, turnaroundMs: -5 })).toThrow(
      /turnaroundMs/,
    );
  });
});
