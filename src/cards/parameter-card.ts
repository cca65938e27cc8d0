import { readRecord } from '../../protocols/card/index.js';
import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import { PARAMETER_FIELDS, USER_ROLES, type CardLayout } from '../profiles/card-layout.js';
import type { ParameterLimits } from '../values/index.js';
import { readCard, readRecordBytes, type CardReading } from './read.js';
import { rewriteCard } from './write.js';

/** The values of a parameter card: price in 0.0001 yuan per kWh, the limits in the layout's amount unit. */
export interface ParameterValues extends ParameterLimits {
  readonly price: number;
}

export interface ParameterCardRequest {
  readonly values: ParameterValues;
  /** The one meter the card is for; absent: every meter of the system (meter number all zeros). */
  readonly meterNumber?: string;
  /** The serial written on a blank card (a card of ours keeps its own). */
  readonly cardSerial: number;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

/**
 * Writes a parameter card (参数卡, docs/reference/cards.md § Parameter area): the identity (our marker, the meter or
 * all zeros for every meter), the purchase area with the parameter role and no purchase, the parameter area with the
 * price and the limits, in the fail-closed order; then the card is read again through the layout and every value
 * compared. On a blank card or a service card of ours; a customer's card is refused (WRONG_CARD_ROLE).
 */
export async function makeParameterCard(encoder: CardEncoder, layout: CardLayout, req: ParameterCardRequest): Promise<CardReading> {
  if (!layout.hasParameters)
    throw new CardError(
      'NO_PARAMETER_AREA',
      `card layout ${layout.id} has no parameter area: add one (areas.parameter and the param* fields, device-profiles/cards/README.md) to write parameter cards`,
    );
  await encoder.powerUp(layout.card);
  const image = readRecord(layout, await readRecordBytes(encoder, layout));
  const blank = image.ok && image.value.areas.identity?.blank === true;
  let expect: { meterNumber: string; cardSerial?: number | string } | undefined;
  let serial: number | string = req.cardSerial;
  if (!blank) {
    const card = await readCard(encoder, layout);
    if (card.role !== 'unknown' && USER_ROLES.includes(card.role))
      throw new CardError(
        'WRONG_CARD_ROLE',
        `this is a customer's card (meter ${card.meterNumber}); write a parameter card on a blank card or a service card`,
      );
    expect = { meterNumber: card.meterNumber, ...(card.cardSerial !== undefined ? { cardSerial: card.cardSerial } : {}) };
    if (card.cardSerial !== undefined) serial = card.cardSerial;
  }
  const meterField = layout.fields.get('meterNumber')!;
  const meterNumber = req.meterNumber ?? '0'.repeat(meterField.length * 2);
  const v = req.values;
  await rewriteCard(
    encoder,
    layout,
    {
      identity: {
        magic: layout.magic,
        ...(layout.version !== undefined ? { version: layout.version } : {}),
        meterNumber,
        ...(layout.fields.has('customerNumber') ? { customerNumber: '0' } : {}),
        ...(layout.fields.has('cardSerial') ? { cardSerial: serial } : {}),
      },
      purchase: { role: layout.roles.parameter, purchaseCount: 0, purchaseAmount: 0 },
      parameter: {
        [PARAMETER_FIELDS.price]: v.price,
        [PARAMETER_FIELDS.alarm1]: v.alarm1,
        [PARAMETER_FIELDS.alarm2]: v.alarm2,
        [PARAMETER_FIELDS.overdraft]: v.overdraft,
        [PARAMETER_FIELDS.hoarding]: v.hoarding,
      },
      clearWriteBack: true,
    },
    { psc: req.psc, ...(req.forcePsc ? { forcePsc: true } : {}), ...(expect ? { expect } : {}) },
  );
  // Read back through the layout: what a meter will see.
  const back = await readCard(encoder, layout);
  const p = back.parameters;
  if (
    !back.valid ||
    back.role !== 'parameter' ||
    back.meterNumber !== meterNumber ||
    !p ||
    p.price !== v.price ||
    p.alarm1 !== v.alarm1 ||
    p.alarm2 !== v.alarm2 ||
    p.overdraft !== v.overdraft ||
    p.hoarding !== v.hoarding
  )
    throw new CardError(
      'WRITE_VERIFY_FAILED',
      `the parameter card does not read back as written (${back.problems.join('; ') || 'a value differs'}); take it out and write it again`,
    );
  return back;
}
