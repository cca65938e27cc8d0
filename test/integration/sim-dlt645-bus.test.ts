import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import { SerialPort } from 'serialport';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  decodeValue,
  Dlt645Decoder,
  encodeFrame,
  findDataItem,
  parsePassword,
  parseReadReply,
  plainValue,
  readData,
  remoteControl,
  meterTimeOf,
  type DecodeEvent,
  type Frame,
} from '../../protocols/dlt645/index.js';
import { runDlt645SimCommand } from '../../src/sim/dlt645/cli.js';
import { SimulatedBus, SimulatedMeter, startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const M1 = '000000000001';
const M2 = '000000000002';
/** Long enough that a reply that has not come by then is not coming; used only to wait for silence, never asserted. */
const QUIET_MS = 300;

/** The gateway side of a line: writes requests with a 4×FE preamble, decodes whatever comes back. */
class Master {
  private readonly decoder = new Dlt645Decoder();
  private events: DecodeEvent[] = [];
  private wake: (() => void) | undefined;

  constructor(private readonly stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      this.events.push(...this.decoder.push(chunk));
      this.wake?.();
    });
  }

  send(request: Frame): void {
    this.stream.write(encodeFrame(request, { preamble: 4 }));
  }

  /** Everything decoded until `frames` frames have arrived, or until `timeoutMs` passes without them. */
  async collect(frames: number, timeoutMs = 3000): Promise<DecodeEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.filter((e) => e.kind === 'frame').length < frames && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.wake = undefined;
    const out = this.events;
    this.events = [];
    return out;
  }

  async ask(request: Frame): Promise<Frame> {
    this.send(request);
    const frames = framesOf(await this.collect(1));
    expect(frames).toHaveLength(1);
    return frames[0]!;
  }

  async read(address: string, di: string): Promise<unknown> {
    const reply = await this.ask(readData(address, di));
    expect(reply.address).toBe(address);
    const r = parseReadReply(reply);
    if (!r.ok) throw new Error(r.error.message);
    const v = decodeValue(findDataItem(di)!.format, r.value.value);
    if (!v.ok) throw new Error(v.error.message);
    return plainValue(v.value);
  }
}

const framesOf = (events: DecodeEvent[]) => events.flatMap((e) => (e.kind === 'frame' ? [e.frame] : []));
const discardsOf = (events: DecodeEvent[]) => events.flatMap((e) => (e.kind === 'discard' ? [e] : []));

const meters = () => [
  new SimulatedMeter({ address: M1, kind: 'money', balance: 50, registers: { 'voltage.a': 221.3 } }),
  new SimulatedMeter({ address: M2, kind: 'money', balance: 7.25, registers: { 'voltage.a': 219.8 } }),
];

describe('SimulatedBus over a real pty pair', () => {
  let pty: PtyPair;
  let port: SerialPort;
  let bus: SimulatedBus;
  let master: Master;

  beforeAll(async () => {
    pty = await createPtyPair();
  });
  afterAll(async () => {
    await pty.close();
  });

  beforeEach(async () => {
    bus = new SimulatedBus(meters());
    await bus.attach(pty.b);
    port = new SerialPort({ path: pty.a, baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1, lock: false, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    master = new Master(port);
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => port.close(() => resolve()));
    await bus.close();
  });

  it('answers a read with the value the meter holds', async () => {
    expect(await master.read(M1, '00900200')).toBe(50);
  });

  it('lets two meters share the line, each answering only its own address', async () => {
    expect(await master.read(M1, '02010100')).toBe(221.3);
    expect(await master.read(M2, '02010100')).toBe(219.8);
    master.send(readData('000000000003', '02010100'));
    expect(framesOf(await master.collect(1, QUIET_MS))).toEqual([]);
    const stats = bus.stats();
    expect(stats.meters[M1]).toEqual({ requests: 1, replies: 1 });
    expect(stats.meters[M2]).toEqual({ requests: 1, replies: 1 });
    expect(stats.requests).toBe(3);
  });

  it('delays a meter reply by delayMs: an undelayed meter asked later answers first', async () => {
    bus.setFaults({ delayMs: 400 }, M1);
    master.send(readData(M1, '00900200'));
    master.send(readData(M2, '00900200'));
    const frames = framesOf(await master.collect(2));
    expect(frames.map((f) => f.address)).toEqual([M2, M1]);
  });

  it('gives no reply from a silent meter, and answers again once the fault is cleared', async () => {
    bus.setFaults({ silent: true }, M1);
    master.send(readData(M1, '00900200'));
    expect(framesOf(await master.collect(1, QUIET_MS))).toEqual([]);
    bus.setFaults({ silent: false }, M1);
    expect(await master.read(M1, '00900200')).toBe(50);
  });

  it('corruptNext sends a frame the decoder rejects as bad-checksum, then answers cleanly', async () => {
    bus.corruptNext(1);
    master.send(readData(M1, '00900200'));
    const events = await master.collect(1, QUIET_MS);
    expect(framesOf(events)).toEqual([]);
    expect(discardsOf(events).map((d) => d.reason)).toContain('bad-checksum');
    expect(await master.read(M1, '00900200')).toBe(50);
  });

  it('dropNext loses the reply but the meter still acts on the command', async () => {
    const password = parsePassword('02000000');
    if (!password.ok) throw new Error();
    bus.dropNext(1, M2);
    master.send(remoteControl(M2, password.value, '00000001', 'trip', meterTimeOf(new Date(Date.now() + 3_600_000))));
    expect(framesOf(await master.collect(1, QUIET_MS))).toEqual([]);
    expect(((await master.read(M2, '04000503')) as number) & (1 << 4)).toBe(1 << 4);
    expect(bus.stats().dropped).toBe(1);
  });

  it('puts noise before each reply: the decoder discards it and the frame still arrives', async () => {
    bus.setFaults({ noise: 12 });
    master.send(readData(M1, '00900200'));
    const events = await master.collect(1);
    expect(framesOf(events)).toHaveLength(1);
    expect(discardsOf(events).some((d) => d.reason === 'noise')).toBe(true);
  });

  it('injects a burst of noise on demand, which the decoder discards before the next reply', async () => {
    bus.injectNoise(32);
    master.send(readData(M1, '00900200'));
    const events = await master.collect(1);
    expect(framesOf(events)).toHaveLength(1);
    const discarded = discardsOf(events).reduce((n, d) => n + d.bytes.length, 0);
    // FE bytes at the end of the burst pass as the reply's wake-up preamble, so up to 32 are counted as noise.
    expect(discarded).toBeGreaterThan(0);
    expect(discarded).toBeLessThanOrEqual(32);
  });

  it('echoes the request (D7 = 0) before the reply when echo is on, as some RS-485 adapters do', async () => {
    bus.setFaults({ echo: true });
    master.send(readData(M1, '00900200'));
    const frames = framesOf(await master.collect(2));
    expect(frames.map((f) => [f.address, f.control])).toEqual([
      [M1, 0x11],
      [M1, 0x91],
    ]);
  });
});

describe('the simulator over TCP', () => {
  let sim: Dlt645Simulator;
  let socket: Socket;

  beforeAll(async () => {
    sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [{ address: M1, kind: 'energy', balance: 88.8 }, { address: M2 }] } });
    socket = connect(sim.address!.tcpPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  });
  afterAll(async () => {
    socket.destroy();
    await sim.close();
  });

  it('answers reads on a TCP connection, one line per connection', async () => {
    const master = new Master(socket);
    expect(await master.read(M1, '00900100')).toBe(88.8);
    expect(await master.read(M2, '04000401')).toBe(M2);
    expect([...sim.meters.keys()]).toEqual([M1, M2]);
  });
});

describe('runDlt645SimCommand', () => {
  it('prints where it listens and the meter addresses, and stops when told', async () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c: Buffer) => (printed += c.toString()));
    const stop = new AbortController();
    const running = runDlt645SimCommand({ tcp: 0, count: 2, delay: '0' }, { stdout: out, signal: stop.signal });
    while (!printed.includes('\n')) await new Promise((r) => setTimeout(r, 10));
    expect(printed).toMatch(/^dlt645 simulator on tcp 127\.0\.0\.1:\d+ with 2 meters: 000000000001 000000000002\n$/);
    stop.abort();
    await running;
  });

  it('refuses --pty and --tcp together with a usage error', async () => {
    await expect(runDlt645SimCommand({ pty: '/tmp/x', tcp: 1 })).rejects.toThrow(/exactly one of --pty PATH or --tcp PORT/);
  });
});
