import type { ReplyError } from '../../protocols/dlt645/index.js';
import { MeterdError } from '../errors.js';

export type MeterErrorCode =
  /** The meter's own refusal (DLT645_ABNORMAL), or a reply to another function or too short to read. */
  | ReplyError['code']
  | 'METER_TIMEOUT'
  /** A reply that does not carry what was asked, or a value that does not decode. */
  | 'DLT645_BAD_REPLY'
  | 'DLT645_BAD_VALUE'
  | 'UNKNOWN_POINT'
  | 'RELAY_NOT_CONFIRMED'
  | 'RELAY_UNSUPPORTED'
  | 'RELAY_STATE_UNREADABLE'
  | 'CREDIT_UNSUPPORTED'
  | 'CREDIT_READBACK_FAILED'
  /** The point's meter was replaced while this exchange was on the wire: what it read belongs to the old meter. */
  | 'METER_REPLACED'
  | 'ACCOUNT_UNSUPPORTED'
  | 'ACCOUNT_REFUSED'
  | 'ACCOUNT_READBACK_FAILED';

/** A meter-level failure with a typed code a technician and the station can act on. */
export class MeterError extends MeterdError<MeterErrorCode> {
  override readonly name = 'MeterError';

  constructor(
    code: MeterErrorCode,
    message: string,
    /** Named error bits of an abnormal reply (e.g. `password-error`). */
    readonly errors: string[] = [],
  ) {
    super(code, message);
  }
}
