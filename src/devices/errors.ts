/** A meter-level failure with a typed code a technician and the station can act on. */
export class MeterError extends Error {
  constructor(
    readonly code:
      | 'METER_TIMEOUT'
      | 'DLT645_ABNORMAL'
      | 'DLT645_BAD_REPLY'
      | 'DLT645_BAD_VALUE'
      | 'RELAY_NOT_CONFIRMED'
      | 'UNKNOWN_POINT'
      | string,
    message: string,
    /** Named error bits of an abnormal reply (e.g. `password-error`). */
    readonly errors: string[] = [],
  ) {
    super(message);
    this.name = 'MeterError';
  }
}
