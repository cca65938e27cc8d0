/** A typed outcome for card codec functions: input from the wire never throws, it returns an error value. */
export type Result<T, E = CardCodecError> = { ok: true; value: T } | { ok: false; error: E };

/** Every code a card codec function can return, so callers can switch on them exhaustively. */
export type CardCodecErrorCode =
  // requests.ts, star-commands.ts, stx-commands.ts
  | 'UNKNOWN_COMMAND'
  | 'BAD_COMMAND_DATA'
  | 'NOT_IN_FAMILY'
  | 'BAD_REPLY'
  // layout.ts
  | 'FIELD_VALUE'
  | 'OUT_OF_MEMORY'
  // star.ts / stx.ts
  | 'TOO_LONG';

export interface CardCodecError {
  readonly code: CardCodecErrorCode;
  readonly message: string;
}

/** A successful card codec outcome. */
export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** A failed card codec outcome with a stable code and a message a technician can act on. */
export function fail(code: CardCodecErrorCode, message: string): { ok: false; error: CardCodecError } {
  return { ok: false, error: { code, message } };
}

export { fromHex, toHex } from '../hex.js';
