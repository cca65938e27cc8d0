/** A typed outcome for card codec functions: input from the wire never throws, it returns an error value. */
export type Result<T, E = CardCodecError> = { ok: true; value: T } | { ok: false; error: E };

/** Every code a card codec function can return, so callers can switch on them exhaustively. */
export type CardCodecErrorCode =
  // commands.ts
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

/** Uppercase hex without separators: how card bytes are shown to a technician. */
export function toHex(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += (bytes[i]! & 0xff).toString(16).padStart(2, '0');
  return s.toUpperCase();
}

/** Hex text (whitespace ignored) to bytes; undefined for odd length or a non-hex character. */
export function fromHex(text: string): Uint8Array | undefined {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) return undefined;
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
