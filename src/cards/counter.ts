import type { Clock } from '../clock.js';
import { CardError, type CardEncoder } from '../devices/card-encoder/index.js';
import type { Logger } from '../log.js';
import type { CardLayout } from '../profiles/card-layout.js';
import type { CardProvisioning } from './provisioning.js';
import { readCard, type CardReading } from './read.js';
import { reissueCard, sellCard, type CardSale, type SaleBooks, type SaleRecorder } from './sale.js';
import { makeCheckCard, makeClearCard, type ServiceCardRequest } from './service-cards.js';

export interface CardCounterOptions {
  /** Where a verified card sale is recorded (channel `card`). */
  readonly recorder: SaleRecorder;
  /** The last purchase per meter, for the next count and for re-issue. */
  readonly books: SaleBooks;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** The archive's side: lost cards refused, card meters adopted at their first visit (absent: neither). */
  readonly provisioning?: CardProvisioning;
}

/** What the cashier gives for a sale; the purchase count comes from the books, never from the caller. */
export interface CounterSale {
  readonly meterNumber: string;
  /** In the layout's unit (0.01 kWh or fen). */
  readonly amount: number;
  readonly operator: string;
  readonly psc: Uint8Array;
  readonly forcePsc?: boolean;
  /** The operator confirms adopting a meter the books have never seen from the count on its card (first visit). */
  readonly adopt?: boolean;
}

/**
 * The counter's card workflows against the books, on an encoder the caller has opened (the CLI for one command, the
 * daemon for one station request): read a card, sell onto it at books + 1, re-issue the books' last purchase, make
 * check and clear cards. Every refusal is a CardError with its code.
 *
 * @example
 * const counter = new CardCounter({ recorder: books, books });
 * const sale = await counter.sell(encoder, layout, { meterNumber: '000012345678', amount: 2000, operator: 'alice', psc });
 */
export class CardCounter {
  readonly #opts: CardCounterOptions;

  constructor(opts: CardCounterOptions) {
    this.#opts = opts;
  }

  read(encoder: CardEncoder, layout: CardLayout): Promise<CardReading> {
    return readCard(encoder, layout);
  }

  /** The next purchase on the customer's card: the count is the books' last for the meter + 1 (see prepareSale). */
  async sell(encoder: CardEncoder, layout: CardLayout, sale: CounterSale): Promise<CardSale> {
    const { recorder, books, clock, logger, provisioning } = this.#opts;
    const last = await books.lastSale(sale.meterNumber);
    return sellCard(
      encoder,
      layout,
      {
        meterNumber: sale.meterNumber,
        booksCount: last?.count ?? 0,
        amount: sale.amount,
        operator: sale.operator,
        psc: sale.psc,
        ...(sale.forcePsc ? { forcePsc: true } : {}),
      },
      recorder,
      {
        ...(clock ? { clock } : {}),
        ...(logger ? { logger } : {}),
        ...(provisioning
          ? {
              prepare: async (card: CardReading, booksCount: number) => {
                provisioning.refuseLost(card);
                return provisioning.adoptAtFirstVisit(card, layout.amountUnit, booksCount, sale.adopt === true, sale.operator);
              },
            }
          : {}),
      },
    );
  }

  /** The books' last purchase for the meter written again (补卡); NOTHING_TO_REISSUE when the books have none. */
  async reissue(
    encoder: CardEncoder,
    layout: CardLayout,
    request: { meterNumber: string; psc: Uint8Array; forcePsc?: boolean },
  ): Promise<{ count: number; amount: number }> {
    if (this.#opts.provisioning) this.#opts.provisioning.refuseLost(await readCard(encoder, layout));
    const last = await this.#opts.books.lastSale(request.meterNumber);
    if (!last)
      throw new CardError(
        'NOTHING_TO_REISSUE',
        `the books have no card sale for meter ${request.meterNumber}; there is nothing to re-issue`,
      );
    return reissueCard(encoder, layout, {
      meterNumber: request.meterNumber,
      lastSale: last,
      psc: request.psc,
      ...(request.forcePsc ? { forcePsc: true } : {}),
    });
  }

  makeCheckCard(encoder: CardEncoder, layout: CardLayout, request: ServiceCardRequest & { anyMeter?: boolean }): Promise<CardReading> {
    return makeCheckCard(encoder, layout, request);
  }

  makeClearCard(
    encoder: CardEncoder,
    layout: CardLayout,
    request: ServiceCardRequest & { meterNumber: string; confirm: boolean },
  ): Promise<CardReading> {
    return makeClearCard(encoder, layout, request);
  }
}
