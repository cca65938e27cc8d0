/**
 * Binary STX/ETX reader framing, meterd's generic binary dialect (docs/reference/cards.md § STX/ETX binary readers names the family; the
 * field layout below is ours, not any one vendor's):
 *
 *   STX(02H) LEN(2 bytes, big-endian) PAYLOAD(LEN bytes) ETX(03H) BCC
 *
 * - PAYLOAD of a request: CMD DATA…; of a reply: CMD (echoed) STATUS DATA…
 * - BCC: XOR of every byte from the first LEN byte to ETX inclusive.
 */

export const STX = 0x02;
export const STX_ETX = 0x03;
/** Largest DATA a frame of this dialect carries; anything longer is treated as line garbage. */
export const STX_MAX_DATA = 512;
/** CMD + STATUS + DATA. */
export const STX_MAX_PAYLOAD = STX_MAX_DATA + 2;
const OVERHEAD = 5;

/** One frame: the command byte and what follows it (a request's data, or a reply's STATUS and data). */
export interface StxFrame {
  readonly cmd: number;
  readonly body: Uint8Array;
}

/** A reply split into its parts. */
export interface StxReply {
  readonly cmd: number;
  readonly status: number;
  readonly data: Uint8Array;
}

/** Why bytes were dropped: `noise` (no STX), `bad-length` (LEN 0 or over the dialect's maximum), `bad-end` (no ETX where LEN says), `bad-bcc`. */
export type StxDiscardReason = 'noise' | 'bad-length' | 'bad-end' | 'bad-bcc';

export type StxDecodeEvent =
  | { kind: 'frame'; frame: StxFrame; raw: Uint8Array }
  | { kind: 'discard'; bytes: Uint8Array; reason: StxDiscardReason };

/**
 * Generic binary STX LEN(2) CMD DATA ETX BCC dialect: encodes one frame around `payload` (CMD first).
 * Throws a RangeError for an empty or oversized payload: a programming error, not wire input.
 */
function encodeStxPayload(payload: Uint8Array): Uint8Array {
  if (payload.length === 0 || payload.length > STX_MAX_PAYLOAD)
    throw new RangeError(`an STX payload is 1 to ${STX_MAX_PAYLOAD} bytes, not ${payload.length}`);
  const out = new Uint8Array(payload.length + OVERHEAD);
  out[0] = STX;
  out[1] = payload.length >> 8;
  out[2] = payload.length & 0xff;
  out.set(payload, 3);
  out[3 + payload.length] = STX_ETX;
  out[4 + payload.length] = bcc(out, 1, 4 + payload.length);
  return out;
}

/**
 * Generic binary STX LEN(2) CMD DATA ETX BCC dialect: a request frame.
 *
 * @example
 * encodeStxRequest(0x10, new Uint8Array()); // 02 00 01 10 03 12 (power up)
 */
export function encodeStxRequest(cmd: number, data: Uint8Array): Uint8Array {
  checkByte('cmd', cmd);
  if (data.length > STX_MAX_DATA) throw new RangeError(`an STX request carries at most ${STX_MAX_DATA} data bytes, not ${data.length}`);
  const payload = new Uint8Array(data.length + 1);
  payload[0] = cmd;
  payload.set(data, 1);
  return encodeStxPayload(payload);
}

/** Generic binary STX LEN(2) CMD STATUS DATA ETX BCC dialect: a reply frame (the simulator's side). */
export function encodeStxReply(reply: StxReply): Uint8Array {
  checkByte('cmd', reply.cmd);
  checkByte('status', reply.status);
  if (reply.data.length > STX_MAX_DATA)
    throw new RangeError(`an STX reply carries at most ${STX_MAX_DATA} data bytes, not ${reply.data.length}`);
  const payload = new Uint8Array(reply.data.length + 2);
  payload[0] = reply.cmd;
  payload[1] = reply.status;
  payload.set(reply.data, 2);
  return encodeStxPayload(payload);
}

/** Generic binary STX dialect: reads a decoded frame as a reply; undefined when it has no STATUS byte. */
export function stxReplyOf(frame: StxFrame): StxReply | undefined {
  if (frame.body.length < 1) return undefined;
  return { cmd: frame.cmd, status: frame.body[0]!, data: frame.body.subarray(1) };
}

function bcc(bytes: Uint8Array, from: number, to: number): number {
  let x = 0;
  for (let i = from; i < to; i++) x ^= bytes[i]!;
  return x;
}

function checkByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${name} is not a byte: ${v}`);
}

/**
 * Generic binary STX LEN(2) CMD DATA ETX BCC dialect: streaming decoder. Feed chunks of any size, get whole frames and
 * the runs of bytes it threw away. The frame end comes from LEN, never from a 03H in the data; after any failure the
 * decoder drops the one STX it started from and rescans. Never throws; holds at most one frame (519 bytes).
 *
 * @example
 * const decoder = new StxDecoder();
 * for (const ev of decoder.push(chunk)) if (ev.kind === 'frame') handle(stxReplyOf(ev.frame));
 */
export class StxDecoder {
  private buf = new Uint8Array((STX_MAX_PAYLOAD + OVERHEAD) * 2);
  private start = 0;
  private end = 0;
  private run: number[] = [];
  private runReason: StxDiscardReason = 'noise';

  get pending(): number {
    return this.end - this.start;
  }

  reset(): void {
    this.start = 0;
    this.end = 0;
    this.run = [];
  }

  push(chunk: Uint8Array): StxDecodeEvent[] {
    const events: StxDecodeEvent[] = [];
    const slice = STX_MAX_PAYLOAD + OVERHEAD;
    for (let off = 0; off < chunk.length; off += slice) this.scan(chunk.subarray(off, off + slice), events);
    return events;
  }

  private scan(chunk: Uint8Array, events: StxDecodeEvent[]): void {
    this.append(chunk);
    const buf = this.buf;
    const end = this.end;
    let i = this.start;
    for (;;) {
      while (i < end && buf[i] !== STX) {
        if (this.run.length === 0) this.runReason = 'noise';
        this.run.push(buf[i]!);
        i++;
      }
      if (i >= end) break;
      const available = end - i;
      if (available < 3) break;
      const len = (buf[i + 1]! << 8) | buf[i + 2]!;
      if (len === 0 || len > STX_MAX_PAYLOAD) {
        i = this.rejectStart(i, 'bad-length');
        continue;
      }
      const total = len + OVERHEAD;
      if (available >= total - 1 && buf[i + 3 + len] !== STX_ETX) {
        i = this.rejectStart(i, 'bad-end');
        continue;
      }
      if (available < total) break;
      if (bcc(buf, i + 1, i + 4 + len) !== buf[i + 4 + len]) {
        i = this.rejectStart(i, 'bad-bcc');
        continue;
      }
      this.flush(events);
      events.push({ kind: 'frame', frame: { cmd: buf[i + 3]!, body: buf.slice(i + 4, i + 3 + len) }, raw: buf.slice(i, i + total) });
      i += total;
    }
    this.start = i;
    if (this.start === this.end) this.start = this.end = 0;
    this.flush(events);
  }

  private rejectStart(i: number, reason: StxDiscardReason): number {
    if (this.run.length === 0 || this.runReason === 'noise') this.runReason = reason;
    this.run.push(this.buf[i]!);
    return i + 1;
  }

  private flush(events: StxDecodeEvent[]): void {
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
