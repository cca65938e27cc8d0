import { MeterdError } from '../errors.js';

export type ControlErrorCode =
  /** Another meterd answers on the control socket: a second daemon for the same data directory is refused. */
  | 'DAEMON_RUNNING'
  /** The control socket's path is taken by something that is not a socket, or cannot be created. */
  | 'CONTROL_SOCKET_UNUSABLE';

/** Every failure the control socket's server raises on purpose. */
export class ControlError extends MeterdError<ControlErrorCode> {
  override readonly name = 'ControlError';
}
