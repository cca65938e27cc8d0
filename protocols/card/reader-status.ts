import { hexByte } from './requests.js';

/**
 * Reader refusals by meaning. Each family's status byte or NACK code maps to one of these, and each maps to one driver
 * error code (`errorCodeOfStatus`).
 */
export type ReaderStatusName =
  | 'no-card'
  | 'card-removed'
  | 'card-not-supported'
  | 'psc-rejected'
  | 'card-locked'
  | 'address-out-of-range'
  | 'write-failed'
  | 'bad-parameter'
  | 'not-supported'
  | 'not-powered'
  | 'bad-frame'
  | 'unknown';

export interface ReaderStatus {
  readonly name: ReaderStatusName;
  /** The byte the reader sent (STAR: the NACK code; STX: the STATUS byte). */
  readonly code: number;
  readonly message: string;
}

/** The outcome of one request, as the driver sees it. */
export type CardReply = { readonly ok: true; readonly data: Uint8Array } | { readonly ok: false; readonly status: ReaderStatus };

const STATUS_MESSAGES: Record<ReaderStatusName, string> = {
  'no-card': 'no card in the encoder (or the card does not answer)',
  'card-removed': 'the card was removed during the operation',
  'card-not-supported': 'the encoder cannot drive this kind of card with that command',
  'psc-rejected': 'the card rejected the PSC',
  'card-locked': 'the card is locked: its PSC error counter is 0',
  'address-out-of-range': 'the address is outside the card zone',
  'write-failed': 'the encoder could not write the card',
  'bad-parameter': 'the encoder refused a parameter of the command',
  'not-supported': 'the encoder does not support this command',
  'not-powered': 'the card is not powered up',
  'bad-frame': 'the encoder received a broken frame (communication error)',
  unknown: 'the encoder refused the command',
};

/** The driver error codes a reader refusal can become. */
export type StatusErrorCode = 'NO_CARD' | 'CARD_REMOVED' | 'WRONG_CARD_KIND' | 'PSC_REJECTED' | 'CARD_LOCKED' | 'READER_REFUSED';

/** docs/reference/cards.md § The encoder driver contract, typed errors: the driver error code for a reader refusal of either family. */
export function errorCodeOfStatus(name: ReaderStatusName): StatusErrorCode {
  switch (name) {
    case 'no-card':
      return 'NO_CARD';
    case 'card-removed':
      return 'CARD_REMOVED';
    case 'card-not-supported':
      return 'WRONG_CARD_KIND';
    case 'psc-rejected':
      return 'PSC_REJECTED';
    case 'card-locked':
      return 'CARD_LOCKED';
    default:
      return 'READER_REFUSED';
  }
}

/** The refusal for a family's status byte: its meaning (`unknown` when the family table has none), the byte, a message. */
export function readerStatus(name: ReaderStatusName | undefined, code: number): ReaderStatus {
  const n = name ?? 'unknown';
  return { name: n, code, message: name ? STATUS_MESSAGES[n] : `the encoder refused the command with code ${hexByte(code)}` };
}

/** What an encoder answers: data, or a refusal by meaning. */
export type EncoderAnswer =
  | { readonly ok: true; readonly data: Uint8Array; readonly readerStatus?: number }
  | { readonly ok: false; readonly status: ReaderStatusName };
