import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  openBus,
  parsePortSpec,
  type BusState,
  type DecodeEvent,
  type FrameBus,
  type FrameRequest,
  type LineSettings,
  type StreamDecoder,
} from '../../src/bus/index.js';
import { freePort } from '../helpers/free-port.js';

/** The test protocol: one frame per line, `<addr>:<text>\n`. Any other line is noise. */
interface LineFrame {
  addr: string;
  text: string;
}

class LineDecoder implements StreamDecoder<LineFrame> {
  #buffered = '';

  push(chunk: Uint8Array): DecodeEvent<LineFrame>[] {
    this.#buffered += Buffer.from(chunk).toString('latin1');
    const events: DecodeEvent<LineFrame>[] = [];
    for (let end = this.#buffered.indexOf('\n'); end >= 0; end = this.#buffered.indexOf('\n')) {
      const line = this.#buffered.slice(0, end);
      const raw = Buffer.from(this.#buffered.slice(0, end + 1), 'latin1');
      this.#buffered = this.#buffered.slice(end + 1);
      const m = /^([0-9a-z]+):([ -~]*)$/i.exec(line);
      events.push(
        m ? { kind: 'frame', frame: { addr: m[1]!, text: m[2]! }, raw } : { kind: 'discard', bytes: raw, reason: 'not <addr>:<text>' },
      );
    }
    return events;
  }

  reset(): void {
    this.#buffered = '';
  }
}

/**
 * A serial-over-Ethernet converter in TCP server mode with meters behind it: answers `<addr>:ok <text>`
 * unless told to stay silent. Can be switched off and on again on the same port.
 */
class ConverterPeer {
  readonly lines: string[] = [];
  silent = false;
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  #waiters: Array<() => void> = [];

  constructor(readonly port: number) {}

  async start(): Promise<void> {
    const server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => undefined);
      let buffered = '';
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
          const line = buffered.slice(0, end);
          buffered = buffered.slice(end + 1);
          this.lines.push(line);
          const [addr, text] = line.split(':');
          if (!this.silent) socket.write(`${addr}:ok ${text}\n`);
        }
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const wake of waiters) wake();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
  }

  /** Switches the converter off: every connection reset, nothing listening. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async received(line: string): Promise<void> {
    while (!this.lines.includes(line)) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

const LINE: LineSettings = { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 };

function ask(addr: string, text: string, extra: Partial<FrameRequest<LineFrame>> = {}): FrameRequest<LineFrame> {
  return {
    bytes: Buffer.from(`${addr}:${text}\n`, 'latin1'),
    match: (f) => f.addr === addr,
    timeoutMs: 2000,
    retries: 0,
    label: `${addr} ${text}`,
    ...extra,
  };
}

function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (err: unknown) => err,
  );
}

function nextState(bus: FrameBus<LineFrame>, state: BusState): Promise<string> {
  return new Promise((resolve) => {
    const listen = (e: { state: BusState; reason: string }): void => {
      if (e.state !== state) return;
      bus.off('state', listen);
      resolve(e.reason);
    };
    bus.on('state', listen);
  });
}

async function converterBus(port: number): Promise<FrameBus<LineFrame>> {
  const bus = await openBus({ id: 'bus-net', port: `tcp://127.0.0.1:${port}`, line: LINE, decoder: new LineDecoder(), gapMs: 20 });
  onTestFinished(() => bus.close());
  return bus;
}

describe('FrameBus over a serial-over-Ethernet converter (node:net)', () => {
  const peers: ConverterPeer[] = [];
  afterEach(async () => {
    for (const peer of peers.splice(0)) await peer.stop();
  });

  async function converter(): Promise<ConverterPeer> {
    const peer = new ConverterPeer(await freePort());
    peers.push(peer);
    await peer.start();
    return peer;
  }

  it('picks TCP for a tcp:// port spec and exchanges request and reply', async () => {
    const peer = await converter();
    const bus = await converterBus(peer.port);
    await expect(bus.request('poll', ask('1', 'read energy'))).resolves.toEqual({ addr: '1', text: 'ok read energy' });
    expect(bus.stats()).toMatchObject({ port: `tcp://127.0.0.1:${peer.port}`, state: 'up', requests: 1 });
  });

  it('says the converter refused the connection when nothing listens on the port', async () => {
    const port = await freePort();
    const failed = openBus({ id: 'bus-net', port: `tcp://127.0.0.1:${port}`, line: LINE, decoder: new LineDecoder() });
    await expect(failed).rejects.toMatchObject({ code: 'PORT_OPEN_FAILED' });
    await expect(failed).rejects.toThrow(`cannot connect to tcp://127.0.0.1:${port}: the converter refused the connection`);
  });

  it('fails the request on the wire with BUS_DOWN when the converter goes away, and reconnects when it returns', async () => {
    const peer = await converter();
    const bus = await converterBus(peer.port);
    await expect(bus.request('poll', ask('1', 'before'))).resolves.toEqual({ addr: '1', text: 'ok before' });

    peer.silent = true;
    const onWire = failureOf(bus.request('credit', ask('1', 'top-up', { timeoutMs: 15_000 })));
    await peer.received('1:top-up');
    const down = nextState(bus, 'down');
    await peer.stop();
    expect(await onWire).toMatchObject({ code: 'BUS_DOWN' });
    await down;
    await expect(bus.request('poll', ask('1', 'while down'))).rejects.toMatchObject({ code: 'BUS_DOWN' });

    const up = nextState(bus, 'up');
    peer.silent = false;
    await peer.start();
    await up;
    await expect(bus.request('poll', ask('1', 'after'))).resolves.toEqual({ addr: '1', text: 'ok after' });
    expect(bus.stats()).toMatchObject({ state: 'up', reconnects: 1 });
  });
});

describe('parsePortSpec', () => {
  it('reads tcp://host:port as a converter and anything else as a device path', () => {
    expect(parsePortSpec('tcp://10.0.0.7:8899')).toEqual({ kind: 'tcp', host: '10.0.0.7', port: 8899 });
    expect(parsePortSpec('tcp://[fe80::1]:4001')).toEqual({ kind: 'tcp', host: 'fe80::1', port: 4001 });
    expect(parsePortSpec('tcp://converter.local:8899/')).toEqual({ kind: 'tcp', host: 'converter.local', port: 8899 });
    expect(parsePortSpec('/dev/ttyUSB0')).toEqual({ kind: 'serial', path: '/dev/ttyUSB0' });
    expect(parsePortSpec('/dev/serial/by-id/usb-FTDI_FT232R-if00-port0')).toEqual({
      kind: 'serial',
      path: '/dev/serial/by-id/usb-FTDI_FT232R-if00-port0',
    });
  });

  it('explains what is wrong with a spec it cannot use', () => {
    expect(() => parsePortSpec('')).toThrow(/is empty/);
    expect(() => parsePortSpec('tcp://10.0.0.7')).toThrow(/port number is missing/);
    expect(() => parsePortSpec('tcp://10.0.0.7:70000')).toThrow(/outside 1–65535/);
    expect(() => parsePortSpec('tcp://10.0.0.7:0')).toThrow(/outside 1–65535/);
    expect(() => parsePortSpec('udp://10.0.0.7:8899')).toThrow(/scheme "udp" is not supported/);
    expect(() => parsePortSpec('10.0.0.7:8899')).toThrow(/write tcp:\/\/10\.0\.0\.7:8899/);
    expect(() => parsePortSpec('tcp://10.0.0.7:8899/ttyS1')).toThrow(/only tcp:\/\/host:port/);
    expect(() => parsePortSpec('udp://x:1')).toThrow(expect.objectContaining({ code: 'PORT_SPEC_INVALID' }));
  });
});
