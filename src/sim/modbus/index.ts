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
  /**
   * More meters on the same line, each at its own unit id (a bus of several meters behind one port, as an RS-485 line
   * or a Modbus TCP gateway in front of one): an old and a new meter side by side during a replacement.
   */
  readonly neighbours?: readonly ModbusNeighbour[];
}

/** Another meter on the simulator's line: its unit id, its model (default the simulator's) and its starting values. */
export interface ModbusNeighbour {
  readonly unit: number;
  readonly profile?: DeviceProfile;
  readonly values?: Readonly<Record<string, number>>;
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
  /** The meter at `unit` (the first option's). */
  readonly meter: SimulatedModbusMeter;
  /** The meter at a unit id: the simulator's own or a neighbour; undefined when none is there. */
  meterAt(unit: number): SimulatedModbusMeter | undefined;
  setValue(point: string, value: number): void;
  getValue(point: string): number;
  /** Merges into the current faults (of one unit's meter when `unit` is given, else of every meter on the line); a field given as undefined clears it. */
  setFaults(faults: ModbusSimFaults, unit?: number): void;
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
  const meter = new SimulatedModbusMeter(options.profile, { values: options.values });
  const meters = new Map<number, SimulatedModbusMeter>([[checkUnit(unit), meter]]);
  for (const n of options.neighbours ?? []) {
    if (meters.has(checkUnit(n.unit))) throw new TypeError(`two simulated meters at unit ${n.unit}`);
    meters.set(n.unit, new SimulatedModbusMeter(n.profile ?? options.profile, { values: n.values }));
  }
  // One unit answers only its own id (modbus-serial drops the rest); several answer any id and pick the meter here.
  const serverUnit = meters.size === 1 ? unit : 255;
  const log = (options.logger ?? silentLogger).child({ component: 'sim-modbus', profile: options.profile.id, unit });
  let faults: ModbusSimFaults = checkFaults(options.faults ?? {});
  const unitFaults = new Map<number, ModbusSimFaults>();
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

  const faultsOf = (id: number): ModbusSimFaults => ({ ...faults, ...unitFaults.get(id) });
  /** A meter nobody put on the line answers nothing, as a silent one. */
  const nobody: ModbusSimFaults = { silent: true };

  /** The reply through the faults: silent never settles, a delay holds it; an exception rejects in modbus-serial's shape. */
  const respond = <T>(fc: string, result: SimAnswer<T>, f: ModbusSimFaults): Promise<T> => {
    countRequest(fc);
    if (closed) return new Promise<T>(() => undefined);
    if (f.silent) {
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
    const delay = f.delayMs ?? 0;
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
  const perRegister = (fc: string, result: SimAnswer<number[]>, length: number, f: ModbusSimFaults): Array<Promise<number>> => {
    const all = respond(fc, result, f);
    return Array.from({ length }, (_, i) => all.then((words) => words[i]!));
  };
  /** The request's meter and its faults; `read` runs only when there is a meter to read. */
  const on = <T>(id: number, act: (m: SimulatedModbusMeter) => SimAnswer<T>, none: SimAnswer<T>) => {
    const m = meters.get(id);
    return m ? { result: act(m), f: faultsOf(id) } : { result: none, f: nobody };
  };
  const read = (fc: string, id: number, act: (m: SimulatedModbusMeter) => SimAnswer<number[]>, length: number) => {
    const r = on(id, act, ok(new Array<number>(length).fill(0)));
    return perRegister(fc, r.result, length, r.f);
  };
  const one = <T>(fc: string, id: number, act: (m: SimulatedModbusMeter) => SimAnswer<T[]>, none: T) => {
    const r = on(id, act, ok([none]));
    return respond(fc, first(r.result), r.f);
  };
  // A silent meter (or none at that unit) is off: it must not act on what it never answers.
  const write = <T>(id: number, act: (m: SimulatedModbusMeter) => SimAnswer<T>) => {
    const m = meters.get(id);
    const f = m ? faultsOf(id) : nobody;
    const result = f.silent || !m ? ok() : act(m);
    return { result, f };
  };

  // Promise forms throughout, so a silent or delayed meter can withhold the reply. modbus-serial passes the request's
  // unit id after the address (and length or value); the arity tells it the promise form from the callback form.
  const vector: IServiceVector = {
    getHoldingRegister: (addr: number, id: number) => one('3', id, (m) => m.readRegisters('holding', addr, 1), 0),
    getMultipleHoldingRegisters: (addr: number, length: number, id: number) =>
      read('3', id, (m) => m.readRegisters('holding', addr, length), length),
    getInputRegister: (addr: number, id: number) => one('4', id, (m) => m.readRegisters('input', addr, 1), 0),
    getMultipleInputRegisters: (addr: number, length: number, id: number) =>
      read('4', id, (m) => m.readRegisters('input', addr, length), length),
    getCoil: (addr: number, id: number) => one('1', id, (m) => m.readBits('coil', addr, 1), false),
    getDiscreteInput: (addr: number, id: number) => one('2', id, (m) => m.readBits('discrete', addr, 1), false),
    setCoil: (addr: number, value: boolean, id: number) => {
      const w = write(id, (m) => m.writeCoil(addr, value));
      return respond('5', w.result, w.f);
    },
    setRegister: (addr: number, _value: number, id: number) => {
      const r = on(id, (m) => m.writeRegister(addr), ok());
      return respond('6', r.result, r.f);
    },
    setRegisterArray: (addr: number, values: number[], id: number) => {
      const { result, f } = write(id, (m) => m.writeRegisters(addr, values));
      if (result.ok && result.value !== 'written' && result.value !== undefined)
        log.info({ event: 'credit', unit: id, outcome: result.value }, `credit load ${result.value}`);
      return respond('16', result.ok ? ok() : result, f);
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
      const server = new ServerTCP(vector, { host: options.host ?? '127.0.0.1', port, unitID: serverUnit });
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
          unitID: serverUnit,
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
    meterAt: (id) => meters.get(id),
    setValue: (point, value) => meter.setValue(point, value),
    getValue: (point) => meter.getValue(point),
    setFaults: (f, id) => {
      if (id === undefined) faults = checkFaults({ ...faults, ...f });
      else unitFaults.set(id, checkFaults({ ...unitFaults.get(id), ...f }));
    },
    stats: () => ({ requests, byFunction: { ...byFunction }, exceptions, unanswered, credits: meter.credits }),
    close: stopAll,
  };
}

function first<T>(r: SimAnswer<T[]>): SimAnswer<T> {
  return r.ok ? { ok: true, value: r.value[0]! } : r;
}

function ok(): SimAnswer<void>;
function ok<T>(value: T): SimAnswer<T>;
function ok<T>(value?: T): SimAnswer<T | undefined> {
  return { ok: true, value };
}

function checkUnit(unit: number): number {
  if (!Number.isInteger(unit) || unit < 1 || unit > 247) throw new TypeError(`unit is not a Modbus unit id from 1 to 247: ${unit}`);
  return unit;
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
