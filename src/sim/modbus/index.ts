import { createServer, type AddressInfo } from 'node:net';
import { ServerSerial, ServerTCP, type IServiceVector } from 'modbus-serial';
import { silentLogger, type Logger } from '../../log.js';
import type { DeviceProfile } from '../../profiles/types.js';
import { SimulatedModbusMeter, type SimAnswer } from './meter.js';

export { defaultValue } from './defaults.js';
export {
  ILLEGAL_DATA_ADDRESS,
  ILLEGAL_DATA_VALUE,
  ILLEGAL_FUNCTION,
  SimulatedModbusMeter,
  type CreditOutcome,
  type SimAnswer,
  type SimulatedModbusMeterOptions,
} from './meter.js';

/** Faults a test can switch on at any time. */
export interface ModbusSimFaults {
  /** Never answer, as a meter that is off or cut from the line: the client times out. Its state does not change either. */
  readonly silent?: boolean;
  /** Reply delay in ms. 0 (the default) answers at once. */
  readonly delayMs?: number;
}

export interface ModbusSimulatorOptions {
  readonly profile: DeviceProfile;
  /** The unit id (slave address) it answers to; requests to other units get no answer. Default 1. */
  readonly unit?: number;
  /** Serve Modbus TCP on this port; 0 picks a free one (never 502, which modbus-serial would bind for 0). */
  readonly tcpPort?: number;
  /** Serve Modbus RTU on this serial device, normally one end of a pty pair. */
  readonly pty?: string;
  /** TCP listen address. Default 127.0.0.1. */
  readonly host?: string;
  /** Engineering values by point name; the rest start at plausible defaults. */
  readonly values?: Readonly<Record<string, number>>;
  readonly faults?: ModbusSimFaults;
  /** Line speed for the serial device (a pty ignores it, a real adapter does not). Default the profile's. */
  readonly baudRate?: number;
  readonly logger?: Logger;
}

export interface ModbusSimulatorStats {
  /** Requests answered, refused or left unanswered, each counted once (an FC01 for 16 coils is one request). */
  readonly requests: number;
  readonly byFunction: Readonly<Record<string, number>>;
  /** Exception responses sent. */
  readonly exceptions: number;
  /** Requests left unanswered because the simulator was silent. */
  readonly unanswered: number;
  readonly credits: SimulatedModbusMeter['credits'];
}

export interface ModbusSimulator {
  /** The TCP port actually bound, when serving TCP. */
  readonly port?: number;
  readonly unit: number;
  readonly meter: SimulatedModbusMeter;
  setValue(point: string, value: number): void;
  getValue(point: string): number;
  /** Merges into the current faults; a field given as undefined clears it. */
  setFaults(faults: ModbusSimFaults): void;
  stats(): ModbusSimulatorStats;
  /** Stops serving and drops every connection; safe to call twice. */
  close(): Promise<void>;
}

/**
 * A simulated Modbus meter answering for one profile over Modbus TCP (modbus-serial's ServerTCP) and/or Modbus RTU on
 * a serial device (ServerSerial on one end of a pty pair). Unmapped registers are refused with exception 02, so a
 * reader that strays from the profile sees a named exception.
 *
 * ServerSerial recomputes the CRC of what it receives instead of checking it (docs/reference/modbus-maps.md § modbus-serial server quirks): this simulator cannot
 * exercise CRC handling on its side, which the codec tests cover.
 *
 * @example
 * const sim = await startModbusSimulator({ profile: profiles.get('eastron-sdm630')!, tcpPort: 0, values: { 'voltage.a': 231.4 } });
 * // ... ModbusLink on tcp://127.0.0.1:${sim.port} with protocol modbus-tcp ...
 * await sim.close();
 */
export async function startModbusSimulator(options: ModbusSimulatorOptions): Promise<ModbusSimulator> {
  if (options.tcpPort === undefined && options.pty === undefined)
    throw new TypeError('give a tcpPort (0 = any free port) or a pty path to serve');
  if (options.tcpPort !== undefined && (!Number.isInteger(options.tcpPort) || options.tcpPort < 0 || options.tcpPort > 65535)) {
    throw new TypeError(`tcpPort is not a port number from 0 to 65535: ${options.tcpPort}`);
  }
  const unit = options.unit ?? 1;
  if (!Number.isInteger(unit) || unit < 1 || unit > 247) throw new TypeError(`unit is not a Modbus unit id from 1 to 247: ${unit}`);
  const meter = new SimulatedModbusMeter(options.profile, { values: options.values });
  const log = (options.logger ?? silentLogger).child({ component: 'sim-modbus', profile: options.profile.id, unit });
  let faults: ModbusSimFaults = checkFaults(options.faults ?? {});
  const timers = new Set<NodeJS.Timeout>();
  const byFunction: Record<string, number> = {};
  let requests = 0;
  let exceptions = 0;
  let unanswered = 0;
  let closed = false;
  // modbus-serial calls the vector once per register or per bit of one request, all in one synchronous run:
  // the first call of a run is the request.
  let counted: string | undefined;
  const countRequest = (fc: string): void => {
    if (counted !== undefined) return;
    counted = fc;
    queueMicrotask(() => (counted = undefined));
    requests++;
    byFunction[fc] = (byFunction[fc] ?? 0) + 1;
  };

  /** The reply through the faults: silent never settles, a delay holds it; an exception rejects in modbus-serial's shape. */
  const respond = <T>(fc: string, result: SimAnswer<T>): Promise<T> => {
    countRequest(fc);
    if (closed) return new Promise<T>(() => undefined);
    if (faults.silent) {
      unanswered++;
      return new Promise<T>(() => undefined);
    }
    const settle = (resolve: (v: T) => void, reject: (e: Error) => void): void => {
      if (result.ok) {
        resolve(result.value);
        return;
      }
      exceptions++;
      log.debug({ event: 'exception', fc, exception: result.exception, reason: result.reason }, 'exception response');
      reject(Object.assign(new Error(result.reason), { modbusErrorCode: result.exception }));
    };
    const delay = faults.delayMs ?? 0;
    return new Promise<T>((resolve, reject) => {
      if (delay <= 0) return settle(resolve, reject);
      const t = setTimeout(() => {
        timers.delete(t);
        if (!closed) settle(resolve, reject);
      }, delay);
      timers.add(t);
    });
  };

  /** A multi-register reply as one promise per register: the form modbus-serial handles for both tables (its callback form loses FC04 exceptions). */
  const perRegister = (fc: string, result: SimAnswer<number[]>, length: number): Array<Promise<number>> => {
    const all = respond(fc, result);
    return Array.from({ length }, (_, i) => all.then((words) => words[i]!));
  };

  // Promise forms throughout, so a silent or delayed meter can withhold the reply.
  const vector: IServiceVector = {
    getHoldingRegister: (addr: number) => respond('3', first(meter.readRegisters('holding', addr, 1))),
    getMultipleHoldingRegisters: (addr: number, length: number) => perRegister('3', meter.readRegisters('holding', addr, length), length),
    getInputRegister: (addr: number) => respond('4', first(meter.readRegisters('input', addr, 1))),
    getMultipleInputRegisters: (addr: number, length: number) => perRegister('4', meter.readRegisters('input', addr, length), length),
    getCoil: (addr: number) => respond('1', first(meter.readBits('coil', addr, 1))),
    getDiscreteInput: (addr: number) => respond('2', first(meter.readBits('discrete', addr, 1))),
    // A silent meter is off: it must not act on what it never answers.
    setCoil: (addr: number, value: boolean) => respond('5', faults.silent ? ok() : meter.writeCoil(addr, value)),
    setRegister: (addr: number) => respond('6', meter.writeRegister(addr)),
    setRegisterArray: (addr: number, values: number[]) => {
      const result = faults.silent ? ok() : meter.writeRegisters(addr, values);
      if (result.ok && result.value !== 'written' && result.value !== undefined)
        log.info({ event: 'credit', outcome: result.value }, `credit load ${result.value}`);
      return respond('16', result.ok ? ok() : result);
    },
  };

  const servers: Array<{ close(cb: (err: Error | null) => void): void }> = [];
  const stopAll = async (): Promise<void> => {
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  };

  let port: number | undefined;
  try {
    if (options.tcpPort !== undefined) {
      port = options.tcpPort === 0 ? await freeTcpPort(options.host ?? '127.0.0.1') : options.tcpPort;
      const server = new ServerTCP(vector, { host: options.host ?? '127.0.0.1', port, unitID: unit });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('initialized', () => resolve());
        server.once('serverError', (err: unknown) =>
          reject(new Error(`cannot serve Modbus TCP on ${options.host ?? '127.0.0.1'}:${port}: ${String((err as Error)?.message ?? err)}`)),
        );
      });
      server.on('socketError', (err: unknown) => log.debug({ event: 'socket-error', err }, 'client connection error'));
    }
    if (options.pty !== undefined) {
      const path = options.pty;
      await new Promise<void>((resolve, reject) => {
        const server = new ServerSerial(vector, {
          path,
          baudRate: options.baudRate ?? options.profile.line.baudRate,
          parity: options.profile.line.parity,
          dataBits: options.profile.line.dataBits,
          stopBits: options.profile.line.stopBits,
          unitID: unit,
          openCallback: (err: Error | null) => (err ? reject(new Error(`cannot serve Modbus RTU on ${path}: ${err.message}`)) : undefined),
        });
        servers.push(server);
        server.once('initialized', () => resolve());
        server.on('socketError', (err: unknown) => log.debug({ event: 'line-error', err }, 'serial line error'));
      });
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  log.info({ event: 'sim-start', tcpPort: port, pty: options.pty }, 'Modbus simulator serving');

  return {
    ...(port !== undefined ? { port } : {}),
    unit,
    meter,
    setValue: (point, value) => meter.setValue(point, value),
    getValue: (point) => meter.getValue(point),
    setFaults: (f) => {
      faults = checkFaults({ ...faults, ...f });
    },
    stats: () => ({ requests, byFunction: { ...byFunction }, exceptions, unanswered, credits: meter.credits }),
    close: stopAll,
  };
}

function first<T>(r: SimAnswer<T[]>): SimAnswer<T> {
  return r.ok ? { ok: true, value: r.value[0]! } : r;
}

function ok(): SimAnswer<void> {
  return { ok: true, value: undefined };
}

function checkFaults(f: ModbusSimFaults): ModbusSimFaults {
  if (f.delayMs !== undefined && (!Number.isFinite(f.delayMs) || f.delayMs < 0))
    throw new TypeError(`delayMs is not a number of milliseconds ≥ 0: ${f.delayMs}`);
  return f;
}

/** ServerTCP treats port 0 as "unset" and binds 502 (docs/reference/modbus-maps.md § modbus-serial server quirks), so ask the kernel for a free port first. */
function freeTcpPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
