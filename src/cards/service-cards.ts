import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import { USER_ROLES, type CardLayout } from '../profiles/card-layout.js';
import { readCard, type CardReading } from './read.js';
import { rewriteCard } from './write.js';

export interface ServiceCardRequest {
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

/**
 * Turns a card of ours into a check (query) card: the meter writes its balance, purchase count and events onto it when
 * inserted, and `card read` shows them (docs/reference/cards.md § Card roles, check card). With `anyMeter` the card works in every meter
 * of the system (meter number all zeros); otherwise it stays bound to its meter. The old write-back is erased.
 */
export async function makeCheckCard(
  encoder: CardEncoder,
  layout: CardLayout,
  request: ServiceCardRequest & { anyMeter?: boolean },
): Promise<CardReading> {
  const card = await readCard(encoder, layout);
  refuseUnloadedPurchase(card);
  const meterField = layout.fields.get('meterNumber')!;
  const identity = request.anyMeter ? { meterNumber: '0'.repeat(meterField.length * 2) } : undefined;
  await rewriteCard(
    encoder,
    layout,
    {
      ...(identity ? { identity } : {}),
      purchase: { role: layout.roles.check, purchaseCount: 0, purchaseAmount: 0 },
      clearWriteBack: true,
    },
    opts(request, card),
  );
  return readCard(encoder, layout);
}

/**
 * Turns a card of ours into a clear card for one meter: inserted, the meter clears its balance (commissioning, meter
 * swap). Needs `confirm: true`, and the meter number it is for: a clear card for the wrong meter wipes a customer's credit.
 */
export async function makeClearCard(
  encoder: CardEncoder,
  layout: CardLayout,
  request: ServiceCardRequest & { meterNumber: string; confirm: boolean },
): Promise<CardReading> {
  if (request.confirm !== true) {
    throw new CardError(
      'CONFIRMATION_REQUIRED',
      `a clear card erases the balance of meter ${request.meterNumber} when inserted; confirm it explicitly (--yes)`,
    );
  }
  const card = await readCard(encoder, layout);
  refuseUnloadedPurchase(card);
  await rewriteCard(
    encoder,
    layout,
    {
      identity: { meterNumber: request.meterNumber },
      purchase: { role: layout.roles.clear, purchaseCount: 0, purchaseAmount: 0 },
      clearWriteBack: true,
    },
    opts(request, card),
  );
  return readCard(encoder, layout);
}

function opts(request: ServiceCardRequest, card: CardReading) {
  return {
    psc: request.psc,
    ...(request.forcePsc !== undefined ? { forcePsc: request.forcePsc } : {}),
    expect: { meterNumber: card.meterNumber, ...(card.cardSerial !== undefined ? { cardSerial: card.cardSerial } : {}) },
  };
}

/** A customer card still carrying a purchase its meter has not loaded is never turned into anything else. */
function refuseUnloadedPurchase(card: CardReading): void {
  if (card.role === 'unknown' || !USER_ROLES.includes(card.role) || !card.valid || card.purchase.count === 0) return;
  if (card.writeBack?.purchaseCount === card.purchase.count) return;
  throw new CardError(
    'PURCHASE_PENDING',
    `this customer card still carries purchase ${card.purchase.count} for meter ${card.meterNumber}, not yet loaded; use another card`,
  );
}
