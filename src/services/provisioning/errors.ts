import { MeterdError } from '../../errors.js';

export type ProvisioningErrorCode =
  /** No customer with that number in the archive. */
  | 'UNKNOWN_CUSTOMER'
  /** A meter the config does not have. */
  | 'UNKNOWN_METER'
  /** The meter has history in the books that disagrees with what it shows now. */
  | 'BOOKS_DISAGREE'
  /** The meter's profile has no way to open an account remotely (no `account` method, or no credit port for it). */
  | 'ACCOUNT_NOT_OPENABLE'
  /** The customer or the meter is bound elsewhere in the archive. */
  | 'ARCHIVE_CONFLICT'
  /** The meter refused the account opening (already opened, a count or MAC error, …): the reason is the meter's. */
  | 'ACCOUNT_OPEN_REFUSED'
  /** The meter took the write but does not read back the customer number or count it should. */
  | 'ACCOUNT_NOT_VERIFIED';

/** A provisioning step refused: the message says what to do. */
export class ProvisioningError extends MeterdError<ProvisioningErrorCode> {
  override readonly name = 'ProvisioningError';
}
