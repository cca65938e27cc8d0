import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, responseTimeoutMs, type FrameBus } from '../bus/index.js';
import type { ModbusLink } from '../bus/modbus-link.js';
import type { BusConfig, GatewayConfig, MeterConfig } from '../config/index.js';
import { dlt645CreditPort, modbusCreditPort, type CreditPort } from '../devices/credit-port.js';
import { Dlt645Meter } from '../devices/dlt645-meter.js';
import { dlt645EsamCreditPort } from '../devices/esam-credit-port.js';
import { pointReaderOf } from '../devices/dlt645-points.js';
import { dlt645RelayPort, modbusRelayPort, type RelayPort } from '../devices/relay-port.js';
import { ModbusMeter } from '../devices/modbus-meter.js';
import { modbusSubsidyPort, type SubsidyPort } from '../devices/subsidy-port.js';
import type { Clock, Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import type { EncryptionMachine } from '../devices/encryption-machine.js';
import type { MeterReader } from '../services/poller.js';

/** A DL/T 645 bus (frames through FrameBus) or a Modbus bus (modbus-serial through ModbusLink); both arbitrate the same way. */
export type OpenedBus =
  | { readonly config: BusConfig; readonly kind: 'dlt645'; readonly bus: FrameBus<Frame> }
  | { readonly config: BusConfig; readonly kind: 'modbus'; readonly bus: ModbusLink };

/** Open a configured bus. The daemon passes waitForPort so a missing adapter is picked up later; a command fails at once. */
export async function openConfiguredBus(b: BusConfig, opts: { logger?: Logger; waitForPort: boolean }): Promise<OpenedBus> {
  const common = {
    id: b.id,
    port: b.port,
    line: b.line,
    logger: opts.logger ?? silentLogger,
    gapMs: b.gapMs,
    maxQueuedPolls: b.maxQueuedPolls,
    waitForPort: opts.waitForPort,
  };
  if (b.protocol === 'dlt645') return { config: b, kind: 'dlt645', bus: await openBus<Frame>({ ...common, decoder: new Dlt645Decoder() }) };
  // modbus-serial is loaded only by a gateway that has a Modbus bus (issue 18: load only what `run` uses).
  const { openModbusLink } = await import('../bus/modbus-link.js');
  return { config: b, kind: 'modbus', bus: await openModbusLink({ ...common, protocol: b.protocol, readRetries: b.retries }) };
}

export interface MeterDrivers {
  readonly reader: MeterReader;
  /** Present when the meter's profile has a credit method this gateway drives. */
  readonly credit?: CreditPort;
  /** Present when the meter's profile names free-energy registers (modbus-subsidy): allowances load there. */
  readonly subsidy?: SubsidyPort;
  /** Present when the meter's profile has relay control. */
  readonly relay?: RelayPort;
  /** The DL/T 645 driver, for commands beyond reads (time). */
  readonly dlt645?: Dlt645Meter;
}

/** What ESAM meters (credit method dlt645-esam) need: the station's encryption machine. Without it they take no credit. */
export interface EsamDrivers {
  readonly machine?: EncryptionMachine;
  /** How long one encryption-machine answer may take (default 60 s, inside the meter's 5-minute window). */
  readonly hsmTimeoutMs?: number;
}

/** Time as the gateway sees it: wall time for meter clocks and command validity, timers for deadlines. */
export interface DriverTime {
  readonly clock?: Clock;
  readonly timers?: Timers;
}

/** Build one meter's drivers from its config and profile: the same objects for the daemon and for technician commands. */
export function meterDrivers(
  m: MeterConfig,
  opened: OpenedBus,
  config: Pick<GatewayConfig, 'credentials'>,
  logger: Logger = silentLogger,
  esam: EsamDrivers = {},
  time: DriverTime = {},
): MeterDrivers {
  const b = opened.config;
  const log = busLogger(logger, b.id);
  const method = m.profile.credit?.method;
  if (opened.kind === 'modbus') {
    const meter = new ModbusMeter({
      link: opened.bus,
      unit: m.unit!,
      profile: m.profile,
      meterId: m.id,
      timeoutMs: b.timeoutMs,
      readRetries: b.retries,
      logger: log,
    });
    return {
      reader: meter,
      credit: method === 'modbus-write' ? modbusCreditPort(meter, m.profile) : undefined,
      subsidy: m.profile.subsidy?.method === 'modbus-subsidy' ? modbusSubsidyPort(meter, m.profile) : undefined,
      relay: m.profile.relay?.method === 'modbus-coil' ? modbusRelayPort(meter, m.profile) : undefined,
    };
  }
  const timeoutMs = b.timeoutMs ?? responseTimeoutMs({ settings: b.line, requestBytes: 24, expectedReplyBytes: 64 });
  const meter = new Dlt645Meter({
    link: opened.bus,
    address: m.address!,
    edition: m.profile.protocol === 'dlt645-1997' ? '1997' : '2007',
    timeoutMs,
    readRetries: b.retries,
    logger: log,
    ...(time.clock ? { clock: time.clock } : {}),
  });
  const reader = pointReaderOf(meter, m.profile);
  const credit =
    method === 'dlt645-plain' || method === 'dlt645-write'
      ? dlt645CreditPort(meter, m.profile, config.credentials.dlt645)
      : method === 'dlt645-esam' && esam.machine
        ? dlt645EsamCreditPort(meter, m.profile, config.credentials.dlt645, esam.machine, {
            hsmTimeoutMs: esam.hsmTimeoutMs,
            ...(time.timers ? { timers: time.timers } : {}),
          })
        : undefined;
  const relay =
    m.profile.relay?.method === 'dlt645-remote-control'
      ? dlt645RelayPort(meter, m.profile, config.credentials.dlt645, time.clock)
      : undefined;
  return { reader, credit, relay, dlt645: meter };
}

// One child logger per bus, not per meter: a pino child holds its bindings and a copy of its parent's state, and a
// gateway of 2,000 meters needs 20 of them, not 2,000.
const busLoggers = new WeakMap<Logger, Map<string, Logger>>();
function busLogger(logger: Logger, busId: string): Logger {
  const children = busLoggers.get(logger) ?? new Map<string, Logger>();
  busLoggers.set(logger, children);
  const known = children.get(busId);
  if (known) return known;
  const child = logger.child({ bus: busId });
  children.set(busId, child);
  return child;
}
