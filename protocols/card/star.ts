/**
 * STAR-type reader framing (ST102/717/727; docs/reference/cards.md § STAR serial readers, source yoebet/hlcx st102ic.c):
 * the packet `HEAD LEN CODE DATA… LRC` is sent as ASCII hex, two characters a byte, and ends with a raw ETX (03H).
 *
 * - HEAD: 60H in every request and in a positive reply (ACK), E0H in a refusal (NACK).
 * - LEN: number of DATA bytes + 1 (for CODE).
 * - CODE: the command in a request; in a reply the reader status (ACK) or its error code (NACK).
 * - LRC: XOR of HEAD, LEN, CODE and every DATA byte, so the XOR of the whole packet is 0.
 */

export const STAR_ACK = 0x60;
export const STAR_NACK = 0xe0;
export const STAR_ETX = 0x03;
/** LEN is one byte and counts CODE, so DATA holds at most 254 bytes. */
export const STAR_MAX_DATA = 254;
/** Longest packet on the wire: (HEAD LEN CODE 254×DATA LRC) × 2 characters + ETX. */
export const STAR_MAX_CHARS = 2 * (STAR_MAX_DATA + 4) + 1;

export interface StarPacket {
  /** 60H (request or ACK) or E0H (NACK). */
  readonly head: number;
  /** Command (request), reader status (ACK) or error code (NACK). */
  readonly code: number;
  readonly data: Uint8Array;
}

/**
 * Why the STAR decoder dropped characters: `noise` (nothing that can start a packet), `bad-char` (a non-hex
 * character inside a packet), `bad-length` (LEN 0, or ETX before the length says the packet ends), `bad-end` (no ETX
 * where the length says), `bad-lrc`.
 */
export type StarDiscardReason = 'noise' | 'bad-char' | 'bad-length' | 'bad-end' | 'bad-lrc';

export type StarDecodeEvent =
  | { kind: 'frame'; frame: StarPacket; raw: Uint8Array }
  | { kind: 'discard'; bytes: Uint8Array; reason: StarDiscardReason };

const HEX = '0123456789ABCDEF';

/**
 * STAR ST102 serial protocol: 60 LEN CMD DATA LRC 03, ASCII-hex. Encodes one packet (uppercase hex, then ETX).
 * Throws a RangeError for more than 254 data bytes or a byte out of range: those are programming errors, not wire input.
 *
 * @example
 * encodeStarPacket({ head: 0x60, code: 0x10, data: new Uint8Array() }); // "60011071" + 03H (power up)
 */
export function encodeStarPacket(packet: StarPacket): Uint8Array {
  const { head, code, data } = packet;
  if (data.length > STAR_MAX_DATA) throw new RangeError(`a STAR packet carries at most ${STAR_MAX_DATA} data bytes, not ${data.length}`);
  for (const [name, v] of [
    ['head', head],
    ['code', code],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${name} is not a byte: ${v}`);
  }
  const bytes = new Uint8Array(data.length + 4);
  bytes[0] = head;
  bytes[1] = data.length + 1;
  bytes[2] = code;
  bytes.set(data, 3);
  let lrc = 0;
  for (let i = 0; i < bytes.length - 1; i++) lrc ^= bytes[i]!;
  bytes[bytes.length - 1] = lrc;
  const out = new Uint8Array(bytes.length * 2 + 1);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = HEX.charCodeAt(bytes[i]! >> 4);
    out[2 * i + 1] = HEX.charCodeAt(bytes[i]! & 0x0f);
  }
  out[out.length - 1] = STAR_ETX;
  return out;
}

/** The value of an ASCII hex digit (either case), or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** '6' or 'E' then '0': the only two ways a packet starts (the reference receiver waits for exactly these). */
const isHeadChar = (c: number): boolean => c === 0x36 || c === 0x45 || c === 0x65;

/**
 * STAR ST102 serial protocol: 60 LEN CMD DATA LRC 03, ASCII-hex. Streaming decoder: feed chunks of any size, get
 * whole packets (requests and replies alike) and the runs of characters it threw away.
 *
 * The packet end is found from LEN, and the ETX must stand exactly there; after any failure the decoder drops the one
 * head character it started from and rescans, so a good packet behind a false start or a cut-off packet is still found.
 * Never throws; holds at most one packet's worth of characters (517) between calls.
 *
 * @example
 * const decoder = new StarDecoder();
 * port.on('data', (chunk) => {
 *   for (const ev of decoder.push(chunk)) if (ev.kind === 'frame') handle(ev.frame);
 * });
 */
export class StarDecoder {
  private buf = new Uint8Array(STAR_MAX_CHARS * 2);
  private start = 0;
  private end = 0;
  private run: number[] = [];
  private runReason: StarDiscardReason = 'noise';

  /** Characters held waiting for the rest of a packet. */
  get pending(): number {
    return this.end - this.start;
  }

  reset(): void {
    this.start = 0;
    this.end = 0;
    this.run = [];
  }

  push(chunk: Uint8Array): StarDecodeEvent[] {
    const events: StarDecodeEvent[] = [];
    // Feed in slices so the buffer never has to hold more than one packet plus one slice.
    for (let off = 0; off < chunk.length; off += STAR_MAX_CHARS) this.scan(chunk.subarray(off, off + STAR_MAX_CHARS), events);
    return events;
  }

  private scan(chunk: Uint8Array, events: StarDecodeEvent[]): void {
    this.append(chunk);
    const buf = this.buf;
    const end = this.end;
    let i = this.start;
    outer: for (;;) {
      while (i < end) {
        const c = buf[i]!;
        if (isHeadChar(c)) {
          if (i + 1 >= end) break outer;
          if (buf[i + 1] === 0x30) break;
        }
        this.drop(c);
        i++;
      }
      if (i >= end) break;
      const available = end - i;
      // HEAD is known good; LEN is characters 2 and 3.
      let failure: StarDiscardReason | undefined;
      for (let k = 2; k < Math.min(available, 4); k++)
        if (hexValue(buf[i + k]!) < 0) failure = buf[i + k] === STAR_ETX ? 'bad-length' : 'bad-char';
      if (failure) {
        i = this.rejectStart(i, failure);
        continue;
      }
      if (available < 4) break;
      const len = (hexValue(buf[i + 2]!) << 4) | hexValue(buf[i + 3]!);
      if (len === 0) {
        i = this.rejectStart(i, 'bad-length');
        continue;
      }
      const total = 2 * (len + 3) + 1;
      const seen = Math.min(available, total);
      for (let k = 4; k < seen && !failure; k++) {
        const c = buf[i + k]!;
        if (k === total - 1) {
          if (c !== STAR_ETX) failure = 'bad-end';
        } else if (hexValue(c) < 0) {
          failure = c === STAR_ETX ? 'bad-length' : 'bad-char';
        }
      }
      if (failure) {
        i = this.rejectStart(i, failure);
        continue;
      }
      if (available < total) break;
      const bytes = new Uint8Array(len + 3);
      let lrc = 0;
      for (let b = 0; b < bytes.length; b++) {
        bytes[b] = (hexValue(buf[i + 2 * b]!) << 4) | hexValue(buf[i + 2 * b + 1]!);
        lrc ^= bytes[b]!;
      }
      if (lrc !== 0) {
        i = this.rejectStart(i, 'bad-lrc');
        continue;
      }
      this.flush(events);
      events.push({
        kind: 'frame',
        frame: { head: bytes[0]!, code: bytes[2]!, data: bytes.slice(3, bytes.length - 1) },
        raw: buf.slice(i, i + total),
      });
      i += total;
    }
    this.start = i;
    if (this.start === this.end) this.start = this.end = 0;
    this.flush(events);
  }

  /** Drop the head character of a false start; one run covers the whole bad packet, its reason the first failure. */
  private rejectStart(i: number, reason: StarDiscardReason): number {
    if (this.run.length === 0 || this.runReason === 'noise') this.runReason = reason;
    this.run.push(this.buf[i]!);
    return i + 1;
  }

  private drop(c: number): void {
    if (this.run.length === 0) this.runReason = 'noise';
    this.run.push(c);
  }

  private flush(events: StarDecodeEvent[]): void {
    if (this.run.length === 0) return;
    events.push({ kind: 'discard', bytes: Uint8Array.from(this.run), reason: this.runReason });
    this.run = [];
  }

  private append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end);
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
