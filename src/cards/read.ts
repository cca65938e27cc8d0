import { readRecord, recordSpan, toHex, type CardKind, type RecordImage } from '../../protocols/card/index.js';
import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import { roleOfCode, type AmountUnit, type CardLayout, type CardRole } from '../profiles/card-layout.js';

/** What the meter last wrote back onto the card (docs/reference/cards.md § What a user card carries). */
export interface CardWriteBack {
  /** In the layout's amount unit; negative in overdraft. */
  readonly balance: number;
  /** The meter's purchase count when the card was last inserted. */
  readonly purchaseCount: number;
  /** Names of the event bits set (unknown bits as `bit-N`). */
  readonly events: readonly string[];
  /** Meter local time of the write-back, `20YY-MM-DDThh:mm:ss`, or null when the meter wrote none. */
  readonly time: string | null;
}

/** What a parameter card carries (docs/reference/cards.md § Parameter area): price in 0.0001 yuan/kWh, limits in the layout's unit. */
export interface CardParameters {
  readonly price: number;
  readonly alarm1: number;
  readonly alarm2: number;
  readonly overdraft: number;
  readonly hoarding: number;
  /** The parameter area's checksum holds. */
  readonly ok: boolean;
}

/** Everything `card read` shows, judged against the layout. */
export interface CardReading {
  readonly kind: CardKind;
  readonly atr: string;
  readonly layout: string;
  readonly role: CardRole | 'unknown';
  readonly roleCode: number;
  readonly meterNumber: string;
  readonly customerNumber?: string;
  readonly cardSerial?: number | string;
  readonly purchase: { readonly count: number; readonly amount: number; readonly unit: AmountUnit };
  /** A parameter card's values (role parameter, on a layout with a parameter area). */
  readonly parameters?: CardParameters;
  /** Absent when the card was never inserted in a meter (or the area is damaged: see problems). */
  readonly writeBack?: CardWriteBack;
  /** The valid flag is set and the purchase area, its checksum and its backup agree: a meter would accept it. */
  readonly valid: boolean;
  /** The identity area (magic, meter and customer numbers) checks; when false the numbers cannot be trusted. */
  readonly identityOk: boolean;
  /** Plain-language findings: damaged areas, a backup that differs, a cleared valid flag. */
  readonly problems: readonly string[];
  readonly pscAttemptsLeft: number;
  /** The raw image, for workflows that rewrite the card. */
  readonly memory: Uint8Array;
}

/**
 * Reads the card in the encoder by the layout: powers it up, reads the record, checks every area. A card that is not
 * this system's (blank, another system's, another layout version) is NOT_OUR_CARD; anything else wrong is reported
 * in `problems` and `valid`, for the workflows to judge.
 *
 * @example
 * const card = await readCard(encoder, loadCardLayout('sle4442-dorm'));
 * if (!card.valid) console.log(card.problems.join('; '));
 */
export async function readCard(encoder: CardEncoder, layout: CardLayout): Promise<CardReading> {
  const { atr, kind } = await encoder.powerUp(layout.card);
  const memory = await readRecordBytes(encoder, layout);
  const r = readRecord(layout, memory);
  if (!r.ok) throw new CardError('CARD_DAMAGED', r.error.message);
  const image = r.value;
  checkOurs(layout, image);
  const v = image.values;
  const problems: string[] = [];
  const identity = image.areas.identity!;
  const purchase = image.areas.purchase!;
  if (!identity.checksumOk) problems.push('identity area checksum is wrong: the card was damaged or written by other software');
  if (!image.validFlag) problems.push('valid flag not set: the last write did not finish (card pulled out?) or the card was never sold');
  if (!purchase.checksumOk)
    problems.push(`purchase area checksum is wrong${purchase.backupChecksumOk ? '; the backup copy is intact' : ''}`);
  if (purchase.checksumOk && !purchase.backupMatches) problems.push('the backup copy of the purchase area differs from the area');
  for (const [name, why] of Object.entries(image.fieldErrors)) problems.push(`field ${name}: ${why}`);

  const roleCode = Number(v.role ?? -1);
  const role = roleOfCode(layout, roleCode) ?? 'unknown';
  if (role === 'unknown' && image.validFlag) problems.push(`role code ${roleCode} is not one of the layout's`);
  const writeBack = readWriteBack(layout, image, problems);
  const parameters = role === 'parameter' ? readParameters(layout, image, problems) : undefined;
  const valid =
    image.validFlag &&
    identity.checksumOk &&
    purchase.checksumOk &&
    purchase.backupMatches === true &&
    role !== 'unknown' &&
    (parameters === undefined || parameters.ok);
  return {
    kind,
    atr: toHex(atr),
    layout: layout.id,
    role,
    roleCode,
    meterNumber: String(v.meterNumber ?? ''),
    ...(typeof v.customerNumber === 'string' ? { customerNumber: v.customerNumber } : {}),
    ...(typeof v.cardSerial === 'number' || typeof v.cardSerial === 'string' ? { cardSerial: v.cardSerial } : {}),
    purchase: { count: Number(v.purchaseCount ?? 0), amount: Number(v.purchaseAmount ?? 0), unit: layout.amountUnit },
    ...(parameters ? { parameters } : {}),
    ...(writeBack ? { writeBack } : {}),
    valid,
    identityOk: identity.checksumOk,
    problems,
    pscAttemptsLeft: await encoder.pscAttemptsLeft(),
    memory,
  };
}

/** The card's main memory with the record's bytes filled in (the rest FFH, never read). */
export async function readRecordBytes(encoder: CardEncoder, layout: CardLayout): Promise<Uint8Array> {
  const span = recordSpan(layout);
  const memory = new Uint8Array(layout.size).fill(0xff);
  memory.set(await encoder.read('main', span.from, span.to - span.from + 1), span.from);
  return memory;
}

function checkOurs(layout: CardLayout, image: RecordImage): void {
  const magic = image.values.magic;
  if (image.areas.identity?.blank) {
    throw new CardError('NOT_OUR_CARD', 'this card is blank: it was never issued by this system. Open it as a new customer card first');
  }
  if (magic !== layout.magic) {
    const seen = typeof magic === 'string' ? `"${magic}"` : 'unreadable';
    throw new CardError(
      'NOT_OUR_CARD',
      `this card belongs to another system (marker ${seen}, ours is "${layout.magic}"); meterd will not write it`,
    );
  }
  if (layout.version !== undefined && image.values.version !== layout.version) {
    throw new CardError(
      'NOT_OUR_CARD',
      `this card was written with layout version ${String(image.values.version)}, not ${layout.version} (${layout.id}); use the matching layout`,
    );
  }
}

function readWriteBack(layout: CardLayout, image: RecordImage, problems: string[]): CardWriteBack | undefined {
  const area = image.areas.writeBack;
  if (!layout.hasWriteBack || !area || area.blank) return undefined;
  if (!area.checksumOk) {
    problems.push('write-back area checksum is wrong: the meter state on the card cannot be trusted');
    return undefined;
  }
  const v = image.values;
  const word = Number(v.wbEvents ?? 0);
  const events: string[] = [];
  for (let bit = 0; bit < 32; bit++) if (word & (1 << bit)) events.push(layout.eventBits.get(bit) ?? `bit-${bit}`);
  return {
    balance: Number(v.wbBalance ?? 0),
    purchaseCount: Number(v.wbPurchaseCount ?? 0),
    events,
    time: typeof v.wbTime === 'string' ? v.wbTime : null,
  };
}

function readParameters(layout: CardLayout, image: RecordImage, problems: string[]): CardParameters | undefined {
  const area = image.areas.parameter;
  if (!layout.hasParameters || !area) {
    problems.push(`a parameter card, but layout ${layout.id} has no parameter area to read it with`);
    return undefined;
  }
  if (!area.checksumOk) problems.push('parameter area checksum is wrong: a meter would refuse the parameters');
  const v = image.values;
  return {
    price: Number(v.paramPrice ?? 0),
    alarm1: Number(v.paramAlarm1 ?? 0),
    alarm2: Number(v.paramAlarm2 ?? 0),
    overdraft: Number(v.paramOverdraft ?? 0),
    hoarding: Number(v.paramHoarding ?? 0),
    ok: area.checksumOk,
  };
}
