import { decodeField, readRecord } from '../../protocols/card/index.js';
import { systemClock, type Clock } from '../clock.js';
import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import { silentLogger, type Logger } from '../log.js';
import { USER_ROLES, type CardLayout } from '../profiles/card-layout.js';
import {
  type Customer,
  type LostCard,
  noteCustomer,
  recordLostCard,
  recordOpening,
  recordParameterCard,
  type ParameterCardRecord,
  saveCustomer,
  StoreError,
  type Store,
} from '../store/index.js';
import { LedgerCardSales } from './ledger-sales.js';
import { makeParameterCard, type ParameterValues } from './parameter-card.js';
import { readCard, readRecordBytes, type CardReading } from './read.js';
import type { CardSale } from './sale.js';
import { rewriteCard } from './write.js';

// Provisioning at the counter (docs/provisioning.md § Opening a card, § Replacing a lost card, § Card health): a blank
// card becomes a customer's card, a lost one is replaced with the last purchase, a card's health is checked against
// the archive and the books, and a card meter's first visit adopts it from its card.

export interface OpenCardRequest {
  /** 12 digits, the meter's DL/T 645 address. */
  readonly meterNumber: string;
  readonly customerNo: string;
  /** Name and room, when the customer is not in the archive yet (a new customer). */
  readonly name?: string;
  readonly room?: string;
  /** Default: the next serial after every one the archive has seen. */
  readonly cardSerial?: number;
  /** A first purchase, in the layout's unit; none: the card is opened empty (no money taken). */
  readonly firstAmount?: number;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

export interface OpenedCard {
  readonly meterNumber: string;
  readonly customerNo: string;
  readonly cardSerial: number;
  readonly purchaseCount: number;
  readonly amount: number;
  /** The sale recorded for the first purchase, when there was one. */
  readonly sale?: CardSale;
  /** True when this card started the meter's books (an opening entry at count 0). */
  readonly openedBooks: boolean;
}

export interface ReplaceCardRequest {
  readonly customerNo: string;
  readonly reason: 'lost' | 'broken';
  readonly cardSerial?: number;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

export interface ReplacedCard {
  readonly meterNumber: string;
  readonly customerNo: string;
  readonly cardSerial: number;
  /** The serial now recorded lost (null when the archive had none for the customer). */
  readonly oldSerial: string | null;
  readonly purchaseCount: number;
  readonly amount: number;
}

export interface RewriteCardRequest {
  /** Whose card it is, when its serial cannot be read or is not in the archive (the operator names the customer). */
  readonly customerNo?: string;
  /** Or the meter the card is for: its active customer in the archive. */
  readonly meterNumber?: string;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

export interface RewrittenCard {
  readonly meterNumber: string;
  readonly customerNo: string;
  readonly cardSerial: string;
  readonly role: 'opening' | 'replacement';
  readonly purchaseCount: number;
  readonly amount: number;
  /** What was wrong with the card before (the read's findings). */
  readonly problems: readonly string[];
}

export interface ParameterCardWrite {
  readonly values: ParameterValues;
  /** The one meter the card is for; absent: every meter of the system. */
  readonly meterNumber?: string;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
}

export interface CardHealth {
  readonly atr: string;
  readonly kind: string;
  readonly pscAttemptsLeft: number;
  readonly blank: boolean;
  readonly layoutValid: boolean;
  readonly meterNumber?: string;
  readonly customerNumber?: string;
  readonly cardSerial?: string;
  readonly purchaseCount?: number;
  readonly booksCount?: number;
  /** Plain sentences: what is wrong and what to do. Empty: healthy. */
  readonly findings: readonly string[];
  readonly ok: boolean;
}

/** The card serials, customers and books the counter's provisioning works with (the gateway's store). */
/** What opening or replacing writes onto a blank card: the identity and the purchase area. */
interface BlankCardWrite {
  meterNumber: string;
  customerNo: string;
  serial: number;
  role: 'opening' | 'replacement';
  count: number;
  amount: number;
  psc: Uint8Array;
  forcePsc?: boolean;
}

export class CardProvisioning {
  readonly #store: () => Store;
  readonly #sales: LedgerCardSales;
  readonly #clock: Clock;
  readonly #log: Logger;

  constructor(store: () => Store, opts: { clock?: Clock; logger?: Logger } = {}) {
    this.#store = store;
    this.#sales = new LedgerCardSales(store);
    this.#clock = opts.clock ?? systemClock;
    this.#log = (opts.logger ?? silentLogger).child({ component: 'card-provisioning' });
  }

  /** CARD_REPORTED_LOST when the card's serial was reported lost or broken: a replaced card is never sold onto again. */
  refuseLost(card: CardReading): void {
    if (card.cardSerial === undefined) return;
    const lost = this.#store().archive.lostCard(String(card.cardSerial));
    if (lost) throw lostError(lost);
  }

  /**
   * A card meter at its first visit (adopted from its customer's card): when the books have nothing of the meter and
   * the card shows purchases, the count and last purchase on the card become the meter's opening entry, confirmed by
   * the operator (`confirm`). Without confirmation ADOPTION_NEEDED says how to confirm. Returns the books' count to
   * sell from: unchanged when the meter has history (a disagreement then still refuses, in prepareSale).
   */
  async adoptAtFirstVisit(
    card: CardReading,
    layoutUnit: 'fen' | '0.01kWh',
    booksCount: number,
    confirm: boolean,
    operator: string,
  ): Promise<number> {
    if (booksCount > 0 || (await this.#sales.lastSale(card.meterNumber)) !== undefined) return booksCount;
    const onCard = card.valid && card.role !== 'unknown' && USER_ROLES.includes(card.role) ? card.purchase.count : 0;
    const count = Math.max(onCard, card.writeBack?.purchaseCount ?? 0);
    if (count === 0) return booksCount;
    if (!confirm)
      throw new CardError(
        'ADOPTION_NEEDED',
        `meter ${card.meterNumber} has no history in the books and this card shows purchase ${count}: if this is the meter's first visit, confirm its adoption from the card (card sell --adopt, or adopt: true in card-sell) and the sale goes on at ${count + 1}`,
      );
    this.#store().transaction(
      (tx) =>
        recordOpening(tx, {
          meterId: card.meterNumber,
          unit: layoutUnit === 'fen' ? 'money' : 'energy',
          wallet: { count, balance: card.writeBack?.balance ?? 0, overdraft: 0 },
          lastAmount: onCard === count ? card.purchase.amount : 0,
          operator,
          ...(card.customerNumber ? { customerNo: card.customerNumber } : {}),
          source: 'card',
        }),
      { durable: true },
    );
    this.#log.info({ meter: card.meterNumber, count, operator }, 'card meter adopted at its first visit');
    return count;
  }

  /**
   * Opens an account on a blank card (开户): the identity (meter, customer, serial), the purchase area as an opening
   * card (count = the books' + 1 with a first purchase, else the books' count and nothing), every byte read back and
   * the card read again through the layout; then the archive (customer bound to meter and card) and the books (an
   * opening entry when the meter had none, a sale only when money was taken).
   */
  async openCard(encoder: CardEncoder, layout: CardLayout, req: OpenCardRequest): Promise<OpenedCard> {
    if (req.operator.trim() === '') throw new CardError('OPERATOR_MISSING', 'opening a card needs the operator who opens it');
    const store = this.#store();
    const customer = store.archive.get(req.customerNo);
    if (!customer && (req.name === undefined || req.room === undefined))
      throw new CardError(
        'UNKNOWN_CUSTOMER',
        `customer ${req.customerNo} is not in the archive: give the name and room to add them (--name, --room), or import the archive first`,
      );
    if (customer?.cardSerial && customer.state === 'active' && !store.archive.lostCard(customer.cardSerial))
      throw new CardError(
        'CUSTOMER_HAS_CARD',
        `customer ${req.customerNo} already has card ${customer.cardSerial}; if it is lost or broken, replace it (card replace), which keeps the last purchase`,
      );
    const holder = store.archive.byMeter(req.meterNumber);
    if (holder && holder.customerNo !== req.customerNo)
      throw new CardError(
        'ARCHIVE_CONFLICT',
        `meter ${req.meterNumber} is bound to active customer ${holder.customerNo}; move that customer out first (meterd archive move-out ${holder.customerNo})`,
      );
    const last = await this.#sales.lastSale(req.meterNumber);
    const booksCount = last?.count ?? 0;
    const count = req.firstAmount !== undefined ? booksCount + 1 : booksCount;
    const amount = req.firstAmount ?? 0;
    const serial = req.cardSerial ?? this.nextSerial();
    await this.#writeBlank(encoder, layout, {
      meterNumber: req.meterNumber,
      customerNo: req.customerNo,
      serial,
      role: 'opening',
      count,
      amount,
      psc: req.psc,
      ...(req.forcePsc ? { forcePsc: true } : {}),
    });
    const openedBooks = last === undefined;
    store.transaction(
      (tx) => {
        if (openedBooks)
          recordOpening(tx, {
            meterId: req.meterNumber,
            unit: layout.amountUnit === 'fen' ? 'money' : 'energy',
            wallet: { count: 0, balance: 0, overdraft: 0 },
            lastAmount: 0,
            operator: req.operator,
            customerNo: req.customerNo,
            source: 'card-open',
          });
        archive(() =>
          saveCustomer(
            tx,
            req.customerNo,
            {
              ...(customer ? {} : { name: req.name!, room: req.room! }),
              meterAddress: req.meterNumber,
              cardSerial: String(serial),
              state: 'active',
            },
            { operator: req.operator, action: 'open-card' },
          ),
        );
      },
      { durable: true },
    );
    let sale: CardSale | undefined;
    if (req.firstAmount !== undefined) {
      sale = {
        channel: 'card',
        meterNumber: req.meterNumber,
        customerNumber: req.customerNo,
        cardSerial: serial,
        purchaseCount: count,
        amount,
        unit: layout.amountUnit,
        operator: req.operator,
        encoder: encoder.id,
        layout: layout.id,
        at: new Date(this.#clock.now()).toISOString(),
      };
      await this.#sales.record(sale);
    }
    this.#log.info({ meter: req.meterNumber, customer: req.customerNo, serial, count, amount }, 'card opened');
    await encoder.beep(100).catch(() => undefined);
    return {
      meterNumber: req.meterNumber,
      customerNo: req.customerNo,
      cardSerial: serial,
      purchaseCount: count,
      amount,
      openedBooks,
      ...(sale ? { sale } : {}),
    };
  }

  /**
   * Replaces a lost or broken card (补卡) on a blank card: the customer's meter and number, a new serial, and the
   * books' last purchase (same count, same amount) as a replacement card; never a new sale. The old serial is recorded
   * lost, so that card is refused if it comes back.
   */
  async replaceCard(encoder: CardEncoder, layout: CardLayout, req: ReplaceCardRequest): Promise<ReplacedCard> {
    if (req.operator.trim() === '') throw new CardError('OPERATOR_MISSING', 'replacing a card needs the operator who does it');
    const store = this.#store();
    const customer = store.archive.get(req.customerNo);
    if (!customer)
      throw new CardError(
        'UNKNOWN_CUSTOMER',
        `customer ${req.customerNo} is not in the archive; see meterd archive list, or open a card for them`,
      );
    if (customer.state !== 'active' || customer.meterAddress === null)
      throw new CardError(
        'UNKNOWN_CUSTOMER',
        `customer ${req.customerNo} is ${customer.state}${customer.meterAddress === null ? ' and bound to no meter' : ''}: a replacement card is for an active customer with a meter (meterd archive reactivate, or open a card)`,
      );
    const last = await this.#sales.lastSale(customer.meterAddress);
    const serial = req.cardSerial ?? this.nextSerial();
    const count = last?.count ?? 0;
    const amount = last?.amount ?? 0;
    await this.#writeBlank(encoder, layout, {
      meterNumber: customer.meterAddress,
      customerNo: customer.customerNo,
      serial,
      role: 'replacement',
      count,
      amount,
      psc: req.psc,
      ...(req.forcePsc ? { forcePsc: true } : {}),
    });
    const oldSerial = customer.cardSerial;
    store.transaction(
      (tx) => {
        if (oldSerial !== null)
          recordLostCard(tx, {
            cardSerial: oldSerial,
            customerNo: customer.customerNo,
            meterAddress: customer.meterAddress!,
            reason: req.reason,
            replacedBy: String(serial),
            operator: req.operator,
          });
        saveCustomer(
          tx,
          customer.customerNo,
          { cardSerial: String(serial) },
          { operator: req.operator, action: `replace-card (${req.reason})` },
        );
      },
      { durable: true },
    );
    this.#log.info({ meter: customer.meterAddress, customer: customer.customerNo, serial, oldSerial, count }, 'card replaced');
    await encoder.beep(100).catch(() => undefined);
    return {
      meterNumber: customer.meterAddress,
      customerNo: customer.customerNo,
      cardSerial: serial,
      oldSerial,
      purchaseCount: count,
      amount,
    };
  }

  /**
   * Rewrites a damaged card from the books (购电卡常规性维护): the identity the archive has for the customer (meter,
   * customer number, the card's serial) and the books' last purchase for the meter (same count, same amount; a
   * replacement card, or an opening card while the books are at 0), every byte read back; never a new sale. The card is
   * known by its serial in the archive, or by the customer or meter the operator names. Refused when the books do not
   * know the card (CARD_UNKNOWN), it is blank (open it), another system's, reported lost, or ahead of the books.
   */
  async rewriteCard(encoder: CardEncoder, layout: CardLayout, req: RewriteCardRequest): Promise<RewrittenCard> {
    if (req.operator.trim() === '') throw new CardError('OPERATOR_MISSING', 'rewriting a card needs the operator who does it');
    await encoder.powerUp(layout.card);
    const memory = await readRecordBytes(encoder, layout);
    const image = readRecord(layout, memory);
    if (!image.ok) throw new CardError('CARD_DAMAGED', image.error.message);
    const identity = image.value.areas.identity!;
    if (identity.blank)
      throw new CardError('CARD_NOT_ISSUED', 'this card is blank: it was never issued; open it for a customer (card open) instead');
    const values = image.value.values;
    // An intact identity area of another system is not ours to write; a damaged one may be ours with broken bytes.
    if (identity.checksumOk && (values.magic !== layout.magic || (layout.version !== undefined && values.version !== layout.version)))
      throw new CardError(
        'NOT_OUR_CARD',
        `this card carries another system's marker (${typeof values.magic === 'string' ? `"${values.magic}"` : 'unreadable'}) in an intact identity area; meterd will not write it`,
      );
    const field = layout.fields.get('cardSerial');
    const read = field ? decodeField(field, memory.subarray(field.offset, field.offset + field.length)) : undefined;
    const serialOnCard = read?.ok && read.value !== null && read.value !== 0 ? String(read.value) : undefined;
    const store = this.#store();
    if (serialOnCard !== undefined) {
      const lost = store.archive.lostCard(serialOnCard);
      if (lost) throw lostError(lost);
    }
    const bySerial = serialOnCard !== undefined ? store.archive.byCardSerial(serialOnCard) : null;
    // A PSC presented to another system's card spends one of its three attempts: write only a card that still shows
    // our marker or a serial the archive gave.
    if (values.magic !== layout.magic && !bySerial)
      throw new CardError(
        'NOT_OUR_CARD',
        "this card shows neither this system's marker nor a serial the archive knows: it may be another system's card, and meterd will not present its PSC to it",
      );
    let customer: Customer | null = bySerial;
    if (req.customerNo !== undefined || req.meterNumber !== undefined) {
      const named = req.customerNo !== undefined ? store.archive.get(req.customerNo) : store.archive.byMeter(req.meterNumber!);
      if (!named)
        throw new CardError(
          'CARD_UNKNOWN',
          req.customerNo !== undefined
            ? `customer ${req.customerNo} is not in the archive: the books do not know this card; import the archive or open a card`
            : `meter ${req.meterNumber} has no active customer in the archive: the books do not know this card; import the archive or open a card`,
        );
      if (req.customerNo !== undefined && req.meterNumber !== undefined && named.meterAddress !== req.meterNumber)
        throw new CardError(
          'CARD_UNKNOWN',
          `customer ${named.customerNo} is bound to meter ${named.meterAddress ?? '(none)'}, not ${req.meterNumber}`,
        );
      if (bySerial && bySerial.customerNo !== named.customerNo)
        throw new CardError(
          'ARCHIVE_CONFLICT',
          `this card's serial ${serialOnCard} is customer ${bySerial.customerNo}'s card, not customer ${named.customerNo}'s: rewrite it for its own customer, or take the right card`,
        );
      customer = named;
    }
    if (!customer)
      throw new CardError(
        'CARD_UNKNOWN',
        serialOnCard === undefined
          ? "the card's serial cannot be read and no customer was named: the books cannot tell whose card this is; name the customer (--customer N) if you know it"
          : `the books do not know card ${serialOnCard}: no customer in the archive has it; name the customer (--customer N) if it is theirs, or open a new card`,
      );
    if (customer.state !== 'active' || customer.meterAddress === null || customer.cardSerial === null)
      throw new CardError(
        'CARD_UNKNOWN',
        `customer ${customer.customerNo} is ${customer.state}${customer.meterAddress === null ? ', bound to no meter' : ''}${customer.cardSerial === null ? ', with no card on record' : ''}: a card is rewritten only for an active customer with a meter and a card (open one instead)`,
      );
    const meterNumber = customer.meterAddress;
    const last = await this.#sales.lastSale(meterNumber);
    if (!last)
      throw new CardError(
        'NOTHING_TO_REWRITE',
        `the books have nothing for meter ${meterNumber} (no opening, no sale): adopt the meter or open the account first`,
      );
    const wbCount = values.wbPurchaseCount;
    if (
      image.value.areas.writeBack?.checksumOk &&
      !image.value.areas.writeBack.blank &&
      typeof wbCount === 'number' &&
      wbCount > last.count
    )
      throw new CardError(
        'CARD_COUNT_MISMATCH',
        `the meter wrote back purchase count ${wbCount} on this card, ahead of the books' ${last.count}: a load the books do not know; reconcile before rewriting`,
      );
    const problems = describeDamage(image.value);
    const role = last.count === 0 ? 'opening' : 'replacement';
    await this.#writeAndVerify(encoder, layout, {
      meterNumber,
      customerNo: customer.customerNo,
      serial: Number(customer.cardSerial),
      role,
      count: last.count,
      amount: last.amount,
      psc: req.psc,
      ...(req.forcePsc ? { forcePsc: true } : {}),
    });
    store.transaction(
      (tx) =>
        archive(() =>
          noteCustomer(
            tx,
            customer.customerNo,
            { operator: req.operator, action: 'rewrite-card' },
            {
              cardSerial: [serialOnCard ?? null, customer.cardSerial],
              purchaseOnCard: [typeof values.purchaseCount === 'number' ? values.purchaseCount : null, last.count],
              ...(problems.length > 0 ? { damage: [problems.join('; '), null] } : {}),
            },
          ),
        ),
      { durable: true },
    );
    this.#log.info(
      { meter: meterNumber, customer: customer.customerNo, serial: customer.cardSerial, count: last.count },
      'card rewritten from the books',
    );
    await encoder.beep(100).catch(() => undefined);
    return {
      meterNumber,
      customerNo: customer.customerNo,
      cardSerial: customer.cardSerial,
      role,
      purchaseCount: last.count,
      amount: last.amount,
      problems,
    };
  }

  /**
   * Writes a parameter card (参数卡) and records it with the operator once it reads back as written; a card for one
   * meter also leaves a `parameter-card` line in the history of the meter's active customer.
   */
  async writeParameterCard(encoder: CardEncoder, layout: CardLayout, req: ParameterCardWrite): Promise<ParameterCardRecord> {
    if (req.operator.trim() === '') throw new CardError('OPERATOR_MISSING', 'a parameter card needs the operator who writes it');
    const back = await makeParameterCard(encoder, layout, {
      values: req.values,
      ...(req.meterNumber !== undefined ? { meterNumber: req.meterNumber } : {}),
      cardSerial: this.nextSerial(),
      psc: req.psc,
      ...(req.forcePsc ? { forcePsc: true } : {}),
    });
    const store = this.#store();
    const record = store.transaction(
      (tx) => {
        const rec = recordParameterCard(tx, {
          operator: req.operator,
          meterAddress: req.meterNumber ?? null,
          cardSerial: back.cardSerial === undefined ? null : String(back.cardSerial),
          layout: layout.id,
          encoder: encoder.id,
          unit: layout.amountUnit,
          ...req.values,
        });
        const customer = req.meterNumber !== undefined ? store.archive.byMeter(req.meterNumber) : null;
        if (customer)
          noteCustomer(
            tx,
            customer.customerNo,
            { operator: req.operator, action: 'parameter-card' },
            { parameters: [null, { ...req.values }] },
          );
        return rec;
      },
      { durable: true },
    );
    this.#log.info({ meter: req.meterNumber ?? 'all', operator: req.operator, ...req.values }, 'parameter card written');
    await encoder.beep(100).catch(() => undefined);
    return record;
  }

  /** 购电卡常规性维护: what the card is, whether a meter would take it, and whether it agrees with the archive and the books. */
  async health(encoder: CardEncoder, layout: CardLayout): Promise<CardHealth> {
    const { atr, kind } = await encoder.powerUp(layout.card);
    const atrHex = Buffer.from(atr).toString('hex').toUpperCase();
    const attempts = await encoder.pscAttemptsLeft();
    const findings: string[] = [];
    if (attempts < 3) findings.push(`only ${attempts} PSC attempt(s) left: write this card only with the right PSC, or replace it`);
    const image = readRecord(layout, await readRecordBytes(encoder, layout));
    if (image.ok && image.value.areas.identity?.blank)
      return {
        atr: atrHex,
        kind,
        pscAttemptsLeft: attempts,
        blank: true,
        layoutValid: false,
        findings: [...findings, 'the card is blank: open it for a customer (card open)'],
        ok: false,
      };
    let card: CardReading;
    try {
      card = await readCard(encoder, layout);
    } catch (err) {
      const message = (err as Error).message;
      const damaged = image.ok && image.value.areas.identity?.checksumOk === false;
      return {
        atr: atrHex,
        kind,
        pscAttemptsLeft: attempts,
        blank: false,
        layoutValid: false,
        findings: [
          ...findings,
          message,
          ...(damaged
            ? [
                "the identity area is damaged: if this is a customer's card, rewrite it from the books (card rewrite; name the customer with --customer when its serial is unreadable)",
              ]
            : []),
        ],
        ok: false,
      };
    }
    for (const p of card.problems) findings.push(p);
    const serial = card.cardSerial === undefined ? undefined : String(card.cardSerial);
    const store = this.#store();
    const lost = serial === undefined ? null : store.archive.lostCard(serial);
    if (lost) findings.push(lostError(lost).message);
    const customer: Customer | null = store.archive.byMeter(card.meterNumber);
    if (USER_ROLES.includes(card.role as never)) {
      if (!customer)
        findings.push(`meter ${card.meterNumber} has no active customer in the archive: import the archive or open the account`);
      else {
        if (card.customerNumber !== undefined && card.customerNumber.replace(/^0+/, '') !== customer.customerNo.replace(/^0+/, ''))
          findings.push(
            `the card names customer ${card.customerNumber}, the archive binds meter ${card.meterNumber} to ${customer.customerNo}`,
          );
        if (!lost && serial !== undefined && customer.cardSerial !== null && customer.cardSerial !== serial)
          findings.push(`the archive gives customer ${customer.customerNo} card ${customer.cardSerial}, not ${serial}`);
      }
    }
    const last = await this.#sales.lastSale(card.meterNumber);
    if (USER_ROLES.includes(card.role as never) && last !== undefined && card.valid) {
      if (card.purchase.count < last.count)
        findings.push(`the books have purchase ${last.count}, the card carries ${card.purchase.count}: re-issue it (card reissue)`);
      if (card.purchase.count > last.count)
        findings.push(
          `the card carries purchase ${card.purchase.count}, newer than the books' ${last.count}: a sale the books do not know; reconcile`,
        );
    }
    if (!card.valid && USER_ROLES.includes(card.role as never) && last !== undefined)
      findings.push(`the card is not valid for the meter: rewrite it from the books (card rewrite)`);
    return {
      atr: atrHex,
      kind,
      pscAttemptsLeft: attempts,
      blank: false,
      layoutValid: card.identityOk,
      meterNumber: card.meterNumber,
      ...(card.customerNumber !== undefined ? { customerNumber: card.customerNumber } : {}),
      ...(serial !== undefined ? { cardSerial: serial } : {}),
      purchaseCount: card.purchase.count,
      ...(last !== undefined ? { booksCount: last.count } : {}),
      findings,
      ok: findings.length === 0,
    };
  }

  /** The next card serial: one past every serial the archive has given or recorded lost. */
  nextSerial(): number {
    const store = this.#store();
    let max = 0;
    for (const c of store.archive.list())
      if (c.cardSerial !== null && /^\d+$/.test(c.cardSerial)) max = Math.max(max, Number(c.cardSerial));
    return Math.max(max, store.archive.maxLostSerial()) + 1;
  }

  async #writeBlank(encoder: CardEncoder, layout: CardLayout, w: BlankCardWrite): Promise<void> {
    await encoder.powerUp(layout.card);
    const image = readRecord(layout, await readRecordBytes(encoder, layout));
    if (!image.ok || !image.value.areas.identity?.blank) {
      const meter = image.ok ? String(image.value.values.meterNumber ?? '?') : '?';
      throw new CardError(
        'CARD_NOT_BLANK',
        `this card is already issued (meter ${meter}); put a blank card in the encoder — a customer's card is never overwritten by opening or replacing`,
      );
    }
    await this.#writeAndVerify(encoder, layout, w);
  }

  /** Identity and purchase area written in the fail-closed order, the write-back erased, then read through the layout. */
  async #writeAndVerify(encoder: CardEncoder, layout: CardLayout, w: BlankCardWrite): Promise<void> {
    const customerNumber = w.customerNo.padStart(12, '0');
    await rewriteCard(
      encoder,
      layout,
      {
        identity: {
          magic: layout.magic,
          ...(layout.version !== undefined ? { version: layout.version } : {}),
          meterNumber: w.meterNumber,
          customerNumber,
          cardSerial: w.serial,
        },
        purchase: { role: layout.roles[w.role], purchaseCount: w.count, purchaseAmount: w.amount },
        clearWriteBack: true,
      },
      { psc: w.psc, ...(w.forcePsc ? { forcePsc: true } : {}) },
    );
    // Read back through the layout: what a meter will see.
    const back = await readCard(encoder, layout);
    const wrong =
      !back.valid ||
      back.role !== w.role ||
      back.meterNumber !== w.meterNumber ||
      back.customerNumber !== customerNumber ||
      Number(back.cardSerial) !== w.serial ||
      back.purchase.count !== w.count ||
      back.purchase.amount !== w.amount;
    if (wrong)
      throw new CardError(
        'WRITE_VERIFY_FAILED',
        `the card does not read back as written (${back.problems.join('; ') || 'a field differs'}); take it out and use another blank card`,
      );
  }
}

/** What a read of the record finds wrong, in words (for the history and the operator). */
function describeDamage(image: import('../../protocols/card/index.js').RecordImage): string[] {
  const out: string[] = [];
  const { identity, purchase } = image.areas;
  if (identity && !identity.checksumOk) out.push('identity area checksum wrong');
  if (purchase && !purchase.checksumOk) out.push('purchase area checksum wrong');
  if (purchase?.checksumOk && purchase.backupMatches === false) out.push('purchase backup differs');
  if (!image.validFlag) out.push('valid flag not set');
  for (const [name, why] of Object.entries(image.fieldErrors)) out.push(`field ${name}: ${why}`);
  return out;
}

function lostError(lost: LostCard): CardError {
  return new CardError(
    'CARD_REPORTED_LOST',
    `card ${lost.cardSerial} was reported ${lost.reason} on ${new Date(lost.at).toISOString().slice(0, 10)}${lost.replacedBy ? ` and replaced by card ${lost.replacedBy}` : ''}: keep it, and serve the customer on the replacement card`,
  );
}

function archive<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StoreError && err.code === 'STORE_CONFLICT') throw new CardError('ARCHIVE_CONFLICT', err.message);
    throw err;
  }
}
