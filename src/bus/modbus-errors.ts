import type { ExceptionName } from '../../protocols/modbus/index.js';
import { MeterdError } from '../errors.js';

// Apart from modbus-link.ts so a driver can tell a Modbus refusal without loading modbus-serial (only a gateway with
// a Modbus bus does).

export type ModbusErrorCode =
  /** The meter answered with an exception response: it understood the request and refused it. */
  | 'MODBUS_EXCEPTION'
  /** A reply arrived but was unusable (bad CRC, wrong length, another unit's reply), after every retry. */
  | 'MODBUS_BAD_REPLY';

/**
 * The meter's own refusal (an exception response) or an unusable reply. Never a timeout: a timeout is a
 * `BusError` with code BUS_TIMEOUT, because the two mean different things for a write (refused vs. unknown).
 */
export class ModbusError extends MeterdError<ModbusErrorCode> {
  override readonly name = 'ModbusError';
  readonly unit: number;
  readonly functionCode: number;
  /** For MODBUS_EXCEPTION: ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, … */
  readonly exception: ExceptionName | undefined;
  /** For MODBUS_EXCEPTION: the code on the wire (2 for ILLEGAL_DATA_ADDRESS). */
  readonly exceptionCode: number | undefined;

  constructor(
    code: ModbusErrorCode,
    message: string,
    details: { unit: number; functionCode: number; exception?: ExceptionName; exceptionCode?: number },
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.unit = details.unit;
    this.functionCode = details.functionCode;
    this.exception = details.exception;
    this.exceptionCode = details.exceptionCode;
  }
}

export function isModbusError(err: unknown, code?: ModbusErrorCode): err is ModbusError {
  return err instanceof ModbusError && (code === undefined || err.code === code);
}
