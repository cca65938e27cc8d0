import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SerialPort } from 'serialport';
import { DIR_REPLY, Dlt645Decoder, encodeFrame, FUNCTION_MASK, START, type Address, type Frame } from '../../../protocols/dlt645/index.js';
import { systemClock, type Clock } from '../../clock.js';
import { silentLogger, type Logger } from '../../log.js';
import { openSerialLine } from '../cli-support.js';
import type { SimulatedMeter } from './meter.js';

/** Faults a test can switch on at any time, for the whole bus or one meter (a meter's setting wins). */
export interface BusFaults {
  /** Reply delay in ms. 0 (the default) writes the reply at once, with no timer, so benchmarks measure the gateway. */
  readonly delayMs?: number;
  /** Never answer, as a meter that is off or cut from the line; its state does not change either. */
  readonly silent?: boolean;
  /** Random non-68H garbage before each reply; a number is how many bytes (true = 1 to 8). */
  readonly noise?: boolean | number;
  /** Echo the request back before the reply, as some RS-485 adapters do. */
  readonly echo?: boolean;
}

export interface SimulatedBusOptions {
  readonly logger?: Logger;
  /** Host time handed to the meters. Default the system clock. */
  readonly clock?: Clock;
  readonly faults?: BusFaults;
  /** Serial settings when attaching a port path. Default 2400 (the pty ignores it, a real adapter does not). */
  readonly baudRate?: number;
  /**
   * Hold each reply as long as a real line would: the request's and the reply's bytes at `baudRate` (11 bits a byte,
   * 8E1) plus the meter's turnaround. For benchmarks over TCP or a pty, which are far faster than RS-485.
   */
  readonly emulateLine?: { readonly turnaroundMs: number; readonly bitsPerByte?: number };
}

/** Where a line was attached: a serial device, or a TCP listener (port as bound, useful with port 0). */
export type AttachedTransport =
  | { readonly kind: 'serial'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

export interface BusStats {
  /** Request frames heard (replies and echoes on the line are not requests). */
  readonly requests: number;
  readonly replies: number;
  readonly dropped: number;
  readonly corrupted: number;
  /** Bytes the request decoder threw away (noise, broken frames). */
  readonly discardedBytes: number;
  /** Bytes of every request heard and reply sent, preambles included: what the line carried. */
  readonly lineBytes: number;
  /** Per meter, by its current address: requests addressed to it (wildcard and broadcast included) and replies sent. */
  readonly meters: Readonly<Record<Address, { readonly requests: number; readonly replies: number }>>;
}

interface MeterLine {
  faults: BusFaults;
  drop: number;
  corrupt: number;
  requests: number;
  replies: number;
}

const PREAMBLE_BYTES = 4;

/**
 * Several simulated meters sharing one RS-485 line, served over a serial port (one end of a pty pair) or TCP
 * (every connection is its own line). Requests are framed with the codec's streaming decoder; each meter that
 * the address reaches answers with a 4×FE preamble, through whatever faults are switched on.
 *
 * @example
 * const bus = new SimulatedBus([new SimulatedMeter({ address: '000000000001' })]);
 * const { port } = await bus.attach(0) as { port: number };  // TCP on a free port
 * bus.dropNext(1);                                              // the next reply is lost
 * await bus.close();
 */
export class SimulatedBus {
  private readonly list: SimulatedMeter[] = [];
  /** Meters by their current address, for unicast requests (a bus of 1,000 meters must not scan them all per frame). */
  private byAddress: Map<Address, SimulatedMeter[]> | undefined;
  private readonly perMeter = new Map<SimulatedMeter, MeterLine>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly baudRate: number;
  private busFaults: BusFaults;
  private busDrop = 0;
  private busCorrupt = 0;
  private totals = { requests: 0, replies: 0, dropped: 0, corrupted: 0, discardedBytes: 0, lineBytes: 0 };
  private readonly emulateLine: { readonly turnaroundMs: number; readonly byteMs: number } | undefined;
  private readonly streams = new Set<Duplex>();
  private readonly servers = new Set<Server>();
  private readonly ports = new Set<SerialPort>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(meters: Iterable<SimulatedMeter> = [], options: SimulatedBusOptions = {}) {
    this.log = (options.logger ?? silentLogger).child({ component: 'sim-dlt645' });
    this.clock = options.clock ?? systemClock;
    this.baudRate = options.baudRate ?? 2400;
    this.busFaults = checkFaults(options.faults ?? {});
    this.emulateLine = options.emulateLine && {
      turnaroundMs: options.emulateLine.turnaroundMs,
      byteMs: ((options.emulateLine.bitsPerByte ?? 11) * 1000) / this.baudRate,
    };
    for (const m of meters) this.add(m);
  }

  get meters(): readonly SimulatedMeter[] {
    return this.list;
  }

  add(meter: SimulatedMeter): void {
    if (this.list.some((m) => m.address === meter.address))
      throw new TypeError(`a meter with address ${meter.address} is already on this bus`);
    this.list.push(meter);
    this.byAddress = undefined;
    this.perMeter.set(meter, { faults: {}, drop: 0, corrupt: 0, requests: 0, replies: 0 });
  }

  /** Serve a serial device path (opened with `lock: false`, so a test may also open it) or listen on a TCP port (0 = any free port). */
  async attach(transport: string | number, options: { host?: string } = {}): Promise<AttachedTransport> {
    if (this.closed) throw new Error('the simulated bus is closed');
    return typeof transport === 'string' ? this.attachSerial(transport) : this.listen(transport, options.host ?? '127.0.0.1');
  }

  /** Serve any duplex byte stream as one line (a socket, a serial port, or an in-memory pair in tests). */
  attachStream(stream: Duplex, name = 'stream'): void {
    const decoder = new Dlt645Decoder();
    this.streams.add(stream);
    stream.on('data', (chunk: Buffer) => {
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'frame') this.onFrame(stream, ev.frame, ev.raw);
        else this.totals.discardedBytes += ev.bytes.length;
      }
    });
    stream.on('error', (err) => this.log.warn({ line: name, err: err.message }, 'line error'));
    stream.on('close', () => this.streams.delete(stream));
  }

  /** Faults for the whole bus, or for one meter when `address` is given. Passing a field as undefined clears it. */
  setFaults(faults: BusFaults, address?: Address): void {
    if (address === undefined) this.busFaults = checkFaults({ ...this.busFaults, ...faults });
    else {
      const m = this.lineOf(address);
      m.faults = checkFaults({ ...m.faults, ...faults });
    }
  }

  /** Lose the next `n` replies (of one meter, or of any meter): the meter still acts on the request. */
  dropNext(n: number, address?: Address): void {
    checkCount(n);
    if (address === undefined) this.busDrop += n;
    else this.lineOf(address).drop += n;
  }

  /** Send the next `n` replies with a wrong checksum. */
  corruptNext(n: number, address?: Address): void {
    checkCount(n);
    if (address === undefined) this.busCorrupt += n;
    else this.lineOf(address).corrupt += n;
  }

  /** Write a burst of garbage (random non-68H bytes, or the given bytes) on every line now. */
  injectNoise(bytes: number | Uint8Array = 16): void {
    const burst = typeof bytes === 'number' ? noiseBytes(bytes) : bytes;
    for (const s of this.streams) write(s, burst);
  }

  stats(): BusStats {
    const meters: Record<Address, { requests: number; replies: number }> = {};
    for (const [m, line] of this.perMeter) meters[m.address] = { requests: line.requests, replies: line.replies };
    return { ...this.totals, meters };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.streams) if (!(s instanceof SerialPort)) s.destroy();
    await Promise.all([
      ...[...this.servers].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))),
      ...[...this.ports].map((p) => new Promise<void>((resolve) => (p.isOpen ? p.close(() => resolve()) : resolve()))),
    ]);
    this.servers.clear();
    this.ports.clear();
  }

  private async attachSerial(path: string): Promise<AttachedTransport> {
    const port = await openSerialLine(path, { baudRate: this.baudRate, parity: 'even', dataBits: 8, stopBits: 1 });
    this.ports.add(port);
    port.once('close', () => this.ports.delete(port));
    this.attachStream(port, path);
    this.log.info({ path, meters: this.list.length }, 'serving serial line');
    return { kind: 'serial', path };
  }

  private async listen(port: number, host: string): Promise<AttachedTransport> {
    const server = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      this.attachStream(socket, `tcp ${socket.remoteAddress}:${socket.remotePort}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.servers.add(server);
    const bound = server.address();
    const actual = typeof bound === 'object' && bound ? bound.port : port;
    this.log.info({ host, port: actual, meters: this.list.length }, 'serving TCP');
    return { kind: 'tcp', host, port: actual };
  }

  private lineOf(address: Address): MeterLine {
    const meter = this.list.find((m) => m.address === address);
    if (!meter) throw new TypeError(`no meter ${address} on this bus`);
    return this.perMeter.get(meter)!;
  }

  private onFrame(stream: Duplex, frame: Frame, raw: Uint8Array): void {
    // A reply on the line is not a request: our own echo, or another meter's answer.
    if (frame.control & DIR_REPLY) return;
    this.totals.requests++;
    this.totals.lineBytes += raw.length;
    const now = this.clock.now();
    const heard = this.heardBy(frame.address);
    // Write address (0x15 in 2007, 0x0A in 1997) may change who answers to what.
    const fn = frame.control & FUNCTION_MASK;
    if (fn === 0x15 || fn === 0x0a) this.byAddress = undefined;
    if (this.busFaults.echo || heard.some((m) => this.perMeter.get(m)!.faults.echo)) write(stream, raw);
    if (this.log.isLevelEnabled('debug'))
      this.log.debug({ address: frame.address, control: frame.control, meters: heard.length }, 'request');
    for (const meter of heard) {
      const line = this.perMeter.get(meter)!;
      line.requests++;
      const faults = { ...this.busFaults, ...definedOnly(line.faults) };
      if (faults.silent) continue;
      let replies: Frame[];
      try {
        replies = meter.handle(frame, now);
      } catch (err) {
        this.log.error({ meter: meter.address, err: (err as Error).message }, 'simulated meter failed on a request');
        continue;
      }
      for (const reply of replies) this.send(stream, meter, line, reply, faults, raw.length);
    }
  }

  private heardBy(address: Address): SimulatedMeter[] {
    if (address.includes('A') || address === '999999999999') return this.list.filter((m) => m.hears(address));
    if (!this.byAddress) {
      this.byAddress = new Map();
      for (const m of this.list) this.byAddress.set(m.address, [...(this.byAddress.get(m.address) ?? []), m]);
    }
    return (this.byAddress.get(address) ?? []).filter((m) => m.hears(address));
  }

  private send(stream: Duplex, meter: SimulatedMeter, line: MeterLine, reply: Frame, faults: BusFaults, requestBytes = 0): void {
    if (line.drop > 0 || this.busDrop > 0) {
      if (line.drop > 0) line.drop--;
      else this.busDrop--;
      this.totals.dropped++;
      return;
    }
    let bytes = encodeFrame(reply, { preamble: PREAMBLE_BYTES });
    if (line.corrupt > 0 || this.busCorrupt > 0) {
      if (line.corrupt > 0) line.corrupt--;
      else this.busCorrupt--;
      bytes[bytes.length - 2]! ^= 0xff;
      this.totals.corrupted++;
    }
    if (faults.noise) {
      const noise = noiseBytes(faults.noise === true ? 1 + Math.floor(Math.random() * 8) : faults.noise);
      const withNoise = new Uint8Array(noise.length + bytes.length);
      withNoise.set(noise);
      withNoise.set(bytes, noise.length);
      bytes = withNoise;
    }
    line.replies++;
    this.totals.replies++;
    this.totals.lineBytes += bytes.length;
    const onTheLine = this.emulateLine ? (requestBytes + bytes.length) * this.emulateLine.byteMs + this.emulateLine.turnaroundMs : 0;
    const delay = (faults.delayMs ?? meter.delayMs) + onTheLine;
    if (delay <= 0) {
      write(stream, bytes);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      write(stream, bytes);
    }, delay);
    this.timers.add(timer);
  }
}

function write(stream: Duplex, bytes: Uint8Array): void {
  if (!stream.destroyed && stream.writable) stream.write(bytes);
}

/** Random bytes that can never start a frame (no 68H), so a correct decoder discards all of them. */
function noiseBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let b = Math.floor(Math.random() * 256);
    if (b === START) b = 0x00;
    out[i] = b;
  }
  return out;
}

function definedOnly(f: BusFaults): BusFaults {
  return Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as BusFaults;
}

function checkFaults(f: BusFaults): BusFaults {
  if (f.delayMs !== undefined && (!Number.isFinite(f.delayMs) || f.delayMs < 0))
    throw new TypeError('delayMs is not a number of milliseconds >= 0');
  if (typeof f.noise === 'number' && (!Number.isInteger(f.noise) || f.noise < 0 || f.noise > 255))
    throw new TypeError('noise is not a byte count from 0 to 255');
  return f;
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new TypeError('n is not a whole number of replies >= 0');
}
