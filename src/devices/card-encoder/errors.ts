import { hexByte } from '../../../protocols/card/index.js';
import { MeterdError } from '../../errors.js';

/**
 * Every way a card operation fails on purpose. The first group comes from the encoder and the card
 * (docs/reference/cards.md § The encoder driver contract), the second from meterd's own safety rules, the third from card workflows, the
 * fourth from the gateway's configuration of its counter.
 */
export type CardErrorCode =
  // encoder and card
  | 'NO_CARD'
  | 'CARD_REMOVED'
  | 'WRONG_CARD_KIND'
  | 'PSC_REJECTED'
  | 'CARD_LOCKED'
  | 'WRITE_VERIFY_FAILED'
  | 'READER_REFUSED'
  | 'TIMEOUT'
  | 'FRAMING_ERROR'
  | 'NOT_SUPPORTED'
  // safety rules
  | 'PSC_ATTEMPTS_LOW'
  | 'PSC_NOT_PRESENTED'
  | 'CONFIRMATION_REQUIRED'
  // workflows
  | 'NOT_OUR_CARD'
  | 'CARD_DAMAGED'
  | 'CARD_NOT_FOR_METER'
  | 'WRONG_CARD_ROLE'
  | 'PURCHASE_PENDING'
  | 'CARD_COUNT_MISMATCH'
  | 'ALREADY_LOADED'
  | 'AMOUNT_INVALID'
  | 'VALUE_INVALID'
  | 'OPERATOR_MISSING'
  | 'CARD_SWAPPED'
  | 'SALE_NOT_RECORDED'
  | 'NOTHING_TO_REISSUE'
  // provisioning (docs/provisioning.md): opening, replacing, adopting at the first visit
  | 'CARD_REPORTED_LOST'
  | 'ADOPTION_NEEDED'
  | 'CARD_NOT_BLANK'
  | 'UNKNOWN_CUSTOMER'
  | 'CUSTOMER_HAS_CARD'
  | 'ARCHIVE_CONFLICT'
  // rewriting a damaged card from the books, parameter cards
  | 'CARD_NOT_ISSUED'
  | 'CARD_UNKNOWN'
  | 'NOTHING_TO_REWRITE'
  | 'NO_PARAMETER_AREA'
  // the counter as the gateway runs it: a station request the gateway config cannot serve
  | 'UNKNOWN_ENCODER'
  | 'CONFIG_INVALID'
  | 'NOT_A_CARD_METER'
  | 'UNIT_MISMATCH';

export interface CardErrorDetails {
  /** PSC_REJECTED, PSC_ATTEMPTS_LOW: what the error counter says now. */
  readonly attemptsLeft?: number;
  /** WRITE_VERIFY_FAILED: the first card address that did not read back as written. */
  readonly addr?: number;
  /** READER_REFUSED and the codes that come from a reader refusal: the byte the reader sent. */
  readonly readerCode?: number;
}

/** A card operation that failed: `code` for code and scripts, `message` for the cashier or technician at the counter. */
export class CardError extends MeterdError<CardErrorCode> {
  override readonly name = 'CardError';
  readonly attemptsLeft?: number;
  readonly addr?: number;
  readonly readerCode?: number;

  constructor(code: CardErrorCode, message: string, details: CardErrorDetails = {}, options?: { cause?: unknown }) {
    super(code, message, { ...options, ...(Object.keys(details).length > 0 ? { details: { ...details } } : {}) });
    if (details.attemptsLeft !== undefined) this.attemptsLeft = details.attemptsLeft;
    if (details.addr !== undefined) this.addr = details.addr;
    if (details.readerCode !== undefined) this.readerCode = details.readerCode;
  }
}

export function isCardError(err: unknown, code?: CardErrorCode): err is CardError {
  return err instanceof CardError && (code === undefined || err.code === code);
}

/** 41H: card addresses as technicians read them in layouts and data sheets. */
export const hexAddr = hexByte;
