import { MeterdError } from '../errors.js';

export type BusErrorCode =
  /** No matching reply within the deadline, after every retry. */
  | 'BUS_TIMEOUT'
  /** The port was lost (adapter unplugged, converter gone); the bus is reopening it. */
  | 'BUS_DOWN'
  /** A poll was refused because the poll queue was full: the bus cannot keep up with the schedule. */
  | 'BUS_BUSY_SKIPPED'
  /** The bus was closed (shutdown) before the job ran or finished. */
  | 'BUS_CLOSED'
  /** The caller cancelled the job. */
  | 'ABORTED'
  /** The port could not be opened (missing, locked, no permission, connection refused). */
  | 'PORT_OPEN_FAILED'
  /** A port spec that is neither a device path nor tcp://host:port. */
  | 'PORT_SPEC_INVALID';

/** Every failure the bus raises on purpose: `code` is stable for code and the station, `message` says what to check. */
export class BusError extends MeterdError<BusErrorCode> {
  override readonly name = 'BusError';

  constructor(code: BusErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }

  /** A skipped poll: routine under load, so no stack trace (capturing it was most of the cost of skipping). */
  static skipped(message: string): BusError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    const err = new BusError('BUS_BUSY_SKIPPED', message);
    Error.stackTraceLimit = limit;
    return err;
  }
}

export function isBusError(err: unknown, code?: BusErrorCode): err is BusError {
  return err instanceof BusError && (code === undefined || err.code === code);
}
