import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SerialPort } from 'serialport';
import {
  CardFrameDecoder,
  isCpuKind,
  replyTo,
  requestOf,
  SLE4442_MAIN_SIZE,
  SLE4442_PROTECTION_SIZE,
  SLE4442_SECURITY_SIZE,
  type CardFamily,
  type CardFrame,
  type CardOp,
  type CardRequest,
  type EncoderAnswer,
} from '../../../protocols/card/index.js';
import { silentLogger, type Logger } from '../../log.js';
import { openSerialLine } from '../cli-support.js';
import { VirtualCpuCard, type VirtualCard } from './card.js';

export interface SimulatedEncoderOptions {
  readonly framing: CardFamily;
  readonly logger?: Logger;
  /** Motorised encoder: answers eject and pushes the card out. Default true. */
  readonly canEject?: boolean;
  /** What READER_INFO answers (STX only). */
  readonly info?: { readonly model: string; readonly firmware: string; readonly serial: string };
  /** Serial settings when attaching a port path (the pty ignores them). */
  readonly baudRate?: number;
}

export type AttachedEncoder =
  | { readonly kind: 'serial'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Pull the card out part-way through a write (see `removeDuringNextWrite`). */
export interface RemovalPlan {
  /** Writes to let through untouched before the one that is cut. Default 0: the next write is cut. */
  readonly skipWrites?: number;
  /** Bytes of the cut write that reach the card before it is pulled. Default: half of them. */
  readonly afterBytes?: number;
}

/**
 * A counter card encoder speaking STAR or meterd's STX dialect on a pty or TCP, with one card slot.
 * The card is a VirtualSle4442 or VirtualCpuCard that the test inserts, removes, locks, or pulls out mid-write.
 *
 * @example
 * const sim = new SimulatedEncoder({ framing: 'star' });
 * await sim.attach(pty.b);
 * sim.insert(cards.ours(layout, { meterNumber: '000012345678', purchaseCount: 3 }));
 * sim.removeDuringNextWrite({ afterBytes: 4 });
 */
export class SimulatedEncoder {
  readonly framing: CardFamily;
  readonly #log: Logger;
  readonly #canEject: boolean;
  readonly #info: { model: string; firmware: string; serial: string };
  readonly #baudRate: number;
  #card: VirtualCard | undefined;
  #powered = false;
  #removal: { skip: number; afterBytes: number | undefined } | undefined;
  #dropReplies = 0;
  readonly #dropRepliesTo = new Map<CardOp, number>();
  #corruptReplies = 0;
  #silent = false;
  #requests: Partial<Record<CardOp, number>> = {};
  #beeps = 0;
  #discarded = 0;
  readonly #streams = new Set<Duplex>();
  readonly #servers = new Set<Server>();
  readonly #ports = new Set<SerialPort>();
  #closed = false;

  constructor(opts: SimulatedEncoderOptions) {
    if (opts.framing !== 'star' && opts.framing !== 'stx') throw new TypeError(`framing is not star or stx: ${String(opts.framing)}`);
    this.framing = opts.framing;
    this.#log = (opts.logger ?? silentLogger).child({ component: 'sim-encoder', framing: opts.framing });
    this.#canEject = opts.canEject ?? true;
    this.#info = { ...{ model: 'meterd-sim-encoder', firmware: '1.0', serial: 'SIM0001' }, ...opts.info };
    this.#baudRate = opts.baudRate ?? 9600;
  }

  /** The card in the slot, if any. */
  get card(): VirtualCard | undefined {
    return this.#card;
  }

  /** Puts a card in the slot (replacing any), unpowered. */
  insert(card: VirtualCard): void {
    this.#card?.reset();
    this.#card = card;
    this.#powered = false;
  }

  /** Takes the card out; returns it so a test can look at what was written. */
  remove(): VirtualCard | undefined {
    const card = this.#card;
    card?.reset();
    this.#card = undefined;
    this.#powered = false;
    return card;
  }

  /** The cashier pulls the card while a write is on its way: the first bytes reach the card, the rest do not. */
  removeDuringNextWrite(plan: RemovalPlan = {}): void {
    this.#removal = { skip: plan.skipWrites ?? 0, afterBytes: plan.afterBytes };
  }

  /** Locks the card in the slot for good (error counter 0), as three wrong PSCs would. */
  lock(): void {
    const card = this.#card;
    if (!card || card instanceof VirtualCpuCard) throw new TypeError('lock() needs an SLE4442 card in the slot');
    card.lock();
  }

  /** The next `n` requests (of operation `op`, or of any) are carried out but their replies are lost. */
  dropNextReply(n = 1, op?: CardOp): void {
    if (op === undefined) this.#dropReplies += n;
    else this.#dropRepliesTo.set(op, (this.#dropRepliesTo.get(op) ?? 0) + n);
  }

  /** The next `n` replies go out with a broken checksum. */
  corruptNextReply(n = 1): void {
    this.#corruptReplies += n;
  }

  /** Answer nothing at all (unpowered encoder, wrong port). */
  setSilent(silent: boolean): void {
    this.#silent = silent;
  }

  /** Requests heard, by operation, and other counters. */
  stats(): { requests: Partial<Record<CardOp, number>>; beeps: number; discardedBytes: number } {
    return { requests: { ...this.#requests }, beeps: this.#beeps, discardedBytes: this.#discarded };
  }

  /** Serve a serial device path (normally one end of a pty pair) or listen on a TCP port (0 = any free port). */
  async attach(transport: string | number, options: { host?: string } = {}): Promise<AttachedEncoder> {
    if (this.#closed) throw new Error('the simulated encoder is closed');
    if (typeof transport === 'string') {
      const port = await openSerialLine(transport, { baudRate: this.#baudRate }, '/tmp/ttyENC');
      this.#ports.add(port);
      port.once('close', () => this.#ports.delete(port));
      this.attachStream(port, transport);
      return { kind: 'serial', path: transport };
    }
    const host = options.host ?? '127.0.0.1';
    const server = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      this.attachStream(socket, `tcp ${socket.remoteAddress}:${socket.remotePort}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(transport, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#servers.add(server);
    const bound = server.address();
    return { kind: 'tcp', host, port: typeof bound === 'object' && bound ? bound.port : transport };
  }

  /** Serve any duplex byte stream (a socket, a serial port). */
  attachStream(stream: Duplex, name = 'stream'): void {
    const decoder = new CardFrameDecoder(this.framing);
    this.#streams.add(stream);
    stream.on('data', (chunk: Buffer) => {
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'frame') this.#onFrame(stream, ev.frame);
        else this.#discarded += ev.bytes.length;
      }
    });
    stream.on('error', (err) => this.#log.warn({ line: name, err: err.message }, 'line error'));
    stream.on('close', () => this.#streams.delete(stream));
    this.#log.info({ line: name }, 'serving encoder line');
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const s of this.#streams) if (!(s instanceof SerialPort)) s.destroy();
    await Promise.all([
      ...[...this.#servers].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))),
      ...[...this.#ports].map((p) => new Promise<void>((resolve) => (p.isOpen ? p.close(() => resolve()) : resolve()))),
    ]);
    this.#servers.clear();
    this.#ports.clear();
  }

  #onFrame(stream: Duplex, frame: CardFrame): void {
    // STAR replies start with 60 too; a frame that is not a request is our own reply echoed, or noise.
    const req = requestOf(frame);
    if (this.#silent) return;
    let answer: EncoderAnswer;
    let dropForOp = false;
    if (!req.ok) {
      answer = { ok: false, status: req.error.code === 'UNKNOWN_COMMAND' ? 'not-supported' : 'bad-parameter' };
    } else {
      this.#requests[req.value.op] = (this.#requests[req.value.op] ?? 0) + 1;
      answer = this.#handle(req.value);
      const n = this.#dropRepliesTo.get(req.value.op) ?? 0;
      if (n > 0) {
        this.#dropRepliesTo.set(req.value.op, n - 1);
        dropForOp = true;
      }
      if (this.#log.isLevelEnabled('debug')) this.#log.debug({ op: req.value.op, ok: answer.ok }, 'request');
    }
    if (dropForOp) return;
    if (this.#dropReplies > 0) {
      this.#dropReplies--;
      return;
    }
    const bytes = replyTo(frame, answer);
    if (this.#corruptReplies > 0) {
      this.#corruptReplies--;
      // The last byte before ETX (STAR: a hex digit of the LRC) or the BCC (STX): flip it to another valid character.
      const i = this.framing === 'star' ? bytes.length - 2 : bytes.length - 1;
      bytes[i] = this.framing === 'star' ? (bytes[i] === 0x30 ? 0x31 : 0x30) : bytes[i]! ^ 0xff;
    }
    if (!stream.destroyed && stream.writable) stream.write(bytes);
  }

  #handle(req: CardRequest): EncoderAnswer {
    const ok = (data: ArrayLike<number> = []): EncoderAnswer => ({ ok: true, data: Uint8Array.from(data) });
    const no = (status: Extract<EncoderAnswer, { ok: false }>['status']): EncoderAnswer => ({ ok: false, status });
    const card = this.#card;
    switch (req.op) {
      case 'readerInfo':
        return ok(Buffer.from(`${this.#info.model};${this.#info.firmware};${this.#info.serial}`, 'latin1'));
      case 'cardStatus':
        if (this.framing === 'star') {
          // STAR's WAIT_CARD_IN with 0 s: power the card up and answer its ATR, or "no card".
          if (!card) return no('no-card');
          this.#powerUp();
          return ok(card.atr);
        }
        if (!card) return ok([0]);
        return ok(this.#powered ? [0x03, ...card.atr] : [0x01]);
      case 'selectCardType':
        return ok();
      case 'powerUp':
        if (!card) return no('no-card');
        if (card instanceof VirtualCpuCard) return no('card-not-supported');
        this.#powerUp();
        return ok(card.atr);
      case 'cpuPowerUp':
        if (!card) return no('no-card');
        if (!isCpuKind(card.kind)) return no('card-not-supported');
        this.#powerUp();
        return ok(card.atr);
      case 'powerDown':
      case 'cpuPowerDown':
        this.#powered = false;
        card?.reset();
        return ok();
      case 'beep':
        this.#beeps++;
        return ok();
      case 'eject':
        if (!this.#canEject) return no('not-supported');
        this.remove();
        return ok();
      case 'apdu':
        if (!card) return no('no-card');
        if (!(card instanceof VirtualCpuCard)) return no('card-not-supported');
        if (!this.#powered) return no('not-powered');
        {
          const r = card.respond(req.apdu);
          const sw = ((r[r.length - 2] ?? 0) << 8) | (r[r.length - 1] ?? 0);
          // STAR's reader status E7H: the card answered, with a status word other than 9000.
          return { ok: true, data: r, ...(sw !== 0x9000 ? { readerStatus: 0xe7 } : {}) };
        }
    }
    // Memory-card operations from here on.
    if (!card) return no('no-card');
    if (card instanceof VirtualCpuCard) return no('card-not-supported');
    if (!this.#powered) return no('not-powered');
    switch (req.op) {
      case 'read': {
        const size = req.zone === 'main' ? SLE4442_MAIN_SIZE : req.zone === 'protection' ? SLE4442_PROTECTION_SIZE : SLE4442_SECURITY_SIZE;
        if (req.addr + req.len > size) return no('address-out-of-range');
        if (req.zone === 'main') return ok(card.main.subarray(req.addr, req.addr + req.len));
        if (req.zone === 'protection') return ok(card.protection.subarray(req.addr, req.addr + req.len));
        return ok(card.readSecurity().subarray(req.addr, req.addr + req.len));
      }
      case 'write': {
        if (req.zone === 'protection') return no('bad-parameter');
        if (req.zone === 'security') {
          if (req.addr + req.data.length > SLE4442_SECURITY_SIZE) return no('address-out-of-range');
          card.writeSecurity(req.addr, req.data);
          return ok();
        }
        if (req.addr + req.data.length > SLE4442_MAIN_SIZE) return no('address-out-of-range');
        const removal = this.#removal;
        if (removal && removal.skip > 0) removal.skip--;
        else if (removal) {
          this.#removal = undefined;
          const n = Math.min(req.data.length, removal.afterBytes ?? Math.floor(req.data.length / 2));
          card.writeMain(req.addr, req.data.subarray(0, n));
          this.remove();
          this.#log.info({ event: 'card-pulled', addr: req.addr, written: n, of: req.data.length }, 'card pulled out during a write');
          return no('card-removed');
        }
        card.writeMain(req.addr, req.data);
        return ok();
      }
      case 'presentPsc': {
        const r = card.presentPsc(req.psc);
        return r === 'ok' ? ok() : no(r === 'locked' ? 'card-locked' : 'psc-rejected');
      }
      case 'readErrorCounter':
        return ok([card.errorCounter]);
      case 'changePsc':
        card.writeSecurity(1, req.psc);
        return ok();
      case 'writeProtection':
        card.writeProtection(req.addr, req.data);
        return ok();
    }
  }

  #powerUp(): void {
    if (!this.#powered) this.#card?.reset();
    this.#powered = true;
  }
}
