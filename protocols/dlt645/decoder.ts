import { checksum, END, FRAME_OVERHEAD, frameAt, PREAMBLE, START, type Frame } from './frame.js';

/** What the decoder reports for each input: a whole frame, or a run of bytes it threw away and why. */
export type DecodeEvent = { kind: 'frame'; frame: Frame; raw: Uint8Array } | { kind: 'discard'; bytes: Uint8Array; reason: DiscardReason };

/**
 * Why bytes were dropped: `noise` (no 68H where a frame could start), `bad-header` (68H without the second 68H
 * seven bytes later), `bad-checksum`, `bad-end` (no 16H where the length byte says the frame ends),
 * `excess-preamble` (a run of FE longer than any meter sends).
 */
export type DiscardReason = 'noise' | 'bad-header' | 'bad-checksum' | 'bad-end' | 'excess-preamble';

const MAX_HELD_PREAMBLE = 64;

/**
 * Streaming DL/T 645 frame decoder (DL/T 645-2007 §7): feed chunks of any size, get complete frames.
 *
 * The frame end is found from the length byte, never from a 16H or from line silence, so a checksum equal to 16H
 * or a 68H inside the data cannot cut a frame. After a bad header, checksum or end byte it drops the one 68H it
 * started from and rescans, so a genuine frame hidden behind a false start is still found. Never throws; holds at
 * most one frame's worth of bytes (267) between calls.
 *
 * @example
 * const decoder = new Dlt645Decoder();
 * port.on('data', (chunk) => {
 *   for (const ev of decoder.push(chunk)) if (ev.kind === 'frame') handle(ev.frame);
 * });
 */
export class Dlt645Decoder {
  private buf = new Uint8Array(512);
  private start = 0;
  private end = 0;
  private run: number[] = [];
  private runReason: DiscardReason = 'noise';
  private heldPreamble = 0;

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.end - this.start + this.heldPreamble;
  }

  /** Forget any partial frame (after line silence longer than the standard's 500 ms byte gap, or a new request). */
  reset(): void {
    this.start = 0;
    this.end = 0;
    this.run = [];
    this.heldPreamble = 0;
  }

  push(chunk: Uint8Array): DecodeEvent[] {
    this.append(chunk);
    const events: DecodeEvent[] = [];
    const buf = this.buf;
    let i = this.start;
    const end = this.end;
    for (;;) {
      // Find the next 68H; FE bytes just before it are the wake-up preamble, anything else is noise.
      while (i < end && buf[i] !== START) {
        if (buf[i] === PREAMBLE) {
          if (++this.heldPreamble > MAX_HELD_PREAMBLE) this.dropHeldPreamble('excess-preamble');
        } else {
          this.dropHeldPreamble('noise');
          this.drop(buf[i]!);
        }
        i++;
      }
      if (i >= end) break;
      const available = end - i;
      if (available >= 8 && buf[i + 7] !== START) {
        i = this.rejectStart(i, 'bad-header');
        continue;
      }
      if (available < 10) break;
      const length = buf[i + 9]!;
      const total = FRAME_OVERHEAD + length;
      if (available < total) break;
      if (checksum(buf, i, i + 10 + length) !== buf[i + 10 + length]) {
        i = this.rejectStart(i, 'bad-checksum');
        continue;
      }
      if (buf[i + 11 + length] !== END) {
        i = this.rejectStart(i, 'bad-end');
        continue;
      }
      // A real frame: the FE bytes before it were its preamble, not noise.
      this.heldPreamble = 0;
      this.flush(events);
      events.push({ kind: 'frame', frame: frameAt(buf, i), raw: buf.slice(i, i + total) });
      i += total;
    }
    this.start = i;
    if (this.start === this.end) this.start = this.end = 0;
    this.flush(events);
    return events;
  }

  /** Drop a 68H that did not start a frame. One run covers a whole bad frame; its reason is the first real failure. */
  private rejectStart(i: number, reason: DiscardReason): number {
    this.dropHeldPreamble('noise');
    if (this.run.length === 0 || this.runReason === 'noise') this.runReason = reason;
    this.run.push(this.buf[i]!);
    return i + 1;
  }

  /** A byte that cannot start a frame joins the current run (after a false start it is the rest of that bad frame). */
  private drop(byte: number): void {
    if (this.run.length === 0) this.runReason = 'noise';
    this.run.push(byte);
  }

  /** FE bytes that turned out not to precede a frame become part of the discarded run (`reason` if it starts one). */
  private dropHeldPreamble(reason: DiscardReason): void {
    if (this.heldPreamble === 0) return;
    if (this.run.length === 0) this.runReason = reason;
    for (let k = 0; k < this.heldPreamble; k++) this.run.push(PREAMBLE);
    this.heldPreamble = 0;
  }

  private flush(events: DecodeEvent[]): void {
    if (this.run.length === 0) return;
    events.push({ kind: 'discard', bytes: Uint8Array.from(this.run), reason: this.runReason });
    this.run = [];
  }

  private append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      if (held + chunk.length > this.buf.length) {
        const grown = new Uint8Array(Math.max(this.buf.length * 2, held + chunk.length));
        grown.set(this.buf.subarray(this.start, this.end));
        this.buf = grown;
      } else {
        this.buf.copyWithin(0, this.start, this.end);
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }
}
