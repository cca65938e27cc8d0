import {
  answersRequest,
  apduShape,
  CardFrameDecoder,
  encodeCardRequest,
  errorCodeOfStatus,
  isCpuKind,
  kindFromAtr,
  pscAttemptsLeft,
  replyOf,
  SLE4442_MAIN_SIZE,
  SLE4442_PROTECTABLE_BYTES,
  SLE4442_PROTECTION_SIZE,
  SLE4442_PSC_SIZE,
  SLE4442_SECURITY_SIZE,
  toHex,
  type CardFamily,
  type CardFrame,
  type CardKind,
  type CardRequest,
  type MemoryZone,
  type ReaderStatus,
} from '../../../protocols/card/index.js';
import { BusError, FrameBus, isBusError, parsePortSpec, SerialTransport, TcpTransport, type ByteTransport } from '../../bus/index.js';
import { realTimers, wait, type Timers } from '../../clock.js';
import { silentLogger, type Logger } from '../../log.js';
import type { EncoderProfile } from '../../profiles/encoder-profile.js';
import type { CardEncoder, CardStatus, ReaderInfo } from './encoder.js';
import { CardError, hexAddr } from './errors.js';

export interface SerialCardEncoderOptions {
  /** Names the encoder in every log line and error: `counter1`. */
  readonly id: string;
  /** `/dev/ttyUSB0`, `/dev/serial/by-id/…` or `tcp://host:port`. */
  readonly port: string;
  readonly profile: EncoderProfile;
  readonly logger?: Logger;
  /** A transport to use instead of the one the port spec names (tests of odd transports). */
  readonly transport?: ByteTransport;
  /** Paces the wait for a card; default Node's timers. */
  readonly timers?: Timers;
}

/** A GET RESPONSE chain longer than this is a card stuck in a loop, not data. */
const MAX_GET_RESPONSE = 16;

/**
 * The CardEncoder for serial encoders (local port or serial-over-TCP), speaking the framing its profile names,
 * over the bus's FrameBus (one request at a time, timeouts, stray frames, port loss).
 *
 * @example
 * const encoder = new SerialCardEncoder({ id: 'counter1', port: '/dev/ttyUSB0', profile: loadEncoderProfile('star-st102'), logger });
 * await encoder.open();
 * const kind = await encoder.waitForCard(30_000);
 */
export class SerialCardEncoder implements CardEncoder {
  readonly id: string;
  readonly profile: EncoderProfile;
  readonly #bus: FrameBus<CardFrame>;
  readonly #family: CardFamily;
  readonly #log: Logger;
  /** The kind of the card the encoder has powered, or undefined: a NO_CARD while powered means it was pulled. */
  #powered: CardKind | undefined;
  #pscPresented = false;
  readonly #timers: Timers;

  constructor(opts: SerialCardEncoderOptions) {
    this.id = opts.id;
    this.#timers = opts.timers ?? realTimers;
    this.profile = opts.profile;
    this.#family = opts.profile.framing;
    this.#log = (opts.logger ?? silentLogger).child({ encoder: opts.id });
    let transport = opts.transport;
    if (!transport) {
      const spec = parsePortSpec(opts.port);
      transport =
        spec.kind === 'serial'
          ? new SerialTransport({ path: spec.path, line: opts.profile.line })
          : new TcpTransport({ host: spec.host, port: spec.port });
    }
    this.#bus = new FrameBus<CardFrame>({
      id: opts.id,
      transport,
      decoder: new CardFrameDecoder(this.#family),
      logger: this.#log,
      gapMs: 0,
    });
  }

  get canEject(): boolean {
    return this.profile.capabilities.eject;
  }

  async open(signal?: AbortSignal): Promise<ReaderInfo> {
    await this.#bus.open(signal);
    try {
      const info = await this.#identify();
      this.#log.info(
        { event: 'encoder-open', model: info.model, firmware: info.firmware, framing: this.#family, port: info.port },
        'encoder ready',
      );
      return info;
    } catch (err) {
      await this.#bus.close();
      if (err instanceof CardError && (err.code === 'TIMEOUT' || err.code === 'FRAMING_ERROR')) {
        const { line } = this.profile;
        throw new CardError(
          err.code,
          `no ${this.profile.name} answers on ${this.#bus.port}: ${err.code === 'TIMEOUT' ? 'nothing answered' : `something answered, but not in ${this.#family} framing`}; ` +
            `check the port, that the encoder is powered, and that it is set to ${line.baudRate} baud as profile ${this.profile.id} says`,
          {},
          { cause: err },
        );
      }
      throw err;
    }
  }

  async #identify(): Promise<ReaderInfo> {
    if (this.profile.capabilities.readerInfo) {
      const data = await this.#ask({ op: 'readerInfo' }, 'reader info');
      const [model = '', firmware = '', serial = ''] = Buffer.from(data).toString('latin1').split(';');
      return { model, firmware, serial, framing: this.#family, port: this.#bus.port };
    }
    // No identity command in this family: any well-formed answer to a status probe proves the encoder speaks it.
    await this.cardStatus();
    return { model: this.profile.name, firmware: 'unknown', serial: 'unknown', framing: this.#family, port: this.#bus.port };
  }

  async cardStatus(): Promise<CardStatus> {
    let data: Uint8Array;
    try {
      data = await this.#ask({ op: 'cardStatus' }, 'card status');
    } catch (err) {
      if (err instanceof CardError && (err.code === 'NO_CARD' || err.code === 'CARD_REMOVED')) {
        this.#cardGone();
        return { present: false, powered: false };
      }
      throw err;
    }
    if (this.#family === 'star') {
      // STAR's presence probe powers the card up and answers with its ATR.
      const kind = kindFromAtr(data);
      this.#setPowered(kind);
      return { present: true, powered: true, kind };
    }
    const flags = data[0] ?? 0;
    const present = (flags & 0x01) !== 0;
    const powered = present && (flags & 0x02) !== 0;
    if (!present) this.#cardGone();
    if (!powered) return { present, powered };
    return { present, powered, kind: kindFromAtr(data.subarray(1)) };
  }

  async waitForCard(timeoutMs: number, signal?: AbortSignal): Promise<CardKind> {
    if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0))
      throw new TypeError(`timeoutMs is not a number of milliseconds >= 0: ${timeoutMs}`);
    const deadline = this.#timers.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const status = await this.cardStatus();
      if (status.present) return status.kind ?? (await this.powerUp()).kind;
      const left = deadline - this.#timers.now();
      if (left <= 0) throw new CardError('NO_CARD', `no card was inserted in encoder ${this.id} within ${Math.round(timeoutMs / 1000)} s`);
      if (!(await wait(this.#timers, Math.min(left, this.profile.cardPollMs), signal))) throw abortError(signal!);
    }
  }

  async powerUp(kind?: CardKind): Promise<{ atr: Uint8Array; kind: CardKind }> {
    const cpu = kind !== undefined && isCpuKind(kind);
    if (cpu && !this.profile.capabilities.cpuCards)
      throw new CardError('NOT_SUPPORTED', `encoder ${this.id} (${this.profile.name}) cannot drive CPU cards`);
    // A power-up starts a new card session: "no card" now means none was inserted, not that one was pulled.
    this.#cardGone();
    let atr: Uint8Array;
    if (cpu) {
      atr = await this.#ask({ op: 'cpuPowerUp' }, 'CPU card power up');
    } else {
      if (this.profile.capabilities.selectCardType && (kind === undefined || kind !== 'UNKNOWN')) {
        await this.#ask({ op: 'selectCardType', kind: kind ?? 'SLE4442' }, 'select card type');
      }
      try {
        atr = await this.#ask({ op: 'powerUp' }, 'power up');
      } catch (err) {
        // Not a memory card: with no kind asked for, it may be a CPU card.
        if (!(err instanceof CardError && err.code === 'WRONG_CARD_KIND' && kind === undefined && this.profile.capabilities.cpuCards))
          throw err;
        atr = await this.#ask({ op: 'cpuPowerUp' }, 'CPU card power up');
      }
    }
    const detected = kindFromAtr(atr);
    this.#setPowered(detected);
    if (kind !== undefined && detected !== kind) {
      throw new CardError(
        'WRONG_CARD_KIND',
        `the card in encoder ${this.id} is ${describeKind(detected)} (ATR ${toHex(atr)}), not ${describeKind(kind)}; insert the right card`,
      );
    }
    return { atr, kind: detected };
  }

  async powerDown(): Promise<void> {
    const op = this.#powered !== undefined && isCpuKind(this.#powered) ? 'cpuPowerDown' : 'powerDown';
    try {
      await this.#ask({ op }, 'power down');
    } catch (err) {
      if (!(err instanceof CardError && (err.code === 'NO_CARD' || err.code === 'CARD_REMOVED'))) throw err;
    } finally {
      this.#cardGone();
    }
  }

  async read(zone: MemoryZone, addr: number, len: number): Promise<Uint8Array> {
    this.#needMemoryCard();
    checkRange(zone, addr, len);
    const out = new Uint8Array(len);
    for (let off = 0; off < len; off += this.profile.chunkBytes) {
      const n = Math.min(this.profile.chunkBytes, len - off);
      const data = await this.#ask({ op: 'read', zone, addr: addr + off, len: n }, `read ${zone} ${hexAddr(addr + off)}+${n}`, {
        retries: this.profile.readRetries,
      });
      if (data.length !== n)
        throw new CardError(
          'FRAMING_ERROR',
          `encoder ${this.id} answered ${data.length} bytes to a read of ${n} at ${hexAddr(addr + off)}`,
        );
      out.set(data, off);
    }
    return out;
  }

  async write(addr: number, data: Uint8Array): Promise<void> {
    this.#needMemoryCard();
    checkRange('main', addr, data.length);
    for (let off = 0; off < data.length; off += this.profile.chunkBytes) {
      const chunk = data.subarray(off, off + this.profile.chunkBytes);
      const at = addr + off;
      // Never re-sent: after silence the card may hold the new bytes, the old ones, or a mix; the read-back decides.
      await this.#ask({ op: 'write', zone: 'main', addr: at, data: chunk }, `write ${hexAddr(at)}+${chunk.length}`, {
        timeoutMs: this.profile.writeTimeoutMs,
      });
      const back = await this.read('main', at, chunk.length);
      const i = back.findIndex((b, k) => b !== chunk[k]);
      if (i >= 0) {
        this.#log.warn(
          { event: 'write-verify-failed', code: 'WRITE_VERIFY_FAILED', addr: at + i },
          'card byte did not read back as written',
        );
        throw new CardError(
          'WRITE_VERIFY_FAILED',
          `card byte ${hexAddr(at + i)} reads back ${hex2(back[i]!)} after writing ${hex2(chunk[i]!)}: the PSC was not presented, the byte is write-protected, or the card is worn`,
          { addr: at + i },
        );
      }
    }
  }

  async pscAttemptsLeft(): Promise<number> {
    this.#needMemoryCard();
    const data = await this.#ask({ op: 'readErrorCounter' }, 'read PSC error counter', { retries: this.profile.readRetries });
    if (data.length < 1) throw new CardError('FRAMING_ERROR', `encoder ${this.id} answered the error-counter read without the counter`);
    return pscAttemptsLeft(data[0]!);
  }

  async verifyPsc(psc: Uint8Array, opts: { force?: boolean } = {}): Promise<void> {
    if (psc.length !== SLE4442_PSC_SIZE) throw new TypeError(`a PSC is ${SLE4442_PSC_SIZE} bytes, not ${psc.length}`);
    const before = await this.pscAttemptsLeft();
    if (before === 0) throw lockedError(this.id);
    if (before < 3 && !opts.force) {
      this.#log.warn({ event: 'psc-refused', code: 'PSC_ATTEMPTS_LOW', attemptsLeft: before }, 'PSC not presented: attempts already used');
      throw new CardError(
        'PSC_ATTEMPTS_LOW',
        `the card has only ${before} PSC attempt${before === 1 ? '' : 's'} left (someone presented a wrong PSC before); meterd will not risk locking it. ` +
          'Check the PSC, then retry with --force if you are sure',
        { attemptsLeft: before },
      );
    }
    try {
      // retries: 0, and no loop around this call: a PSC presentation goes to the card at most once per call.
      await this.#ask({ op: 'presentPsc', psc }, 'present PSC', { retries: 0 });
    } catch (err) {
      if (err instanceof CardError && err.code === 'TIMEOUT') {
        throw new CardError(
          'TIMEOUT',
          `encoder ${this.id} did not answer the PSC presentation; it may or may not have reached the card and meterd does not present it again. Read the card status (attempts left) before any other try`,
          {},
          { cause: err },
        );
      }
      if (!(err instanceof CardError && (err.code === 'PSC_REJECTED' || err.code === 'CARD_LOCKED'))) throw err;
      const after = await this.pscAttemptsLeft();
      this.#log.warn(
        { event: 'psc-rejected', code: after === 0 ? 'CARD_LOCKED' : 'PSC_REJECTED', attemptsLeft: after },
        'card rejected the PSC',
      );
      if (after === 0) throw lockedError(this.id);
      throw new CardError(
        'PSC_REJECTED',
        `the card rejected the PSC; ${after} attempt${after === 1 ? '' : 's'} left before it locks for good. Do not try again until the PSC is checked`,
        {
          attemptsLeft: after,
          readerCode: err.readerCode,
        },
      );
    }
    this.#pscPresented = true;
  }

  async changePsc(newPsc: Uint8Array): Promise<void> {
    if (newPsc.length !== SLE4442_PSC_SIZE) throw new TypeError(`a PSC is ${SLE4442_PSC_SIZE} bytes, not ${newPsc.length}`);
    this.#needMemoryCard();
    if (!this.#pscPresented)
      throw new CardError('PSC_NOT_PRESENTED', 'present the current PSC (verifyPsc) in this power-up before changing it');
    await this.#ask({ op: 'changePsc', psc: newPsc }, 'change PSC', { timeoutMs: this.profile.writeTimeoutMs });
    const security = await this.read('security', 0, SLE4442_SECURITY_SIZE);
    const i = newPsc.findIndex((b, k) => security[k + 1] !== b);
    if (i >= 0)
      throw new CardError(
        'WRITE_VERIFY_FAILED',
        `the new PSC did not read back (security byte ${i + 1}); the card still has its old PSC or a mix: check it before the next sale`,
        { addr: i + 1 },
      );
  }

  async protect(addr: number, len: number, opts: { confirm: boolean }): Promise<void> {
    if (opts?.confirm !== true) {
      throw new CardError(
        'CONFIRMATION_REQUIRED',
        `write-protecting card bytes ${hexAddr(addr)}–${hexAddr(addr + len - 1)} cannot be undone; confirm it explicitly (confirm: true / --yes)`,
      );
    }
    if (!Number.isInteger(addr) || !Number.isInteger(len) || addr < 0 || len < 1 || addr + len > SLE4442_PROTECTABLE_BYTES) {
      throw new RangeError(`only bytes 00H–1FH can be protected, not ${len} from ${addr}`);
    }
    const current = await this.read('main', addr, len);
    await this.#ask({ op: 'writeProtection', addr, data: current }, `protect ${hexAddr(addr)}+${len}`, {
      timeoutMs: this.profile.writeTimeoutMs,
    });
    const bits = await this.read('protection', 0, SLE4442_PROTECTION_SIZE);
    for (let a = addr; a < addr + len; a++) {
      if ((bits[a >> 3]! & (1 << (a & 7))) !== 0)
        throw new CardError('WRITE_VERIFY_FAILED', `the protection bit of byte ${hexAddr(a)} is still open after writing it`, { addr: a });
    }
    this.#log.warn({ event: 'card-protected', from: addr, len }, 'card bytes write-protected for good');
  }

  async transmit(apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    if (!this.profile.capabilities.cpuCards)
      throw new CardError('NOT_SUPPORTED', `encoder ${this.id} (${this.profile.name}) cannot drive CPU cards`);
    if (this.#powered === undefined || !isCpuKind(this.#powered)) {
      throw new CardError(
        'WRONG_CARD_KIND',
        `APDUs need a powered CPU card; the card in encoder ${this.id} is ${this.#powered ? describeKind(this.#powered) : 'not powered'}`,
      );
    }
    const shape = apduShape(apdu);
    if (!shape.ok) throw new TypeError(shape.error.message);
    let r = await this.#apdu(apdu);
    if (r.sw >> 8 === 0x6c && shape.value.lc === 0) {
      // Wrong Le: the card says how many bytes it has; ask again with exactly that (T=0 case 2).
      r = await this.#apdu(Uint8Array.of(apdu[0]!, apdu[1]!, apdu[2]!, apdu[3]!, r.sw & 0xff));
    }
    const parts = [r.data];
    for (let n = 0; r.sw >> 8 === 0x61; n++) {
      if (n >= MAX_GET_RESPONSE)
        throw new CardError('FRAMING_ERROR', `the card kept answering 61xx after ${MAX_GET_RESPONSE} GET RESPONSE commands`);
      r = await this.#apdu(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, r.sw & 0xff));
      parts.push(r.data);
    }
    const data = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { data, sw: r.sw };
  }

  async #apdu(apdu: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    const reply = await this.#ask({ op: 'apdu', apdu }, `APDU ${toHex(apdu.subarray(0, 4))}`, {
      retries: 0,
      timeoutMs: this.profile.writeTimeoutMs,
    });
    if (reply.length < 2) throw new CardError('FRAMING_ERROR', `encoder ${this.id} answered an APDU without a status word`);
    return { data: reply.slice(0, -2), sw: (reply[reply.length - 2]! << 8) | reply[reply.length - 1]! };
  }

  async beep(ms: number): Promise<void> {
    if (!this.profile.capabilities.beep) return;
    await this.#ask({ op: 'beep', ms }, 'beep');
  }

  async eject(): Promise<void> {
    if (!this.canEject)
      throw new CardError('NOT_SUPPORTED', `encoder ${this.id} (${this.profile.name}) cannot eject the card; the cashier hands it back`);
    await this.#ask({ op: 'eject' }, 'eject');
    this.#cardGone();
  }

  async close(): Promise<void> {
    await this.#bus.close();
  }

  /** One request, one reply; a refusal or a silence becomes a CardError. */
  async #ask(req: CardRequest, label: string, opts: { retries?: number; timeoutMs?: number } = {}): Promise<Uint8Array> {
    const enc = encodeCardRequest(this.#family, req);
    if (!enc.ok)
      throw new CardError('NOT_SUPPORTED', `encoder ${this.id} (${this.#family} framing) cannot "${label}": ${enc.error.message}`);
    const { code, bytes } = enc.value;
    const discardedBefore = this.#bus.stats().discardedBytes;
    let frame: CardFrame | undefined;
    try {
      frame = await this.#bus.request('operator', {
        bytes,
        match: (f) => answersRequest(f, this.#family, code),
        timeoutMs: opts.timeoutMs ?? this.profile.replyTimeoutMs,
        retries: opts.retries ?? 0,
        label,
      });
    } catch (err) {
      if (!isBusError(err, 'BUS_TIMEOUT')) throw err;
      if (this.#bus.stats().discardedBytes > discardedBefore) {
        throw new CardError(
          'FRAMING_ERROR',
          `encoder ${this.id} answered "${label}" with a broken ${this.#family} frame (bad checksum or length); check the baud rate and the encoder profile`,
          {},
          { cause: err },
        );
      }
      throw new CardError(
        'TIMEOUT',
        `encoder ${this.id} did not answer "${label}" within ${opts.timeoutMs ?? this.profile.replyTimeoutMs} ms; check its cable and power`,
        {},
        { cause: err },
      );
    }
    if (!frame) throw new CardError('FRAMING_ERROR', `encoder ${this.id} gave no frame for "${label}"`);
    const reply = replyOf(frame);
    if (reply.ok) return reply.data;
    throw this.#refusal(reply.status, label);
  }

  #refusal(status: ReaderStatus, label: string): CardError {
    let code = errorCodeOfStatus(status.name);
    // The reader cannot tell "never inserted" from "pulled out"; meterd can: it had powered the card.
    if (code === 'NO_CARD' && this.#powered !== undefined) code = 'CARD_REMOVED';
    if (code === 'CARD_REMOVED' || code === 'NO_CARD') this.#cardGone();
    const messages: Partial<Record<typeof code, string>> = {
      NO_CARD: `no card in encoder ${this.id}; insert the customer's card`,
      CARD_REMOVED: `the card was taken out of encoder ${this.id} during "${label}"; put it back and repeat the operation`,
      WRONG_CARD_KIND: `encoder ${this.id} cannot "${label}" on this card: ${status.message}`,
      CARD_LOCKED: `the card is locked (PSC error counter 0) and can no longer be written; it must be replaced`,
    };
    // "No card" is the normal answer while waiting for one; keep it out of the info log.
    this.#log[code === 'NO_CARD' ? 'debug' : 'info'](
      { event: 'reader-refused', code, readerCode: status.code, reason: status.name, label },
      'encoder refused',
    );
    return new CardError(code, messages[code] ?? `encoder ${this.id} refused "${label}": ${status.message} (code ${hex2(status.code)})`, {
      readerCode: status.code,
    });
  }

  #setPowered(kind: CardKind): void {
    if (this.#powered !== kind) this.#pscPresented = false;
    this.#powered = kind;
  }

  #cardGone(): void {
    this.#powered = undefined;
    this.#pscPresented = false;
  }

  #needMemoryCard(): void {
    if (this.#powered === undefined)
      throw new CardError('NO_CARD', `no powered card in encoder ${this.id}; insert the card and power it up first`);
    if (this.#powered !== 'SLE4442')
      throw new CardError(
        'WRONG_CARD_KIND',
        `the card in encoder ${this.id} is ${describeKind(this.#powered)}; memory operations need an SLE4442`,
      );
  }
}

function checkRange(zone: MemoryZone, addr: number, len: number): void {
  const size = zone === 'main' ? SLE4442_MAIN_SIZE : zone === 'protection' ? SLE4442_PROTECTION_SIZE : SLE4442_SECURITY_SIZE;
  if (!Number.isInteger(addr) || !Number.isInteger(len) || addr < 0 || len < 1 || addr + len > size) {
    throw new RangeError(`${len} bytes at ${addr} do not fit the ${size}-byte ${zone} zone`);
  }
}

function describeKind(kind: CardKind): string {
  switch (kind) {
    case 'CPU_T0':
      return 'a CPU card (T=0)';
    case 'CPU_T1':
      return 'a CPU card (T=1)';
    case 'UNKNOWN':
      return 'a card meterd does not recognise';
    default:
      return `an ${kind}`;
  }
}

function lockedError(id: string): CardError {
  return new CardError(
    'CARD_LOCKED',
    `the card in encoder ${id} is locked for good (PSC error counter 0): it can be read but never written again; issue a replacement card`,
    { attemptsLeft: 0 },
  );
}

function abortError(signal: AbortSignal): BusError {
  return new BusError('ABORTED', 'waiting for a card was cancelled', { cause: signal.reason });
}

const hex2 = (n: number): string => hexAddr(n);
