import { systemClock, type Clock } from '../clock.js';
import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import { silentLogger, type Logger } from '../log.js';
import { USER_ROLES, type AmountUnit, type CardLayout, type CardRole } from '../profiles/card-layout.js';
import { readCard, type CardReading } from './read.js';
import { rewriteCard } from './write.js';

/** Why a card cannot take a sale now. */
export type SaleRefusalCode = 'CARD_NOT_FOR_METER' | 'PURCHASE_PENDING' | 'CARD_COUNT_MISMATCH' | 'WRONG_CARD_ROLE' | 'CARD_DAMAGED';

export type SaleCheck =
  | { readonly ok: true; readonly count: number }
  | { readonly ok: false; readonly code: SaleRefusalCode; readonly message: string };

/**
 * Decides whether a card can take the next sale for a meter (docs/reference/cards.md § Selling a card), from what the card says and
 * the books' purchase count for that meter. Pure. On success `count` is the purchase count to write: books + 1.
 *
 * - CARD_NOT_FOR_METER: the card is bound to another meter.
 * - PURCHASE_PENDING: the card still carries a purchase the meter has not loaded (card count = books count and the
 *   write-back shows the meter behind, or no write-back at all). Selling on top would destroy that purchase.
 * - CARD_COUNT_MISMATCH: card or meter is ahead of the books (a sale the books do not know), or the books have a sale
 *   this card does not carry (re-issue it instead).
 * - WRONG_CARD_ROLE: a check, clear or parameter card. CARD_DAMAGED: the identity area does not check.
 *
 * @example
 * const check = prepareSale(card, { meterNumber: '000012345678', booksCount: 4 });
 * if (check.ok) await writePurchase(encoder, layout, { count: check.count, amount: 2000, role: 'purchase', psc, card });
 */
export function prepareSale(card: CardReading, books: { meterNumber: string; booksCount: number }): SaleCheck {
  const refuse = (code: SaleRefusalCode, message: string): SaleCheck => ({ ok: false, code, message });
  const { booksCount } = books;
  if (!card.identityOk)
    return refuse('CARD_DAMAGED', `the card's identity area is damaged (${card.problems.join('; ')}); issue a replacement card`);
  if (card.role !== 'unknown' && !USER_ROLES.includes(card.role))
    return refuse('WRONG_CARD_ROLE', `this is a ${card.role} card, not a customer card; a sale goes on the customer's own card`);
  if (card.meterNumber !== books.meterNumber)
    return refuse('CARD_NOT_FOR_METER', `this card belongs to meter ${card.meterNumber}, not ${books.meterNumber}`);
  const meterCount = card.writeBack?.purchaseCount;
  if (meterCount !== undefined && meterCount > booksCount) {
    return refuse(
      'CARD_COUNT_MISMATCH',
      `meter ${card.meterNumber} reports ${meterCount} purchases but the books have ${booksCount}: a load came from outside this station; reconcile before selling`,
    );
  }
  if (card.valid) {
    const n = card.purchase.count;
    if (n > booksCount)
      return refuse(
        'CARD_COUNT_MISMATCH',
        `the card carries purchase ${n} but the books have only ${booksCount} for meter ${card.meterNumber}: a sale was made elsewhere or not recorded; reconcile before selling`,
      );
    if (n < booksCount)
      return refuse(
        'CARD_COUNT_MISMATCH',
        `the books have purchase ${booksCount} for meter ${card.meterNumber} but this card carries ${n}: re-issue purchase ${booksCount} (card reissue) instead of selling`,
      );
    if (n > 0 && meterCount !== n) {
      const seen = meterCount === undefined ? 'the card was never inserted in the meter' : `the meter is at ${meterCount}`;
      return refuse(
        'PURCHASE_PENDING',
        `purchase ${n} is still on the card and not yet loaded (${seen}): the customer must insert the card in the meter first`,
      );
    }
    return { ok: true, count: booksCount + 1 };
  }
  // Not valid (an interrupted write, or never sold): what the purchase area says cannot be trusted; the meter's can.
  if (booksCount > 0 && meterCount !== booksCount) {
    const seen = meterCount === undefined ? 'no meter write-back on the card' : `the meter is at ${meterCount}`;
    return refuse(
      'PURCHASE_PENDING',
      `the books have purchase ${booksCount} for meter ${card.meterNumber} but the card is not valid and ${seen}: re-issue purchase ${booksCount} (card reissue)`,
    );
  }
  return { ok: true, count: booksCount + 1 };
}

export interface PurchaseWrite {
  readonly count: number;
  /** In the layout's unit (0.01 kWh or fen), a whole number > 0. */
  readonly amount: number;
  readonly role: Extract<CardRole, 'purchase' | 'opening' | 'replacement'>;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
  /** The reading the sale was prepared from: the write refuses if another card is in the encoder now. */
  readonly card?: CardReading;
}

/**
 * Writes a purchase onto the card in the order that fails closed: valid flag cleared, purchase data, checksum, backup,
 * valid flag set last, every byte read back. A card pulled mid-write fails with CARD_REMOVED and is left not valid.
 */
export async function writePurchase(encoder: CardEncoder, layout: CardLayout, purchase: PurchaseWrite): Promise<void> {
  checkAmount(layout, purchase.amount);
  if (!Number.isSafeInteger(purchase.count) || purchase.count < 1)
    throw new CardError('VALUE_INVALID', `purchase count ${purchase.count} is not a whole number ≥ 1`);
  await rewriteCard(
    encoder,
    layout,
    { purchase: { role: layout.roles[purchase.role], purchaseCount: purchase.count, purchaseAmount: purchase.amount } },
    {
      psc: purchase.psc,
      ...(purchase.forcePsc !== undefined ? { forcePsc: purchase.forcePsc } : {}),
      ...(purchase.card
        ? {
            expect: {
              meterNumber: purchase.card.meterNumber,
              ...(purchase.card.cardSerial !== undefined ? { cardSerial: purchase.card.cardSerial } : {}),
            },
          }
        : {}),
    },
  );
}

/** A card sale as the books record it (channel `card`). */
export interface CardSale {
  readonly channel: 'card';
  readonly meterNumber: string;
  readonly customerNumber?: string;
  readonly cardSerial?: number | string;
  readonly purchaseCount: number;
  /** In `unit`: 0.01 kWh or fen. */
  readonly amount: number;
  readonly unit: AmountUnit;
  readonly operator: string;
  readonly encoder: string;
  readonly layout: string;
  /** When the card was written and verified (ISO 8601). */
  readonly at: string;
}

/** Where a verified card sale goes: the ledger owner's implementation writes it to the books. */
export interface SaleRecorder {
  record(sale: CardSale): Promise<void>;
}

/** What the books know of a meter's card sales: the last purchase (count and amount), or none yet. */
export interface SaleBooks {
  lastSale(meterNumber: string): Promise<{ readonly count: number; readonly amount: number } | undefined>;
}

export interface SaleRequest {
  readonly meterNumber: string;
  /** The books' purchase count for the meter before this sale. */
  readonly booksCount: number;
  /** In the layout's unit (0.01 kWh or fen). */
  readonly amount: number;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

/**
 * A counter sale on a card: read it, check it (prepareSale), write count = books + 1 and the amount (writePurchase,
 * every byte read back), and only then record the sale. Nothing is recorded when any step fails; a card pulled mid-write
 * is CARD_REMOVED and not valid for the meter.
 *
 * @example
 * const sale = await sellCard(encoder, layout, { meterNumber, booksCount: 4, amount: 2000, operator: 'alice', psc }, recorder);
 */
export async function sellCard(
  encoder: CardEncoder,
  layout: CardLayout,
  request: SaleRequest,
  recorder: SaleRecorder,
  opts: {
    clock?: Clock;
    logger?: Logger;
    /** Sees the card before the sale is decided: refuses a lost card, adopts a meter at its first visit (the books' count to sell from). */
    prepare?: (card: CardReading, booksCount: number) => Promise<number>;
  } = {},
): Promise<CardSale> {
  const log = (opts.logger ?? silentLogger).child({ encoder: encoder.id, meter: request.meterNumber });
  checkAmount(layout, request.amount);
  if (request.operator.trim() === '') throw new CardError('OPERATOR_MISSING', 'a sale needs the operator who takes the money');
  const card = await readCard(encoder, layout);
  const booksCount = opts.prepare ? await opts.prepare(card, request.booksCount) : request.booksCount;
  const check = prepareSale(card, { ...request, booksCount });
  if (!check.ok) {
    log.info({ event: 'card-sale-refused', code: check.code }, check.message);
    throw new CardError(check.code, check.message);
  }
  await writePurchase(encoder, layout, {
    count: check.count,
    amount: request.amount,
    role: 'purchase',
    psc: request.psc,
    ...(request.forcePsc !== undefined ? { forcePsc: request.forcePsc } : {}),
    card,
  });
  const sale: CardSale = {
    channel: 'card',
    meterNumber: card.meterNumber,
    ...(card.customerNumber !== undefined ? { customerNumber: card.customerNumber } : {}),
    ...(card.cardSerial !== undefined ? { cardSerial: card.cardSerial } : {}),
    purchaseCount: check.count,
    amount: request.amount,
    unit: layout.amountUnit,
    operator: request.operator,
    encoder: encoder.id,
    layout: layout.id,
    at: new Date((opts.clock ?? systemClock).now()).toISOString(),
  };
  try {
    await recorder.record(sale);
  } catch (err) {
    log.error(
      { event: 'card-sale-unrecorded', code: 'SALE_NOT_RECORDED', err, purchaseCount: check.count },
      'card written but the sale was not recorded',
    );
    throw new CardError(
      'SALE_NOT_RECORDED',
      `the card now carries purchase ${check.count} (${request.amount} ${layout.amountUnit}) for meter ${card.meterNumber}, but the books refused it: record it by hand before the next sale (${(err as Error).message})`,
      {},
      { cause: err },
    );
  }
  log.info(
    { event: 'card-sold', purchaseCount: check.count, amount: request.amount, unit: layout.amountUnit, operator: request.operator },
    'card sale written and recorded',
  );
  await encoder.beep(100).catch(() => undefined);
  return sale;
}

/**
 * Writes the books' last purchase again (same count, same amount) onto the customer's card, as a replacement
 * (补卡): not a new sale, nothing is recorded. Refused when the meter already loaded that purchase (ALREADY_LOADED).
 */
export async function reissueCard(
  encoder: CardEncoder,
  layout: CardLayout,
  request: { meterNumber: string; lastSale: { count: number; amount: number }; psc: Uint8Array; forcePsc?: boolean },
): Promise<{ count: number; amount: number }> {
  const { lastSale } = request;
  if (lastSale.count < 1)
    throw new CardError('CARD_COUNT_MISMATCH', `the books have no purchase for meter ${request.meterNumber}; there is nothing to re-issue`);
  const card = await readCard(encoder, layout);
  if (card.role !== 'unknown' && !USER_ROLES.includes(card.role))
    throw new CardError('WRONG_CARD_ROLE', `this is a ${card.role} card; re-issue onto the customer's card`);
  if (card.meterNumber !== request.meterNumber)
    throw new CardError('CARD_NOT_FOR_METER', `this card belongs to meter ${card.meterNumber}, not ${request.meterNumber}`);
  const meterCount = card.writeBack?.purchaseCount;
  if (meterCount !== undefined && meterCount >= lastSale.count) {
    throw new CardError(
      'ALREADY_LOADED',
      `meter ${card.meterNumber} already loaded purchase ${lastSale.count} (write-back ${meterCount}); a re-issue would add nothing`,
    );
  }
  if (card.valid && card.purchase.count > lastSale.count) {
    throw new CardError(
      'CARD_COUNT_MISMATCH',
      `the card carries purchase ${card.purchase.count}, newer than the books' ${lastSale.count}; reconcile first`,
    );
  }
  await writePurchase(encoder, layout, {
    count: lastSale.count,
    amount: lastSale.amount,
    role: 'replacement',
    psc: request.psc,
    ...(request.forcePsc ? { forcePsc: true } : {}),
    card,
  });
  await encoder.beep(100).catch(() => undefined);
  return { count: lastSale.count, amount: lastSale.amount };
}

function checkAmount(layout: CardLayout, amount: number): void {
  const field = layout.fields.get('purchaseAmount')!;
  const max = 2 ** (8 * field.length) - 1;
  if (!Number.isSafeInteger(amount) || amount <= 0 || amount > max) {
    throw new CardError('AMOUNT_INVALID', `amount ${amount} (${layout.amountUnit}) is not a whole number from 1 to ${max}`);
  }
}
