import { decodeField, encodeArea, recordSpan, type FieldValue } from '../../protocols/card/index.js';
import { CardError, hexAddr, type CardEncoder } from '../devices/card-encoder/index.js';
import type { CardAreaName, CardLayout } from '../profiles/card-layout.js';
import { readRecordBytes } from './read.js';

export interface RewriteOptions {
  /** The PSC to present (the layout's, or the site's from METERD_CARD_PSC). */
  readonly psc: Uint8Array;
  /** Present the PSC even with fewer than 3 attempts left (an operator's explicit decision). */
  readonly forcePsc?: boolean;
  /** The card as it was read before: the rewrite refuses if another card is in the encoder now. */
  readonly expect?: { readonly meterNumber: string; readonly cardSerial?: number | string };
}

export interface RewritePlan {
  readonly identity?: Readonly<Record<string, FieldValue>>;
  readonly purchase?: Readonly<Record<string, FieldValue>>;
  /** A parameter card's values (the layout's parameter area). */
  readonly parameter?: Readonly<Record<string, FieldValue>>;
  /** Erase the meter's write-back (service cards start empty, so what the meter writes is all that is there). */
  readonly clearWriteBack?: boolean;
}

/**
 * Rewrites areas of a card of ours in the order that fails closed (docs/reference/cards.md § Write order): valid flag cleared first,
 * then each area's data, its checksum, its backup copy, and the valid flag set last; then every byte of the record is
 * read back and compared. A card pulled at any point is left with its valid flag clear, so a meter rejects it.
 * The card must be powered (readCard does it).
 */
export async function rewriteCard(encoder: CardEncoder, layout: CardLayout, plan: RewritePlan, opts: RewriteOptions): Promise<void> {
  const memory = await readRecordBytes(encoder, layout);
  // Before the PSC: presenting it to a swapped-in card of another system would spend one of that card's attempts.
  if (opts.expect) checkSameCard(layout, memory, opts.expect);
  await encoder.verifyPsc(opts.psc, { force: opts.forcePsc ?? false });
  const expected = memory.slice();
  const put = async (addr: number, bytes: Uint8Array): Promise<void> => {
    await encoder.write(addr, bytes);
    expected.set(bytes, addr);
  };

  // Cleared before anything else: from here until the last step the card is not valid for any meter.
  await put(layout.valid.at, Uint8Array.of(layout.valid.clear));
  const areas: [CardAreaName, Readonly<Record<string, FieldValue>> | undefined][] = [
    ['identity', plan.identity],
    ['purchase', plan.purchase],
    ['parameter', plan.parameter],
  ];
  for (const [name, values] of areas) {
    if (!values) continue;
    const area = layout.areas.find((a) => a.name === name)!;
    const enc = encodeArea(layout, name, expected, values);
    if (!enc.ok) throw new CardError('VALUE_INVALID', `cannot write the ${name} area: ${enc.error.message}`);
    await put(area.from, enc.value.data);
    await put(area.checksum.at, Uint8Array.of(enc.value.checksum));
    if (area.backupAt !== undefined) await put(area.backupAt, Uint8Array.of(...enc.value.data, enc.value.checksum));
  }
  if (plan.clearWriteBack) {
    const area = layout.areas.find((a) => a.name === 'writeBack');
    if (area) {
      await put(area.from, new Uint8Array(area.to - area.from + 1).fill(0xff));
      await put(area.checksum.at, Uint8Array.of(0xff));
    }
  }
  await put(layout.valid.at, Uint8Array.of(layout.valid.set));

  // Each write was read back already; this catches anything that moved between writes.
  const span = recordSpan(layout);
  const back = await encoder.read('main', span.from, span.to - span.from + 1);
  const i = back.findIndex((b, k) => b !== expected[span.from + k]);
  if (i >= 0)
    throw new CardError(
      'WRITE_VERIFY_FAILED',
      `card byte ${hexAddr(span.from + i)} changed after it was written and verified; take the card out and write it again`,
      { addr: span.from + i },
    );
}

function checkSameCard(layout: CardLayout, memory: Uint8Array, expect: NonNullable<RewriteOptions['expect']>): void {
  const fieldValueOf = (name: 'meterNumber' | 'cardSerial'): FieldValue | undefined => {
    const f = layout.fields.get(name);
    if (!f) return undefined;
    const r = decodeField(f, memory.subarray(f.offset, f.offset + f.length));
    return r.ok ? r.value : undefined;
  };
  const meter = fieldValueOf('meterNumber');
  const serial = expect.cardSerial === undefined ? undefined : fieldValueOf('cardSerial');
  if (meter !== expect.meterNumber || serial !== expect.cardSerial) {
    throw new CardError(
      'CARD_SWAPPED',
      `the card now in the encoder is not the one that was checked (meter ${String(meter)}); put the customer's card back and start again`,
    );
  }
}
