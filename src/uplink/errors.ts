import { MeterdError } from '../errors.js';

export type UplinkErrorCode =
  /** A publish or subscribe was attempted while no broker connection is up; the caller retries after `connected`. */
  | 'UPLINK_NOT_CONNECTED'
  /** The connection dropped before the broker acknowledged; the message may or may not have reached the broker. */
  | 'UPLINK_CONNECTION_LOST'
  /** The broker answered with an MQTT 5 failure reason code (not authorized, quota exceeded, …). */
  | 'UPLINK_REJECTED'
  /** A topic, topic filter or id that would not make a valid, unambiguous MQTT topic. */
  | 'UPLINK_INVALID_TOPIC'
  /** A CA, certificate or key file named in the config could not be read. */
  | 'UPLINK_TLS_FILE'
  /** The operation did not finish within its deadline. */
  | 'UPLINK_TIMEOUT'
  /** The session or drain was used after close()/stop(). */
  | 'UPLINK_CLOSED';

/** Every failure the uplink raises on purpose: `code` is stable, `message` says what to check. */
export class UplinkError extends MeterdError<UplinkErrorCode> {
  override readonly name = 'UplinkError';

  constructor(code: UplinkErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export function isUplinkError(err: unknown, code?: UplinkErrorCode): err is UplinkError {
  return err instanceof UplinkError && (code === undefined || err.code === code);
}
