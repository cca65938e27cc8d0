/**
 * Modbus exception codes as data, and one classifier that turns whatever `modbus-serial` rejects with into
 * exception / timeout / transport. The distinction matters for credit: an exception is the meter's answer
 * (nothing was done, unless ACKNOWLEDGE), a timeout means the request may have executed (read back before retrying).
 *
 *   try { await client.readInputRegisters(0, 2) }
 *   catch (err) { const failure = classifyModbusError(err); if (failure.kind === 'timeout') … }
 */

export type ExceptionName =
  | 'ILLEGAL_FUNCTION'
  | 'ILLEGAL_DATA_ADDRESS'
  | 'ILLEGAL_DATA_VALUE'
  | 'SERVER_DEVICE_FAILURE'
  | 'ACKNOWLEDGE'
  | 'SERVER_DEVICE_BUSY'
  | 'NEGATIVE_ACKNOWLEDGE'
  | 'MEMORY_PARITY_ERROR'
  | 'GATEWAY_PATH_UNAVAILABLE'
  | 'GATEWAY_TARGET_FAILED_TO_RESPOND'
  | 'UNKNOWN_EXCEPTION';

export interface ModbusException {
  readonly code: number;
  readonly name: ExceptionName;
  /** What a technician should understand and check. */
  readonly message: string;
}

/** Exception codes 01–0B (MODBUS Application Protocol v1.1b3 §7 "MODBUS Exception Codes"; 09 is not assigned). */
export const EXCEPTIONS: readonly ModbusException[] = [
  {
    code: 0x01,
    name: 'ILLEGAL_FUNCTION',
    message:
      'the meter does not support this function code (check the profile: some meters only accept FC16 for writes, or only FC03 for reads)',
  },
  {
    code: 0x02,
    name: 'ILLEGAL_DATA_ADDRESS',
    message:
      'the meter has no register at this address, or the request runs into an unmapped register (check 0- vs 1-based addresses and the bridged gaps)',
  },
  {
    code: 0x03,
    name: 'ILLEGAL_DATA_VALUE',
    message: 'the meter rejected the value or the quantity in the request (out of range for the register, or too many registers at once)',
  },
  {
    code: 0x04,
    name: 'SERVER_DEVICE_FAILURE',
    message: 'the meter failed internally while executing the request; it may have been partly done (read back before retrying)',
  },
  { code: 0x05, name: 'ACKNOWLEDGE', message: 'the meter accepted the request and is still processing it; do not resend, read back later' },
  { code: 0x06, name: 'SERVER_DEVICE_BUSY', message: 'the meter is busy with a long-running command; retry later' },
  { code: 0x07, name: 'NEGATIVE_ACKNOWLEDGE', message: 'the meter cannot perform the requested program function' },
  { code: 0x08, name: 'MEMORY_PARITY_ERROR', message: 'the meter found a parity error in its record memory; the device needs service' },
  {
    code: 0x0a,
    name: 'GATEWAY_PATH_UNAVAILABLE',
    message: 'the Modbus gateway has no path to this unit (gateway misconfigured or overloaded)',
  },
  {
    code: 0x0b,
    name: 'GATEWAY_TARGET_FAILED_TO_RESPOND',
    message: 'the Modbus gateway got no answer from the meter (meter offline, wrong unit id, or wiring on the gateway serial side)',
  },
];

const BY_CODE = new Map(EXCEPTIONS.map((e) => [e.code, e]));

/** The named exception for a code from an exception response (MODBUS Application Protocol v1.1b3 §7); unassigned codes are `UNKNOWN_EXCEPTION` with the number kept. */
export function describeException(code: number): ModbusException {
  return (
    BY_CODE.get(code) ?? {
      code,
      name: 'UNKNOWN_EXCEPTION',
      message: `the meter answered with exception code ${code}, which the Modbus standard does not assign (see the meter's manual)`,
    }
  );
}

export type ModbusFailure =
  | ({ readonly kind: 'exception' } & ModbusException)
  | { readonly kind: 'timeout'; readonly message: string }
  | { readonly kind: 'transport'; readonly code: string; readonly message: string };

const TIMEOUT_MESSAGE =
  'the meter did not answer within the response timeout (check unit id, wiring, baud rate and parity); a write may still have executed: read back before retrying';

function field(err: object, key: string): unknown {
  return (err as Record<string, unknown>)[key];
}

/**
 * Classify a rejection from `modbus-serial` (exception responses per MODBUS Application Protocol v1.1b3 §7).
 * Checked in this order so a timeout is never taken for an exception or the reverse:
 * `modbusCode` (an exception response) → transaction timeout (`errno: 'ETIMEDOUT'`, "Timed out") → transport.
 */
export function classifyModbusError(err: unknown): ModbusFailure {
  if (err === null || (typeof err !== 'object' && typeof err !== 'function')) {
    return { kind: 'transport', code: 'UNKNOWN', message: `Modbus request failed: ${String(err)}` };
  }
  const modbusCode = field(err, 'modbusCode');
  if (typeof modbusCode === 'number' && Number.isInteger(modbusCode) && modbusCode > 0 && modbusCode < 0x100) {
    return { kind: 'exception', ...describeException(modbusCode) };
  }
  const message = typeof field(err, 'message') === 'string' ? (field(err, 'message') as string) : '';
  const name = field(err, 'name');
  const errno = field(err, 'errno');
  const code = field(err, 'code');
  // modbus-serial's TransactionTimedOutError carries errno 'ETIMEDOUT' as a string; Node's own socket errors carry a
  // numeric errno and code 'ETIMEDOUT', and those come from connecting, where nothing was sent: transport.
  if (errno === 'ETIMEDOUT' || name === 'TransactionTimedOutError' || message === 'Timed out') {
    return { kind: 'timeout', message: TIMEOUT_MESSAGE };
  }
  if (message === 'CRC error') {
    return {
      kind: 'transport',
      code: 'CRC_ERROR',
      message: 'a reply arrived with a bad CRC (noise, a second master, or wrong baud rate/parity); the request may have executed',
    };
  }
  if (name === 'PortNotOpenError' || message === 'Port Not Open') {
    return { kind: 'transport', code: 'PORT_NOT_OPEN', message: 'the serial port or TCP connection is not open; nothing was sent' };
  }
  if (name === 'BadAddressError' || message === 'Bad Client Address') {
    return {
      kind: 'transport',
      code: 'BAD_ADDRESS',
      message: 'the request was made without a unit id or data address (a programming error); nothing was sent',
    };
  }
  if (message.startsWith('Data length error')) {
    return {
      kind: 'transport',
      code: 'BAD_REPLY_LENGTH',
      message: `the reply has the wrong length (${message}); the request may have executed`,
    };
  }
  if (message.startsWith('Unexpected data error')) {
    return {
      kind: 'transport',
      code: 'UNEXPECTED_REPLY',
      message: `the reply is from another unit or for another function (${message}); check for duplicate unit ids on the bus`,
    };
  }
  if (typeof code === 'string' && code !== '') {
    return { kind: 'transport', code, message: message || code };
  }
  if (name === 'SerialPortError') {
    return { kind: 'transport', code: 'SERIAL_PORT', message: `serial port error: ${message}` };
  }
  return { kind: 'transport', code: 'UNKNOWN', message: message || `Modbus request failed: ${String(name ?? err)}` };
}
