import { MeterdError } from '../../errors.js';

export type ProvisioningErrorCode =
  /** No customer with that number in the archive. */
  | 'UNKNOWN_CUSTOMER'
  /** A meter the config does not have. */
  | 'UNKNOWN_METER'
  /** The meter has history in the books that disagrees with what it shows now. */
  | 'BOOKS_DISAGREE';

/** A provisioning step refused: the message says what to do. */
export class ProvisioningError extends MeterdError<ProvisioningErrorCode> {
  override readonly name = 'ProvisioningError';
}
