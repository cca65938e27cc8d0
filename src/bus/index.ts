import type { Logger } from '../log.js';
import { FrameBus } from './frame-bus.js';
import { SerialTransport } from './serial-transport.js';
import { TcpTransport } from './tcp-transport.js';
import { parsePortSpec } from './transport.js';
import type { LineSettings, StreamDecoder } from './types.js';

export { BusArbiter, type ArbiterStats, type BusArbiterOptions, type RunOptions } from './arbiter.js';
export { realTimers, type Timers } from '../clock.js';
export { BusError, isBusError, type BusErrorCode } from './errors.js';
export {
  FrameBus,
  type BusState,
  type BusStateChange,
  type BusStateEvent,
  type FrameBusOptions,
  type FrameBusStats,
  type FrameRequest,
  type FrameTx,
} from './frame-bus.js';
export { SerialTransport, type SerialTransportOptions } from './serial-transport.js';
export { TcpTransport, type TcpTransportOptions } from './tcp-transport.js';
export { byteTimeMs, responseTimeoutMs, type ResponseTimeoutInput } from './timing.js';
export { parsePortSpec, type ByteTransport, type PortSpec } from './transport.js';
export { describeLine, PRIORITIES, type DecodeEvent, type LineSettings, type Priority, type StreamDecoder } from './types.js';

export interface OpenBusOptions<F> {
  id: string;
  /** `/dev/ttyUSB0`, `/dev/serial/by-id/…` or `tcp://host:port`. */
  port: string;
  /** The meters' line settings; for a TCP converter they set the timing only (the converter owns the line). */
  line: LineSettings;
  decoder: StreamDecoder<F>;
  logger?: Logger;
  gapMs?: number;
  maxQueuedPolls?: number;
  /**
   * false (default): reject with PORT_OPEN_FAILED if the port cannot be opened now (commands run by hand).
   * true: return at once with the bus down, and keep opening it in the background (the daemon).
   */
  waitForPort?: boolean;
}

/**
 * Opens the bus a port spec names, over a local serial port or a serial-over-Ethernet converter.
 *
 * @example
 * const bus = await openBus({ id: 'bus1', port: '/dev/ttyUSB0', line: { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 }, decoder: new Dlt645Decoder(), logger });
 */
export async function openBus<F>(opts: OpenBusOptions<F>): Promise<FrameBus<F>> {
  const spec = parsePortSpec(opts.port);
  const transport =
    spec.kind === 'serial'
      ? new SerialTransport({ path: spec.path, line: opts.line })
      : new TcpTransport({ host: spec.host, port: spec.port });
  const bus = new FrameBus<F>({
    id: opts.id,
    transport,
    decoder: opts.decoder,
    logger: opts.logger,
    gapMs: opts.gapMs,
    maxQueuedPolls: opts.maxQueuedPolls,
  });
  if (opts.waitForPort) bus.start();
  else await bus.open();
  return bus;
}
