import type { LineSettings } from './types.js';

/**
 * Milliseconds one character occupies on the line: start bit + data bits + parity bit + stop bits.
 *
 * @example
 * byteTimeMs({ baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 }); // 11 bits → 4.583 ms
 */
export function byteTimeMs(settings: LineSettings): number {
  if (!Number.isFinite(settings.baudRate) || settings.baudRate <= 0)
    throw new RangeError(`baudRate is not a positive number: ${settings.baudRate}`);
  const bits = 1 + settings.dataBits + (settings.parity === 'none' ? 0 : 1) + settings.stopBits;
  return (bits * 1000) / settings.baudRate;
}

export interface ResponseTimeoutInput {
  settings: LineSettings;
  requestBytes: number;
  expectedReplyBytes: number;
  /** Time the meter may take to start answering; DL/T 645 meters answer within 20–500 ms. */
  turnaroundMs?: number;
  /** USB adapters and serial-over-Ethernet converters buffer bytes; this covers their latency. */
  adapterMarginMs?: number;
}

/**
 * A reply deadline for one attempt, measured from the moment the request is written: the time to send the request,
 * the meter's turnaround, the time to receive the whole expected reply, and a margin for the adapter. Whole ms.
 *
 * @example
 * // a DL/T 645 read (16 bytes) with a 200-byte reply at 2400 8E1: 990 ms on the line + 500 + 100
 * responseTimeoutMs({ settings: { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 }, requestBytes: 16, expectedReplyBytes: 200 }); // 1590
 */
export function responseTimeoutMs(input: ResponseTimeoutInput): number {
  const { settings, requestBytes, expectedReplyBytes, turnaroundMs = 500, adapterMarginMs = 100 } = input;
  checkCount('requestBytes', requestBytes);
  checkCount('expectedReplyBytes', expectedReplyBytes);
  checkMs('turnaroundMs', turnaroundMs);
  checkMs('adapterMarginMs', adapterMarginMs);
  const lineMs = byteTimeMs(settings) * (requestBytes + expectedReplyBytes);
  // Round the line time alone: 216 bytes at 2400 8E1 is 990.0000000000001 ms in floating point, not 991.
  return Math.ceil(round6(lineMs)) + Math.ceil(turnaroundMs) + Math.ceil(adapterMarginMs);
}

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

function checkCount(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} is not a whole number of bytes ≥ 0: ${n}`);
}

function checkMs(name: string, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`${name} is not a number of milliseconds ≥ 0: ${ms}`);
}
