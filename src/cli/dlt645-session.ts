import { Dlt645Decoder, type Address, type Edition, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, responseTimeoutMs, type FrameBus } from '../bus/index.js';
import { Dlt645Meter } from '../devices/dlt645-meter.js';
import { silentLogger, type Logger } from '../log.js';
import type { BusCliOptions } from './bus-options.js';

/** A bus opened for one technician command, and closed whatever happens. */
export async function withDlt645Bus<T>(
  o: BusCliOptions,
  logger: Logger | undefined,
  fn: (bus: FrameBus<Frame>, timeoutMs: number) => Promise<T>,
): Promise<T> {
  const line = { baudRate: o.baudRate, parity: o.parity, dataBits: o.dataBits, stopBits: o.stopBits };
  const bus = await openBus({ id: 'cli', port: o.port, line, decoder: new Dlt645Decoder(), logger: logger ?? silentLogger });
  try {
    // A generous default: a request of ~20 bytes, a reply of up to ~60, the standard's 500 ms turnaround.
    const timeoutMs = o.timeoutMs ?? responseTimeoutMs({ settings: line, requestBytes: 24, expectedReplyBytes: 64 });
    return await fn(bus, timeoutMs);
  } finally {
    await bus.close();
  }
}

export function meterOn(
  bus: FrameBus<Frame>,
  address: Address,
  timeoutMs: number,
  retries: number,
  edition: Edition = '2007',
  logger?: Logger,
): Dlt645Meter {
  return new Dlt645Meter({ link: bus, address, edition, timeoutMs, readRetries: retries, logger });
}
