import { Option, type Command } from 'commander';
import { parseAddress, type Address } from '../../protocols/dlt645/index.js';
import { usageError } from './errors.js';

/** Line options every bus command shares, as typed values. */
export interface BusCliOptions {
  port: string;
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
  timeoutMs?: number;
  retries: number;
}

/** The line options; `--port` is checked by parseBusOptions, so a command may also take a configured meter instead. */
export function addBusOptions(
  cmd: Command,
  portHelp = 'serial port (/dev/ttyUSB0) or tcp://host:port for a serial-over-Ethernet converter',
): Command {
  return cmd
    .option('--port <path>', portHelp)
    .option('--baud <rate>', 'baud rate', '2400')
    .addOption(new Option('--parity <parity>', 'parity').choices(['even', 'none', 'odd']).default('even'))
    .addOption(new Option('--data-bits <n>', 'data bits').choices(['7', '8']).default('8'))
    .addOption(new Option('--stop-bits <n>', 'stop bits').choices(['1', '2']).default('1'))
    .option('--timeout <ms>', 'reply deadline per attempt in ms (default: from the baud rate)')
    .option('--retries <n>', 'retries after a timeout, for reads only', '2');
}

export function parseBusOptions(o: Record<string, unknown>): BusCliOptions {
  if (typeof o.port !== 'string' || o.port === '')
    throw usageError('give --port PATH (/dev/ttyUSB0 or tcp://host:port), or -c FILE --meter ID for a configured meter');
  const baudRate = positiveInt(o.baud, '--baud');
  const retries = nonNegativeInt(o.retries, '--retries');
  return {
    port: String(o.port),
    baudRate,
    parity: o.parity as BusCliOptions['parity'],
    dataBits: Number(o.dataBits) as 7 | 8,
    stopBits: Number(o.stopBits) as 1 | 2,
    timeoutMs: o.timeout === undefined ? undefined : positiveInt(o.timeout, '--timeout'),
    retries,
  };
}

export function addressOption(text: unknown, flag = '--addr'): Address {
  const r = parseAddress(String(text));
  if (!r.ok) throw usageError(`${flag}: ${r.error.message}`);
  return r.value;
}

export function positiveInt(v: unknown, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw usageError(`${flag} must be a positive whole number, not "${String(v)}"`);
  return n;
}

function nonNegativeInt(v: unknown, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw usageError(`${flag} must be 0 or a positive whole number, not "${String(v)}"`);
  return n;
}
