import { EventEmitter } from 'node:events';
import ModbusSerial from 'modbus-serial';
import { classifyModbusError, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_WRITE_REGISTERS } from '../../protocols/modbus/index.js';
import { realTimers, type Clock, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { BusArbiter, type ArbiterStats } from './arbiter.js';
import { BusLifecycle, settlesWithin, type BusState, type BusStateEvent } from './bus-lifecycle.js';
import { BusError } from './errors.js';
import { hangupAwareBinding, resolveSerialPath } from './serial-device.js';
import { responseTimeoutMs } from './timing.js';
import { parsePortSpec, type PortSpec } from './transport.js';
import { describeLine, type LineSettings, type Priority } from './types.js';

const ModbusRTU = ModbusSerial.default;
type ModbusClient = InstanceType<typeof ModbusRTU>;

export type ModbusProtocol = 'modbus-rtu' | 'modbus-tcp';
export type ModbusRegisterTable = 'holding' | 'input';
export type ModbusBitTable = 'coil' | 'discrete';

export { isModbusError, ModbusError, type ModbusErrorCode } from './modbus-errors.js';
import { ModbusError } from './modbus-errors.js';

export interface ModbusReadOptions {
  /** Reply deadline for one attempt. Default: from the line speed and the request size (see `turnaroundMs`). */
  timeoutMs?: number;
  /** Re-sends after a timeout or a garbled reply. Default: the link's `readRetries`. */
  retries?: number;
  signal?: AbortSignal;
  label?: string;
}

/** Writes are sent once: after a timeout the meter may have acted on it, so only a read-back can tell. */
export interface ModbusWriteOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  label?: string;
}

/** The link as seen inside a session: requests go straight to the wire, no other job comes between them. */
export interface ModbusTx {
  readRegisters(unit: number, table: ModbusRegisterTable, start: number, count: number, opts?: ModbusReadOptions): Promise<number[]>;
  readBits(unit: number, table: ModbusBitTable, start: number, count: number, opts?: ModbusReadOptions): Promise<boolean[]>;
  writeRegisters(unit: number, start: number, words: readonly number[], opts?: ModbusWriteOptions): Promise<void>;
  writeCoil(unit: number, address: number, value: boolean, opts?: ModbusWriteOptions): Promise<void>;
}

export interface ModbusLinkStats extends ArbiterStats {
  id: string;
  port: string;
  protocol: ModbusProtocol;
  state: BusState;
  /** Requests that reached the wire (each counted once, however many attempts). */
  requests: number;
  /** Re-sends after an attempt timed out or got a garbled reply. */
  retries: number;
  /** Requests that failed with BUS_TIMEOUT after every attempt. */
  timeouts: number;
  /** Exception responses (the meter refused the request). */
  exceptions: number;
  /** Requests that failed with MODBUS_BAD_REPLY after every attempt. */
  badReplies: number;
  /** Times the port or connection came back after being lost. */
  reconnects: number;
}

export interface ModbusLinkOptions {
  /** Names the bus in every log line and error: `bus2`. */
  id: string;
  /** `/dev/ttyUSB0`, `/dev/serial/by-id/…` or `tcp://host:port`. */
  port: string;
  /**
   * `modbus-rtu` on a serial path: RTU frames on the local port. `modbus-rtu` on tcp://: RTU frames through a
   * serial-to-Ethernet converter in transparent mode. `modbus-tcp` (tcp:// only): MBAP frames, to a Modbus TCP
   * meter or a Modbus TCP-to-RTU gateway.
   */
  protocol: ModbusProtocol;
  /** The meters' line settings; through TCP they only set the default reply deadline. */
  line: LineSettings;
  /**
   * Share one arbiter with another driver of the same wire, e.g. a DL/T 645 FrameBus through a converter that accepts
   * two connections. (A local serial port opens once, so two protocols on one adapter need one transport.)
   */
  arbiter?: BusArbiter;
  gapMs?: number;
  maxQueuedPolls?: number;
  /** Default re-sends for reads. Default 2. Writes are never re-sent. */
  readRetries?: number;
  /** How long a meter may take to start its reply; added to the line time for the default deadline. Default 300 ms. */
  turnaroundMs?: number;
  /** How long to wait for a TCP connection or a serial open. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** First delay before reopening a lost port; doubles up to `reconnectMaxMs`. Default 200 ms. */
  reconnectMinMs?: number;
  /** Default 2000 ms. */
  reconnectMaxMs?: number;
  /** How long `close()` lets the job in flight finish before aborting it. Default 5000 ms. */
  closeTimeoutMs?: number;
  logger?: Logger;
  /** The connect deadline, the turnaround gap and reopen backoff run on these. Default: Node's timers. */
  timers?: Timers;
  /** Stamps `downSince` in state events. Default: the system clock. */
  clock?: Clock;
}

interface Call<T> {
  label: string;
  unit: number;
  functionCode: number;
  write: boolean;
  timeoutMs: number;
  attempts: number;
  send(client: ModbusClient): Promise<T>;
}

const RETRYABLE_REPLY = new Set(['CRC_ERROR', 'BAD_REPLY_LENGTH', 'UNEXPECTED_REPLY']);

/**
 * One Modbus bus (an RS-485 line on a serial port or behind a converter, or a Modbus TCP connection) behind a
 * `BusArbiter`: one request on the wire at a time, operator > credit > alarm > batch > poll, a quiet gap between jobs and
 * a bounded poll queue. A timeout is BUS_TIMEOUT (reads are re-sent, writes never); an exception response is a
 * `ModbusError` MODBUS_EXCEPTION with its name, never re-sent. When the port or connection is lost, the job in
 * flight and every queued job fail with BUS_DOWN and the link reopens in the background with capped backoff.
 *
 * @example
 * const link = new ModbusLink({ id: 'bus2', port: '/dev/ttyUSB1', protocol: 'modbus-rtu', line: { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 }, logger });
 * await link.open();
 * const words = await link.readRegisters('poll', 1, 'input', 0x0000, 18);
 * await link.session('credit', async (tx) => { await tx.writeRegisters(1, 0x0200, [8, 0, 5000]); return tx.readRegisters(1, 'holding', 0x0100, 3); });
 */
export class ModbusLink extends EventEmitter<{ state: [BusStateEvent] }> {
  readonly id: string;
  readonly protocol: ModbusProtocol;
  readonly arbiter: BusArbiter;
  /** What a technician would look for: `/dev/ttyUSB1 9600 8N1 modbus-rtu` or `tcp://10.0.0.8:502 modbus-tcp`. */
  readonly description: string;
  readonly #spec: PortSpec;
  readonly #line: LineSettings;
  readonly #log: Logger;
  readonly #readRetries: number;
  readonly #turnaroundMs: number;
  readonly #connectTimeoutMs: number;
  readonly #timers: Timers;
  readonly #life: BusLifecycle<ModbusClient>;
  #requests = 0;
  #retries = 0;
  #timeouts = 0;
  #exceptions = 0;
  #badReplies = 0;

  constructor(opts: ModbusLinkOptions) {
    super();
    this.id = opts.id;
    this.protocol = opts.protocol;
    if (opts.protocol !== 'modbus-rtu' && opts.protocol !== 'modbus-tcp')
      throw new TypeError(`protocol is not modbus-rtu or modbus-tcp: ${String(opts.protocol)}`);
    this.#spec = parsePortSpec(opts.port);
    if (this.#spec.kind === 'serial' && opts.protocol === 'modbus-tcp') {
      throw new BusError(
        'PORT_SPEC_INVALID',
        `port "${opts.port}" is a serial device but the protocol is modbus-tcp; use modbus-rtu on a serial port, or tcp://host:port for Modbus TCP`,
      );
    }
    this.#line = opts.line;
    this.description =
      this.#spec.kind === 'serial'
        ? `${this.#spec.path} ${describeLine(opts.line)} ${opts.protocol}`
        : `tcp://${hostForUrl(this.#spec.host)}:${this.#spec.port} ${opts.protocol}`;
    this.#timers = opts.timers ?? realTimers;
    this.#log = (opts.logger ?? silentLogger).child({ bus: opts.id });
    this.arbiter =
      opts.arbiter ??
      new BusArbiter({ name: opts.id, gapMs: opts.gapMs, maxQueuedPolls: opts.maxQueuedPolls, logger: this.#log, timers: this.#timers });
    this.#readRetries = opts.readRetries ?? 2;
    this.#turnaroundMs = opts.turnaroundMs ?? 300;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    if (!Number.isInteger(this.#readRetries) || this.#readRetries < 0)
      throw new TypeError(`readRetries is not a whole number ≥ 0: ${this.#readRetries}`);
    if (!(Number.isFinite(this.#turnaroundMs) && this.#turnaroundMs >= 0))
      throw new TypeError(`turnaroundMs is not a number of milliseconds ≥ 0: ${this.#turnaroundMs}`);
    if (!(this.#connectTimeoutMs > 0)) throw new TypeError(`connectTimeoutMs is not greater than 0: ${this.#connectTimeoutMs}`);
    this.#life = new BusLifecycle<ModbusClient>({
      id: opts.id,
      description: this.description,
      checkHint: this.#spec.kind === 'serial' ? 'the USB adapter and cable' : 'the converter or meter, and the network',
      arbiter: this.arbiter,
      log: this.#log,
      timers: this.#timers,
      clock: opts.clock,
      reconnectMinMs: opts.reconnectMinMs,
      reconnectMaxMs: opts.reconnectMaxMs,
      closeTimeoutMs: opts.closeTimeoutMs,
      connect: (signal) => this.#connect(signal),
      disconnect: (client) => discard(client, this.#timers),
      isOpen: (client) => client.isOpen,
      onState: (e) => this.emit('state', e),
    });
  }

  get state(): BusState {
    return this.#life.state;
  }

  /** Opens the port once; rejects with PORT_OPEN_FAILED if it cannot (for commands run by hand). */
  open(signal?: AbortSignal): Promise<void> {
    return this.#life.open(signal);
  }

  /** Opens the port in the background and keeps trying until it opens (for the daemon: the adapter or converter may come later). */
  start(): void {
    this.#life.start();
  }

  /** Reads `count` holding (FC03) or input (FC04) registers from `start`. */
  readRegisters(
    priority: Priority,
    unit: number,
    table: ModbusRegisterTable,
    start: number,
    count: number,
    opts: ModbusReadOptions = {},
  ): Promise<number[]> {
    return this.#job(priority, opts, () => this.#readRegistersCall(unit, table, start, count, opts));
  }

  /** Reads `count` coils (FC01) or discrete inputs (FC02) from `start`. */
  readBits(
    priority: Priority,
    unit: number,
    table: ModbusBitTable,
    start: number,
    count: number,
    opts: ModbusReadOptions = {},
  ): Promise<boolean[]> {
    return this.#job(priority, opts, () => this.#readBitsCall(unit, table, start, count, opts));
  }

  /** Writes holding registers with FC16, even a single one: some meters ignore FC06. Sent once. */
  writeRegisters(priority: Priority, unit: number, start: number, words: readonly number[], opts: ModbusWriteOptions = {}): Promise<void> {
    return this.#job(priority, opts, () => this.#writeRegistersCall(unit, start, words, opts));
  }

  /** Writes one coil with FC05 (a relay, a reset). Sent once. */
  writeCoil(priority: Priority, unit: number, address: number, value: boolean, opts: ModbusWriteOptions = {}): Promise<void> {
    return this.#job(priority, opts, () => this.#writeCoilCall(unit, address, value, opts));
  }

  /** Holds the bus for several requests (write, then read back) so no other job comes between them. */
  session<T>(priority: Priority, fn: (tx: ModbusTx) => Promise<T>, opts: { signal?: AbortSignal; label?: string } = {}): Promise<T> {
    return this.#life.session(priority, opts, (signal, ended) => {
      const use = <R>(reqSignal: AbortSignal | undefined, build: () => Call<R>): Promise<R> => {
        const over = ended();
        if (over) return Promise.reject(over);
        let call: Call<R>;
        try {
          call = build();
        } catch (err) {
          return Promise.reject(err);
        }
        return this.#exchange(call, reqSignal ? [signal, reqSignal] : [signal]);
      };
      return fn({
        readRegisters: (unit, table, start, count, o = {}) => use(o.signal, () => this.#readRegistersCall(unit, table, start, count, o)),
        readBits: (unit, table, start, count, o = {}) => use(o.signal, () => this.#readBitsCall(unit, table, start, count, o)),
        writeRegisters: (unit, start, words, o = {}) => use(o.signal, () => this.#writeRegistersCall(unit, start, words, o)),
        writeCoil: (unit, address, value, o = {}) => use(o.signal, () => this.#writeCoilCall(unit, address, value, o)),
      });
    });
  }

  stats(): ModbusLinkStats {
    return {
      ...this.arbiter.stats(),
      id: this.id,
      port: this.description,
      protocol: this.protocol,
      state: this.#life.state,
      requests: this.#requests,
      retries: this.#retries,
      timeouts: this.#timeouts,
      exceptions: this.#exceptions,
      badReplies: this.#badReplies,
      reconnects: this.#life.reconnects,
    };
  }

  /** Stops reconnecting, refuses queued jobs, lets the job in flight finish (bounded), then closes the port. */
  close(): Promise<void> {
    return this.#life.close();
  }

  /** Checks the request before it waits for the bus (a bad argument is refused at once), then queues it. */
  #job<T>(priority: Priority, opts: { signal?: AbortSignal; label?: string }, build: () => Call<T>): Promise<T> {
    const refused = this.#life.refusal();
    if (refused) return Promise.reject(refused);
    let call: Call<T>;
    try {
      call = build();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#life.run(priority, (signal) => this.#exchange(call, [signal]), { signal: opts.signal, label: call.label });
  }

  #readRegistersCall(unit: number, table: ModbusRegisterTable, start: number, count: number, opts: ModbusReadOptions): Call<number[]> {
    if (table !== 'holding' && table !== 'input') throw new TypeError(`table is not holding or input: ${String(table)}`);
    this.#checkUnit(unit);
    checkRange(start, count, MAX_READ_REGISTERS, 'registers');
    const fc = table === 'holding' ? 3 : 4;
    return {
      label: opts.label ?? `unit ${unit} FC0${fc} ${table} ${hex4(start)}+${count}`,
      unit,
      functionCode: fc,
      write: false,
      timeoutMs: this.#timeoutMs(opts.timeoutMs, 8, 5 + 2 * count),
      attempts: this.#attemptCount(opts.retries),
      send: async (client) => {
        const reply = fc === 3 ? await client.readHoldingRegisters(start, count) : await client.readInputRegisters(start, count);
        return reply.data;
      },
    };
  }

  #readBitsCall(unit: number, table: ModbusBitTable, start: number, count: number, opts: ModbusReadOptions): Call<boolean[]> {
    if (table !== 'coil' && table !== 'discrete') throw new TypeError(`table is not coil or discrete: ${String(table)}`);
    this.#checkUnit(unit);
    checkRange(start, count, MAX_READ_BITS, 'bits');
    const fc = table === 'coil' ? 1 : 2;
    return {
      label: opts.label ?? `unit ${unit} FC0${fc} ${table} ${hex4(start)}+${count}`,
      unit,
      functionCode: fc,
      write: false,
      timeoutMs: this.#timeoutMs(opts.timeoutMs, 8, 5 + Math.ceil(count / 8)),
      attempts: this.#attemptCount(opts.retries),
      send: async (client) => {
        const reply = fc === 1 ? await client.readCoils(start, count) : await client.readDiscreteInputs(start, count);
        // The reply is padded to whole bytes; the padding bits are not inputs.
        return reply.data.slice(0, count);
      },
    };
  }

  #writeRegistersCall(unit: number, start: number, words: readonly number[], opts: ModbusWriteOptions): Call<void> {
    this.#checkUnit(unit);
    checkRange(start, words.length, MAX_WRITE_REGISTERS, 'registers');
    checkWords(words);
    const values = [...words];
    return {
      label: opts.label ?? `unit ${unit} FC16 write ${hex4(start)}+${values.length}`,
      unit,
      functionCode: 16,
      write: true,
      timeoutMs: this.#timeoutMs(opts.timeoutMs, 9 + 2 * values.length, 8),
      attempts: 1,
      send: async (client) => {
        await client.writeRegisters(start, values);
      },
    };
  }

  #writeCoilCall(unit: number, address: number, value: boolean, opts: ModbusWriteOptions): Call<void> {
    this.#checkUnit(unit);
    checkRange(address, 1, 1, 'coils');
    if (typeof value !== 'boolean') throw new TypeError(`a coil value is true or false, got ${String(value)}`);
    return {
      label: opts.label ?? `unit ${unit} FC05 coil ${hex4(address)}=${value ? 'on' : 'off'}`,
      unit,
      functionCode: 5,
      write: true,
      timeoutMs: this.#timeoutMs(opts.timeoutMs, 8, 8),
      attempts: 1,
      send: async (client) => {
        await client.writeCoil(address, value);
      },
    };
  }

  #exchange<T>(call: Call<T>, signals: AbortSignal[]): Promise<T> {
    return this.#life.exchange(call.label, signals, (client) => this.#attempts(client, call, signals));
  }

  /** Sends a call until it is answered, refused, or out of attempts (reads only: writes have one). */
  async #attempts<T>(client: ModbusClient, call: Call<T>, signals: AbortSignal[]): Promise<T> {
    this.#requests++;
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) {
        this.#retries++;
        this.#log.debug({ event: 'retry', label: call.label, attempt, of: call.attempts }, 'sending again');
      }
      await this.#life.turnaround(signals, call.label);
      let failure: ReturnType<typeof classifyModbusError>;
      try {
        return await this.#attempt(client, call, signals);
      } catch (err) {
        if (err instanceof BusError || err instanceof TypeError) throw err;
        failure = classifyModbusError(err);
      } finally {
        this.#life.exchangeEnded();
      }
      if (failure.kind === 'exception') {
        this.#exceptions++;
        const code = failure.code.toString(16).toUpperCase().padStart(2, '0');
        const message = `unit ${call.unit} answered "${call.label}" on ${this.id} with exception ${code} ${failure.name}: ${failure.message}`;
        this.#log.info({ event: 'exception', code: 'MODBUS_EXCEPTION', exception: failure.name, label: call.label }, 'exception response');
        throw new ModbusError('MODBUS_EXCEPTION', message, {
          unit: call.unit,
          functionCode: call.functionCode,
          exception: failure.name,
          exceptionCode: failure.code,
        });
      }
      if (failure.kind === 'transport' && !RETRYABLE_REPLY.has(failure.code)) {
        // The client cannot send at all (port gone, connection reset): the same as losing the port.
        throw this.#life.goDown(new Error(failure.message));
      }
      if (attempt < call.attempts) continue;
      if (failure.kind === 'timeout') {
        this.#timeouts++;
        const err = new BusError(
          'BUS_TIMEOUT',
          call.write
            ? `no reply from unit ${call.unit} to "${call.label}" within ${call.timeoutMs} ms on ${this.id} (${this.description}); the write was sent once and may have executed: read the meter back before sending it again`
            : `no reply from unit ${call.unit} to "${call.label}" within ${call.timeoutMs} ms on ${this.id} (${this.description}) after ${call.attempts} attempt${call.attempts === 1 ? '' : 's'}; check the unit id, the meter's power, the A/B wiring, baud rate and parity`,
        );
        this.#log.info(
          { event: 'timeout', code: err.code, label: call.label, attempts: call.attempts, timeoutMs: call.timeoutMs },
          'no reply',
        );
        throw err;
      }
      this.#badReplies++;
      this.#log.info({ event: 'bad-reply', code: 'MODBUS_BAD_REPLY', reason: failure.code, label: call.label }, 'unusable reply');
      throw new ModbusError(
        'MODBUS_BAD_REPLY',
        `unit ${call.unit} sent an unusable reply to "${call.label}" on ${this.id} (${this.description})${call.write ? '' : ` after ${call.attempts} attempt${call.attempts === 1 ? '' : 's'}`}: ${failure.message}`,
        { unit: call.unit, functionCode: call.functionCode },
      );
    }
  }

  /** One request on the wire; rejects with what modbus-serial rejects with, or a BusError when aborted or the port is lost. */
  #attempt<T>(client: ModbusClient, call: Call<T>, signals: AbortSignal[]): Promise<T> {
    // A signal that fired while this job waited for its turn or its gap does not fire again: look before sending.
    const early = signals.find((s) => s.aborted);
    if (early) return Promise.reject(this.#life.abortError(early.reason, call.label));
    if (this.protocol === 'modbus-rtu') dropStaleBytes(client);
    client.setID(call.unit);
    client.setTimeout(call.timeoutMs);
    const sent = call.send(client);
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        cleanup();
        const aborted = signals.find((s) => s.aborted);
        reject(this.#life.abortError(aborted?.reason, call.label));
      };
      const cleanup = (): void => {
        for (const s of signals) s.removeEventListener('abort', onAbort);
      };
      for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
      // An abort may win the race; modbus-serial still settles this promise later (its own timeout), unobserved.
      sent.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (err: unknown) => {
          cleanup();
          reject(err);
        },
      );
    });
  }

  #attemptCount(retries: number | undefined): number {
    const r = retries ?? this.#readRetries;
    if (!Number.isInteger(r) || r < 0) throw new TypeError(`retries is not a whole number ≥ 0: ${r}`);
    return r + 1;
  }

  #timeoutMs(given: number | undefined, requestBytes: number, replyBytes: number): number {
    if (given !== undefined) {
      if (!(Number.isFinite(given) && given > 0)) throw new TypeError(`timeoutMs is not greater than 0: ${given}`);
      return given;
    }
    // Modbus TCP adds a 6-byte header each way but no line time of its own; the line behind a gateway still counts.
    return responseTimeoutMs({ settings: this.#line, requestBytes, expectedReplyBytes: replyBytes, turnaroundMs: this.#turnaroundMs });
  }

  #checkUnit(unit: number): void {
    // RTU unit 0 is broadcast (no reply) and 248–255 are reserved; Modbus TCP devices often answer 0 or 255.
    const [min, max] = this.protocol === 'modbus-tcp' ? [0, 255] : [1, 247];
    if (!Number.isInteger(unit) || unit < min || unit > max)
      throw new RangeError(`unit id is not a whole number from ${min} to ${max} for ${this.protocol}: ${unit}`);
  }

  async #connect(signal?: AbortSignal): Promise<ModbusClient> {
    if (signal?.aborted) throw new BusError('ABORTED', `${this.description}: cancelled`, { cause: signal.reason });
    const client = new ModbusRTU();
    // modbus-serial re-emits port errors on the client; with no listener an EventEmitter 'error' would crash the process.
    client.on('error', (err: unknown) => this.#onClientLost(client, err instanceof Error ? err : new Error(describeUnknown(err))));
    client.on('close', () => this.#onClientLost(client, new Error(`${this.description} closed unexpectedly`)));
    const spec = this.#spec;
    let connecting: Promise<void>;
    if (spec.kind === 'serial') {
      let device: string;
      try {
        device = await resolveSerialPath(spec.path);
      } catch (err) {
        await discard(client, this.#timers);
        throw this.#openFailed(err);
      }
      // The hangup-aware binding, so an unplugged adapter closes the port instead of spinning on empty reads.
      const options = {
        baudRate: this.#line.baudRate,
        dataBits: this.#line.dataBits,
        parity: this.#line.parity,
        stopBits: this.#line.stopBits,
        binding: hangupAwareBinding,
      };
      connecting = client.connectRTUBuffered(device, options as Parameters<ModbusClient['connectRTUBuffered']>[1]);
    } else if (this.protocol === 'modbus-tcp') {
      connecting = client.connectTCP(spec.host, { port: spec.port });
    } else {
      // connectTelnet sends bare RTU frames over the socket, which is what a converter in transparent mode expects.
      // (connectTcpRTUBuffered, despite its name, wraps frames in the Modbus TCP header.)
      connecting = client.connectTelnet(spec.host, { port: spec.port });
    }
    connecting.catch(() => undefined);
    try {
      await withDeadline(connecting, this.#connectTimeoutMs, signal, this.#timers);
    } catch (err) {
      await discard(client, this.#timers);
      if (err instanceof BusError) throw err;
      throw this.#openFailed(err);
    }
    return client;
  }

  readonly #onClientLost = (client: ModbusClient, cause: Error): void => {
    if (client !== this.#life.connection) return;
    this.#life.goDown(cause);
  };

  #openFailed(err: unknown): BusError {
    const text = err instanceof Error ? err.message : describeUnknown(err);
    const code = (err as { code?: unknown } | null)?.code;
    let hint: string;
    if (this.#spec.kind === 'serial') {
      const path = this.#spec.path;
      if (/cannot lock port|resource temporarily unavailable/i.test(text))
        hint = `another program holds it (the meterd daemon? then give the command its config, -c FILE, and it goes through the daemon; or minicom, a Modbus tool); find it with: fuser -v ${path}`;
      else if (/no such file or directory/i.test(text))
        hint = 'the device does not exist: is the USB adapter plugged in? List adapters with: ls -l /dev/serial/by-id';
      else if (/permission denied/i.test(text)) hint = `no permission: add the service user to the dialout group, or check: ls -l ${path}`;
      else hint = 'check the adapter and the port settings';
    } else if (code === 'ECONNREFUSED') {
      hint =
        this.protocol === 'modbus-tcp'
          ? 'nothing accepts Modbus TCP on this port: check the meter or gateway address and port (often 502)'
          : 'the converter refused the connection: is it in TCP server mode on this port?';
    } else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      hint = 'no route to the device: check the network and its IP address';
    } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      hint = 'the host name does not resolve: use the IP address or check DNS';
    } else if (code === 'CONNECT_TIMEOUT') {
      hint = 'no answer to the connection attempt: is the device powered and on this network?';
    } else {
      hint = 'check the device and the network';
    }
    return new BusError('PORT_OPEN_FAILED', `cannot open ${this.description}: ${hint} (${text})`, { cause: err });
  }
}

export interface OpenModbusLinkOptions extends ModbusLinkOptions {
  /**
   * false (default): reject with PORT_OPEN_FAILED if the port cannot be opened now (commands run by hand).
   * true: return at once with the link down, and keep opening it in the background (the daemon).
   */
  waitForPort?: boolean;
}

/**
 * Creates a link and opens it (or starts opening it in the background).
 *
 * @example
 * const link = await openModbusLink({ id: 'bus2', port: 'tcp://10.0.0.8:502', protocol: 'modbus-tcp', line: { baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 }, logger });
 */
export async function openModbusLink(opts: OpenModbusLinkOptions): Promise<ModbusLink> {
  const link = new ModbusLink(opts);
  if (opts.waitForPort) link.start();
  else await link.open();
  return link;
}

function checkRange(start: number, count: number, max: number, what: string): void {
  if (!Number.isInteger(start) || start < 0 || start > 0xffff)
    throw new RangeError(`start address is not a whole number from 0 to 65535: ${start}`);
  if (!Number.isInteger(count) || count < 1 || count > max)
    throw new RangeError(`count is not a whole number of ${what} from 1 to ${max}: ${count}`);
  if (start + count > 0x10000) throw new RangeError(`${what} ${start}+${count} run past address 65535`);
}

function checkWords(words: readonly number[]): void {
  const i = words.findIndex((w) => !Number.isInteger(w) || w < 0 || w > 0xffff);
  if (i >= 0)
    throw new RangeError(`word ${i} is not a 16-bit register value (0–65535): ${String(words[i])}; encode values with encodeValue first`);
}

/**
 * modbus-serial's RTU parsers keep received bytes between requests, and every RTU request shares one transaction
 * slot: a late reply to an earlier, timed-out request would be taken for the answer to the next one when unit,
 * function and length match. Dropping what arrived before we send removes the bytes that can be known stale.
 */
function dropStaleBytes(client: ModbusClient): void {
  const port = (client as unknown as { _port?: { _buffer?: unknown } })._port;
  if (port && Buffer.isBuffer(port._buffer) && port._buffer.length > 0) port._buffer = Buffer.alloc(0);
}

/** Releases a client whatever its state: cancels its pending timers, closes the socket or serial port. Never rejects. */
async function discard(client: ModbusClient, timers: Timers): Promise<void> {
  const wasOpen = client.isOpen;
  // destroy() cancels modbus-serial's transaction timers and destroys a socket; a serial port needs close() as well.
  await settlesWithin(timers, new Promise<void>((resolve) => client.destroy(() => resolve())), 1000);
  if (wasOpen && client.isOpen) await settlesWithin(timers, new Promise<void>((resolve) => client.close(() => resolve())), 1000);
}

function withDeadline(promise: Promise<void>, ms: number, signal: AbortSignal | undefined, timers: Timers): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = timers.setTimeout(
      () => finish(() => reject(Object.assign(new Error(`no connection within ${ms} ms`), { code: 'CONNECT_TIMEOUT' }))),
      ms,
    );
    const onAbort = (): void => finish(() => reject(new BusError('ABORTED', 'opening the port was cancelled', { cause: signal?.reason })));
    let settled = false;
    function finish(settle: () => void): void {
      if (settled) return;
      settled = true;
      timers.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => finish(resolve),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}

function describeUnknown(err: unknown): string {
  if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string')
    return (err as { message: string }).message;
  return String(err);
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function hex4(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(4, '0')}`;
}
