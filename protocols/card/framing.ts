import { decodeCardRequest, encodeCardReply } from './commands.js';
import type { CardReply, EncoderAnswer } from './reader-status.js';
import type { CardFamily, CardRequest } from './requests.js';
import type { Result } from './result.js';
import { starReply } from './star-commands.js';
import { StarDecoder } from './star.js';
import { stxReply } from './stx-commands.js';
import { StxDecoder } from './stx.js';

/** One decoded frame of either family: STAR's HEAD/CODE/DATA, or STX's CMD and the bytes after it. */
export interface CardFrame {
  readonly family: CardFamily;
  /** STAR: 60H or E0H. STX: always 02H. */
  readonly head: number;
  /** STAR: command (request) or status/NACK code (reply). STX: the command byte (echoed in replies). */
  readonly code: number;
  /** STAR: DATA. STX: everything after CMD (a reply's STATUS first). */
  readonly data: Uint8Array;
}

export type CardDecodeEvent = { kind: 'frame'; frame: CardFrame; raw: Uint8Array } | { kind: 'discard'; bytes: Uint8Array; reason: string };

/**
 * STAR (60 LEN CMD DATA LRC 03, ASCII-hex) or meterd's binary STX dialect: one streaming decoder for whichever family
 * an encoder profile names, with the `push`/`reset` shape the bus expects. Never throws.
 *
 * @example
 * const bus = new FrameBus({ id: 'encoder1', transport, decoder: new CardFrameDecoder('star') });
 */
export class CardFrameDecoder {
  readonly #family: CardFamily;
  readonly #star = new StarDecoder();
  readonly #stx = new StxDecoder();

  constructor(family: CardFamily) {
    if (family !== 'star' && family !== 'stx') throw new TypeError(`family is not star or stx: ${String(family)}`);
    this.#family = family;
  }

  get family(): CardFamily {
    return this.#family;
  }

  push(chunk: Uint8Array): CardDecodeEvent[] {
    if (this.#family === 'star') {
      return this.#star
        .push(chunk)
        .map((ev) => (ev.kind === 'frame' ? { kind: 'frame', frame: { family: 'star', ...ev.frame }, raw: ev.raw } : ev));
    }
    return this.#stx
      .push(chunk)
      .map((ev) =>
        ev.kind === 'frame'
          ? { kind: 'frame', frame: { family: 'stx', head: 0x02, code: ev.frame.cmd, data: ev.frame.body }, raw: ev.raw }
          : ev,
      );
  }

  reset(): void {
    this.#star.reset();
    this.#stx.reset();
  }
}

/** The reply a frame carries (STAR: ACK data or NACK code; STX: STATUS and data). */
export function replyOf(frame: CardFrame): CardReply {
  return frame.family === 'star' ? starReply(frame) : stxReply({ cmd: frame.code, body: frame.data });
}

/**
 * Whether `frame` can answer the request with command `code`: STX replies echo the command; STAR replies carry none,
 * so any STAR packet answers the one request outstanding.
 */
export function answersRequest(frame: CardFrame, family: CardFamily, code: number): boolean {
  if (frame.family !== family) return false;
  return family === 'star' ? true : frame.code === code;
}

/** The encoder's side: a request frame back to the vendor-neutral request. */
export function requestOf(frame: CardFrame): Result<CardRequest> {
  return decodeCardRequest(frame.family, frame.code, frame.data);
}

/** The encoder's side: the reply frame to `request` (a decoded request frame) for `answer`. */
export function replyTo(request: CardFrame, answer: EncoderAnswer): Uint8Array {
  return encodeCardReply(request.family, request.code, answer);
}
