import type { Address } from '../../../protocols/dlt645/index.js';
import { systemClock, type Clock } from '../../clock.js';
import { silentLogger, type Logger } from '../../log.js';
import { SimulatedBus, type BusFaults } from './bus.js';
import { SimulatedMeter } from './meter.js';
import type { SecurityModule } from './security.js';
import type { SimulatorSpec } from './spec.js';

export { SimulatedBus, type AttachedTransport, type BusFaults, type BusStats, type SimulatedBusOptions } from './bus.js';
export { SimulatedMeter, type MeterSnapshot, type SimulatedMeterOptions } from './meter.js';
export type { MeteringFaults } from './energy.js';
export { PlainSecurity, type CreditLoad, type SecurityModule } from './security.js';
export {
  checkMeterSpec,
  defaultMeters,
  loadSimulatorSpec,
  parseSimulatorSpec,
  type MeterKind,
  type MeterSpec,
  type SimulatorSpec,
  type SpecError,
} from './spec.js';

export interface Dlt645SimulatorOptions {
  /** Serial device to serve, normally one end of a pty pair (the gateway opens the other). */
  readonly port?: string;
  /** TCP port to listen on (0 = any free port); every connection is its own line. */
  readonly tcpPort?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly spec: SimulatorSpec;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Faults for the whole bus from the start (e.g. a reply delay, noise). */
  readonly faults?: BusFaults;
  readonly security?: SecurityModule;
  /** Hold replies as long as a real line at 2400 baud would, plus the meter's turnaround (benchmarks). */
  readonly emulateLine?: { readonly turnaroundMs: number; readonly bitsPerByte?: number };
  /**
   * Host time the meters were switched on; default now. An earlier time gives them the history of a meter that has
   * been running: registers grown at their load and a daily freeze at every midnight since (62 kept).
   */
  readonly switchedOnAt?: number;
}

export interface Dlt645Simulator {
  readonly bus: SimulatedBus;
  /** By the address each meter started with. */
  readonly meters: Map<Address, SimulatedMeter>;
  /** The TCP port actually bound, when serving TCP. */
  readonly address?: { readonly tcpPort: number };
  close(): Promise<void>;
}

/**
 * Start the meters of `spec` on a pty path, a TCP port, or both.
 *
 * @example
 * const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(3) } });
 * // ... point the gateway at 127.0.0.1:sim.address.tcpPort ...
 * await sim.close();
 */
export async function startDlt645Simulator(options: Dlt645SimulatorOptions): Promise<Dlt645Simulator> {
  if (options.port === undefined && options.tcpPort === undefined) throw new TypeError('give a pty path (port) or a tcpPort to serve');
  if (options.tcpPort !== undefined && (!Number.isInteger(options.tcpPort) || options.tcpPort < 0 || options.tcpPort > 65535)) {
    throw new TypeError('tcpPort is not a port number from 0 to 65535');
  }
  const logger = options.logger ?? silentLogger;
  const clock = options.clock;
  const startMs = options.switchedOnAt ?? (clock ?? systemClock).now();
  const meters = new Map<Address, SimulatedMeter>();
  for (const spec of options.spec.meters) {
    const meter = new SimulatedMeter(spec, { startMs, ...(options.security ? { security: options.security } : {}) });
    meters.set(meter.address, meter);
  }
  const bus = new SimulatedBus(meters.values(), {
    logger,
    ...(clock ? { clock } : {}),
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.emulateLine ? { emulateLine: options.emulateLine } : {}),
  });
  try {
    let tcpPort: number | undefined;
    if (options.port !== undefined) await bus.attach(options.port);
    if (options.tcpPort !== undefined) {
      const attached = await bus.attach(options.tcpPort, options.host !== undefined ? { host: options.host } : {});
      if (attached.kind === 'tcp') tcpPort = attached.port;
    }
    return { bus, meters, ...(tcpPort !== undefined ? { address: { tcpPort } } : {}), close: () => bus.close() };
  } catch (err) {
    await bus.close();
    throw err;
  }
}
