/** A typed outcome for codec functions: wire input never throws, it returns an error value. */
export type Result<T, E = CodecError> = { ok: true; value: T } | { ok: false; error: E };

export interface CodecError {
  readonly code: string;
  readonly message: string;
}

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail(code: string, message: string): { ok: false; error: CodecError } {
  return { ok: false, error: { code, message } };
}

export { fromHex, toHex } from '../hex.js';
