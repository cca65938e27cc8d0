import type { EncoderAnswer } from './reader-status.js';
import type { CardFamily, CardRequest, EncodedRequest } from './requests.js';
import type { Result } from './result.js';
import { decodeStarCommand, encodeStarAnswer, encodeStarCommand } from './star-commands.js';
import { decodeStxCommand, encodeStxAnswer, encodeStxCommand } from './stx-commands.js';

// One entry per direction for whichever family an encoder profile names; each family's codes live in its own module.

/**
 * STAR (60 LEN CMD DATA LRC 03, ASCII-hex) or meterd's STX dialect: the wire bytes of one vendor-neutral request.
 * Returns NOT_IN_FAMILY for an operation the family has no command for, BAD_COMMAND_DATA for values that do not fit.
 *
 * @example
 * encodeCardRequest('star', { op: 'read', zone: 'main', addr: 0x20, len: 16 }); // bytes "60042300201077" + 03H, code 23H
 */
export function encodeCardRequest(family: CardFamily, req: CardRequest): Result<EncodedRequest> {
  return family === 'star' ? encodeStarCommand(req) : encodeStxCommand(req);
}

/** STAR or STX: a decoded request frame back to the vendor-neutral request; UNKNOWN_COMMAND or BAD_COMMAND_DATA otherwise. */
export function decodeCardRequest(family: CardFamily, code: number, data: Uint8Array): Result<CardRequest> {
  return family === 'star' ? decodeStarCommand(code, data) : decodeStxCommand(code, data);
}

/** STAR or STX: the reply frame an encoder sends for an answer to the request with command `code`. */
export function encodeCardReply(family: CardFamily, code: number, answer: EncoderAnswer): Uint8Array {
  return family === 'star' ? encodeStarAnswer(answer) : encodeStxAnswer(code, answer);
}
