import { SerialPort } from 'serialport';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  openBus,
  type BusState,
  type FrameBus,
  type FrameRequest,
  type LineSettings,
  type StreamDecoder,
  type DecodeEvent,
} from '../../src/bus/index.js';
import { createPtyPair, type PtyBridge, type PtyPair } from '../helpers/pty.js';

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

type Send = { text: string; afterMs?: number };
type Responder = (line: string, nth: number) => Send[];

/** Meters answer `<addr>:ok <text>` to `<addr>:<text>`. */
const answerEverything: Responder = (line) => {
  const [addr, text] = line.split(':');
  return [{ text: `${addr}:ok ${text}\n` }];
};

/** The far end of the cable: simulated meters on the other pty, over the real serialport. */
class LinePeer {
  /** `rx <line>` / `tx <line>` in the order they happened on the wire. */
  readonly wire: string[] = [];
  readonly arrivals: Array<{ line: string; at: number }> = [];
  respond: Responder = answerEverything;
  #port: SerialPort | undefined;
  #buffered = '';
  #timers = new Set<NodeJS.Timeout>();
  #waiters: Array<() => void> = [];

  constructor(readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 2400, parity: 'even', autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (chunk: Buffer) => this.#onData(chunk));
    // The bridge going away closes this end too; the test reopens it.
    port.on('close', () => (this.#port = undefined));
    port.on('error', () => undefined);
    this.#port = port;
  }

  async close(): Promise<void> {
    this.reset();
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  reset(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.wire.length = 0;
    this.arrivals.length = 0;
    this.respond = answerEverything;
  }

  /** Writes bytes unprompted (a meter talking out of turn, noise). */
  send(text: string): void {
    this.#port?.write(Buffer.from(text, 'latin1'));
    this.wire.push(`tx ${text.trimEnd()}`);
  }

  count(line: string): number {
    return this.arrivals.filter((a) => a.line === line).length;
  }

  /** Resolves once `line` has arrived `times` times. */
  async received(line: string, times = 1): Promise<void> {
    while (this.count(line) < times) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  #onData(chunk: Buffer): void {
    this.#buffered += chunk.toString('latin1');
    for (let end = this.#buffered.indexOf('\n'); end >= 0; end = this.#buffered.indexOf('\n')) {
      const line = this.#buffered.slice(0, end);
      this.#buffered = this.#buffered.slice(end + 1);
      this.arrivals.push({ line, at: performance.now() });
      this.wire.push(`rx ${line}`);
      for (const { text, afterMs = 0 } of this.respond(line, this.count(line))) {
        if (afterMs === 0) this.send(text);
        else {
          const timer = setTimeout(() => {
            this.#timers.delete(timer);
            this.send(text);
          }, afterMs);
          this.#timers.add(timer);
        }
      }
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
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

async function busOn(path: string, id = 'bus-t'): Promise<FrameBus<LineFrame>> {
  const bus = await openBus({ id, port: path, line: LINE, decoder: new LineDecoder(), gapMs: 20 });
  onTestFinished(() => bus.close());
  return bus;
}

/** What a promise rejected with (it must reject). */
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

describe('FrameBus over a serial port (real serialport on a pty pair)', () => {
  let pty: PtyPair;
  let peer: LinePeer;

  beforeAll(async () => {
    pty = await createPtyPair();
    peer = new LinePeer(pty.b);
    await peer.open();
  });
  afterAll(async () => {
    await peer?.close();
    await pty?.close();
  });
  beforeEach(() => peer.reset());

  it('sends a request and resolves with the reply frame', async () => {
    const bus = await busOn(pty.a);
    const reply = await bus.request('poll', ask('1', 'read energy'));
    expect(reply).toEqual({ addr: '1', text: 'ok read energy' });
    expect(peer.wire).toEqual(['rx 1:read energy', 'tx 1:ok read energy']);
    expect(bus.stats()).toMatchObject({
      requests: 1,
      retries: 0,
      timeouts: 0,
      stray: 0,
      late: 0,
      completed: 1,
      state: 'up',
      port: `${pty.a} 2400 8E1`,
    });
  });

  it('gives each of two queued callers its own reply, one request on the wire at a time', async () => {
    const bus = await busOn(pty.a);
    peer.respond = (line) => [{ text: `${line.split(':')[0]}:ok ${line.split(':')[1]}\n`, afterMs: 100 }];
    const [one, two] = await Promise.all([bus.request('poll', ask('1', 'balance')), bus.request('poll', ask('2', 'balance'))]);
    expect(one).toEqual({ addr: '1', text: 'ok balance' });
    expect(two).toEqual({ addr: '2', text: 'ok balance' });
    expect(peer.wire).toEqual(['rx 1:balance', 'tx 1:ok balance', 'rx 2:balance', 'tx 2:ok balance']);
  });

  it('never delivers a stray frame from another meter to the caller, and counts it', async () => {
    const bus = await busOn(pty.a);
    peer.respond = () => [{ text: '9:I am meter 9\n' }, { text: '1:ok balance\n', afterMs: 100 }];
    const reply = await bus.request('poll', ask('1', 'balance'));
    expect(reply).toEqual({ addr: '1', text: 'ok balance' });
    expect(bus.stats()).toMatchObject({ stray: 1, late: 0 });
  });

  it('drops a reply that arrives after its timeout, counts it as late, and does not give it to the next request', async () => {
    const bus = await busOn(pty.a);
    peer.respond = () => [{ text: '1:stale answer\n', afterMs: 800 }];
    await expect(bus.request('poll', ask('1', 'balance', { timeoutMs: 300 }))).rejects.toMatchObject({ code: 'BUS_TIMEOUT' });
    await expect.poll(() => bus.stats().late, { timeout: 10_000 }).toBe(1);

    peer.respond = () => [{ text: '1:fresh answer\n' }];
    await expect(bus.request('poll', ask('1', 'balance'))).resolves.toEqual({ addr: '1', text: 'fresh answer' });
    expect(bus.stats()).toMatchObject({ late: 1, timeouts: 1 });
  });

  it('sends the request again after a reply was lost, and resolves with the reply to the retry', async () => {
    const bus = await busOn(pty.a);
    peer.respond = (line, nth) => (nth === 1 ? [] : answerEverything(line, nth));
    const reply = await bus.request('poll', ask('1', 'balance', { timeoutMs: 400, retries: 2 }));
    expect(reply).toEqual({ addr: '1', text: 'ok balance' });
    expect(peer.count('1:balance')).toBe(2);
    expect(bus.stats()).toMatchObject({ requests: 1, retries: 1, timeouts: 0 });
  });

  it('rejects with BUS_TIMEOUT naming the bus, the port and the attempts when every attempt goes unanswered', async () => {
    const bus = await busOn(pty.a, 'bus7');
    peer.respond = () => [];
    const failed = bus.request('poll', ask('1', 'balance', { timeoutMs: 300, retries: 2 }));
    await expect(failed).rejects.toMatchObject({ code: 'BUS_TIMEOUT' });
    await expect(failed).rejects.toThrow(`no reply to "1 balance" within 300 ms on bus7 (${pty.a} 2400 8E1) after 3 attempts`);
    expect(peer.count('1:balance')).toBe(3);
    expect(bus.stats()).toMatchObject({ requests: 1, retries: 2, timeouts: 1, failed: 1 });
  });

  it('waits for a slow meter that is still sending past the first deadline', async () => {
    const bus = await busOn(pty.a);
    // 2.4 s of trickle against a 1 s deadline that each byte re-arms (cap 3 s)
    const pieces = ['1:', 'ok ', 'slow ', 'meter ', 'reply', '\n'];
    peer.respond = () => pieces.map((text, i) => ({ text, afterMs: 1 + i * 400 }));
    await expect(bus.request('poll', ask('1', 'balance', { timeoutMs: 1000 }))).resolves.toEqual({
      addr: '1',
      text: 'ok slow meter reply',
    });
  });

  it('does not let a meter that never stops sending hold the bus past three times the timeout', async () => {
    const bus = await busOn(pty.a);
    peer.respond = () => Array.from({ length: 60 }, (_, i) => ({ text: 'x', afterMs: 1 + i * 50 }));
    await expect(bus.request('poll', ask('1', 'balance', { timeoutMs: 300 }))).rejects.toMatchObject({ code: 'BUS_TIMEOUT' });
  });

  it('holds the bus for settleMs after a broadcast, which resolves with no frame', async () => {
    const bus = await busOn(pty.a);
    const broadcast = bus.request('operator', {
      bytes: Buffer.from('0:time 2025-01-01T00:00:00\n'),
      timeoutMs: 0,
      retries: 0,
      settleMs: 400,
      label: 'time sync',
    });
    const next = bus.request('operator', ask('1', 'balance'));
    await expect(broadcast).resolves.toBeUndefined();
    await next;
    const [sent, after] = peer.arrivals;
    expect(sent?.line).toBe('0:time 2025-01-01T00:00:00');
    expect(after?.line).toBe('1:balance');
    // Lower bound only; 20 ms of slack for timer rounding between two processes.
    expect(after!.at - sent!.at).toBeGreaterThanOrEqual(380);
  });

  it('counts noise bytes the decoder throws away and still finds the reply behind them', async () => {
    const bus = await busOn(pty.a);
    const noise = '\x00\xff\xfe garbage\n';
    peer.respond = () => [{ text: noise }, { text: '1:ok balance\n' }];
    await expect(bus.request('poll', ask('1', 'balance'))).resolves.toEqual({ addr: '1', text: 'ok balance' });
    expect(bus.stats().discardedBytes).toBe(Buffer.byteLength(noise, 'latin1'));
  });

  it('keeps other jobs off the wire for the whole of a session', async () => {
    const bus = await busOn(pty.a);
    peer.respond = (line) => [{ text: `${line.split(':')[0]}:ok ${line.split(':')[1]}\n`, afterMs: 50 }];
    let poll: Promise<unknown> | undefined;
    const texts = await bus.session('credit', async (tx) => {
      const first = await tx.request(ask('1', 'step 1'));
      poll = bus.request('operator', ask('2', 'status'));
      const second = await tx.request(ask('1', 'step 2'));
      return [first?.text, second?.text];
    });
    await poll;
    expect(texts).toEqual(['ok step 1', 'ok step 2']);
    expect(peer.arrivals.map((a) => a.line)).toEqual(['1:step 1', '1:step 2', '2:status']);
  });

  it('rejects ABORTED when the caller gives up on a request on the wire, and serves the next one', async () => {
    const bus = await busOn(pty.a);
    peer.respond = (line) => (line === '1:hang' ? [] : answerEverything(line, 1));
    const controller = new AbortController();
    const hung = bus.request('operator', ask('1', 'hang', { timeoutMs: 10_000, signal: controller.signal }));
    await peer.received('1:hang');
    controller.abort();
    await expect(hung).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(bus.request('operator', ask('2', 'ping'))).resolves.toEqual({ addr: '2', text: 'ok ping' });
  });

  it('refuses to open a port another process already holds, saying so', async () => {
    await busOn(pty.a);
    const second = openBus({ id: 'bus-2', port: pty.a, line: LINE, decoder: new LineDecoder() });
    await expect(second).rejects.toMatchObject({ code: 'PORT_OPEN_FAILED' });
    await expect(second).rejects.toThrow(/another program holds it/);
  });

  it('says the adapter is missing when the device path does not exist', async () => {
    const missing = openBus({ id: 'bus-x', port: `${pty.a}-missing`, line: LINE, decoder: new LineDecoder() });
    await expect(missing).rejects.toMatchObject({ code: 'PORT_OPEN_FAILED' });
    await expect(missing).rejects.toThrow(/does not exist: is the USB adapter plugged in/);
  });

  it('lets the request on the wire finish when closed, refuses the queued ones with BUS_CLOSED', async () => {
    const bus = await busOn(pty.a);
    peer.respond = (line) => [{ text: `${line.split(':')[0]}:ok ${line.split(':')[1]}\n`, afterMs: 200 }];
    const onWire = bus.request('credit', ask('1', 'top-up'));
    const queued = failureOf(bus.request('poll', ask('2', 'balance')));
    await peer.received('1:top-up');
    const closed = bus.close();
    await expect(onWire).resolves.toEqual({ addr: '1', text: 'ok top-up' });
    expect(await queued).toMatchObject({ code: 'BUS_CLOSED' });
    await closed;
    expect(peer.count('2:balance')).toBe(0);
  });

  it('refuses requests with BUS_CLOSED after close()', async () => {
    const bus = await busOn(pty.a);
    await bus.close();
    await expect(bus.request('operator', ask('1', 'balance'))).rejects.toMatchObject({ code: 'BUS_CLOSED' });
    expect(bus.state).toBe('closed');
  });
});

const bridges: PtyBridge[] = ['socat', 'python'];

describe.each(bridges)('a port that vanishes and returns (%s bridge)', (bridge) => {
  let pty: PtyPair;
  let peer: LinePeer;

  beforeAll(async () => {
    pty = await createPtyPair(undefined, { bridge });
    peer = new LinePeer(pty.b);
    await peer.open();
  });
  afterAll(async () => {
    await peer?.close();
    await pty?.close();
  });

  it('fails the request on the wire and the queued ones with BUS_DOWN, fails fast while down, and works again once the port is back', async () => {
    const bus = await busOn(pty.a, 'bus3');
    await expect(bus.request('poll', ask('1', 'before'))).resolves.toEqual({ addr: '1', text: 'ok before' });

    peer.respond = () => [];
    // Caught at once: they reject while the test is still waiting for the bridge to die.
    const onWire = failureOf(bus.request('credit', ask('1', 'top-up', { timeoutMs: 15_000 })));
    const queued = failureOf(bus.request('poll', ask('2', 'balance', { timeoutMs: 15_000 })));
    await peer.received('1:top-up');
    const down = nextState(bus, 'down');
    await pty.stop();

    expect(await onWire).toMatchObject({
      code: 'BUS_DOWN',
      message: expect.stringMatching(new RegExp(`^bus3 lost its port ${pty.a} 2400 8E1 .*may or may not have reached the meter`)),
    });
    expect(await queued).toMatchObject({ code: 'BUS_DOWN' });
    expect(await down).not.toBe('');
    expect(bus.state).toBe('down');
    await expect(bus.request('poll', ask('1', 'while down'))).rejects.toMatchObject({ code: 'BUS_DOWN' });
    await expect(bus.session('operator', async () => 'never')).rejects.toMatchObject({ code: 'BUS_DOWN' });

    const up = nextState(bus, 'up');
    await pty.start();
    await peer.open();
    peer.respond = answerEverything;
    await up;
    await expect(bus.request('poll', ask('1', 'after'))).resolves.toEqual({ addr: '1', text: 'ok after' });
    expect(bus.stats()).toMatchObject({ state: 'up', reconnects: 1 });
  });
});
