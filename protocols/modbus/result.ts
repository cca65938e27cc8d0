/** A typed outcome for codec functions: input from the wire never throws, it returns an error value. */
export type Result<T, E = ModbusCodecError> = { ok: true; value: T } | { ok: false; error: E };

/** Every code a Modbus codec function can return, so callers can switch on them exhaustively. */
export type ModbusCodecErrorCode =
  // values.ts
  | 'WRONG_WORD_COUNT'
  | 'BAD_WORD'
  | 'NOT_A_NUMBER'
  | 'UNSAFE_INTEGER'
  | 'OUT_OF_RANGE'
  | 'NOT_AN_INTEGER'
  | 'NOT_ON_SCALE'
  // plan.ts
  | 'INVALID_OPTION'
  | 'DUPLICATE_POINT'
  | 'ADDRESS_OUT_OF_RANGE'
  | 'TYPE_NOT_IN_TABLE'
  | 'POINT_TOO_LARGE'
  | 'POINT_IN_FORBIDDEN_RANGE'
  | 'SHORT_REPLY'
  | 'WRONG_REPLY_LENGTH'
  // crc.ts
  | 'TRUNCATED'
  | 'TOO_LONG'
  | 'BAD_CRC'
  | 'MALFORMED_PDU';

export interface ModbusCodecError {
  readonly code: ModbusCodecErrorCode;
  readonly message: string;
}

/** A successful codec outcome (no protocol clause: the shape every Modbus codec function returns). */
export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

/** A failed codec outcome with a stable code and a message a technician can act on. */
export function fail(code: ModbusCodecErrorCode, message: string): { ok: false; error: ModbusCodecError } {
  return { ok: false, error: { code, message } };
}
