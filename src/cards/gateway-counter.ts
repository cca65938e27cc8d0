import { fromHex } from '../../protocols/card/index.js';
import type { GatewayConfig } from '../config/index.js';
import { CardError, type CardEncoder, SerialCardEncoder } from '../devices/card-encoder/index.js';
import { silentLogger, type Logger } from '../log.js';
import { BUILTIN_CARD_LAYOUTS_DIR, type CardLayout, loadCardLayout } from '../profiles/card-layout.js';
import { BUILTIN_ENCODER_PROFILES_DIR, loadEncoderProfile } from '../profiles/encoder-profile.js';
import { centiKwhFromNumber, checkParameterLimits, fenFromNumber, limitFromNumber, priceFromNumber } from '../values/index.js';
import type { ParameterCardRecord } from '../store/index.js';
import { CardCounter } from './counter.js';
import type { CardHealth, CardProvisioning, OpenedCard, ReplacedCard, RewrittenCard } from './provisioning.js';
import type { CardReading } from './read.js';
import type { CardSale, SaleBooks, SaleRecorder } from './sale.js';

export interface GatewayCardCounterOptions {
  /** The encoders of the gateway config; the first is the default. */
  readonly encoders: GatewayConfig['encoders'];
  /** The meters of the gateway config: a card meter is one with a DL/T 645 meter number (its address). */
  readonly meters: readonly { readonly id: string; readonly address?: string }[];
  readonly books: SaleRecorder & SaleBooks;
  /** Lost cards, first-visit adoption, opening and replacing cards (the gateway's store). */
  readonly provisioning?: CardProvisioning;
  readonly logger?: Logger;
}

/** A card sale as the station asks for it: meter by config id, energy in kWh or money in fen, whichever the layout carries. */
export interface StationCardSale {
  readonly meter: string;
  readonly encoder?: string;
  readonly energyKwh?: number;
  readonly amountFen?: number;
  readonly operator: string;
  /** Confirms adopting a card meter the books have never seen, from its card (first visit). */
  readonly adopt?: boolean;
}

/** card-open as the station asks for it: the meter by config id, a first purchase in kWh or fen, whichever the layout carries. */
export interface StationCardOpen {
  readonly meter: string;
  readonly encoder?: string;
  readonly customerNo: string;
  readonly name?: string;
  readonly room?: string;
  readonly cardSerial?: number;
  readonly energyKwh?: number;
  readonly amountFen?: number;
  readonly operator: string;
}

export interface StationCardReplace {
  readonly encoder?: string;
  readonly customerNo: string;
  readonly reason: 'lost' | 'broken';
  readonly cardSerial?: number;
  readonly operator: string;
}

/** card-param as the station asks for it: price in yuan per kWh, the limits in kWh or yuan (the layout's unit). */
export interface StationCardParam {
  readonly encoder?: string;
  readonly meter?: string;
  readonly priceYuan: number;
  readonly alarm1: number;
  readonly alarm2: number;
  readonly overdraft: number;
  readonly hoarding: number;
  readonly operator: string;
}

export interface StationCardRewrite {
  readonly encoder?: string;
  readonly customerNo?: string;
  readonly meter?: string;
  readonly operator: string;
}

/**
 * The counter as the gateway runs it for the station (card-read and card-sell over MQTT): the encoder is named by its
 * id in the gateway config and opened for each operation only, so a technician can still use it with `meterd card`.
 * A request the config cannot serve is a CardError: UNKNOWN_ENCODER, CONFIG_INVALID (the encoder's PSC),
 * NOT_A_CARD_METER, UNIT_MISMATCH (energy for a money layout or the reverse).
 */
export class GatewayCardCounter {
  readonly #opts: GatewayCardCounterOptions;
  readonly #counter: CardCounter;

  constructor(opts: GatewayCardCounterOptions) {
    this.#opts = opts;
    this.#counter = new CardCounter({
      recorder: opts.books,
      books: opts.books,
      ...(opts.provisioning ? { provisioning: opts.provisioning } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }

  read(encoderId: string | undefined): Promise<CardReading> {
    return this.#withEncoder(encoderId, (encoder, layout) => this.#counter.read(encoder, layout));
  }

  sell(request: StationCardSale): Promise<CardSale> {
    const meterNumber = this.#opts.meters.find((m) => m.id === request.meter)?.address;
    if (!meterNumber) throw new CardError('NOT_A_CARD_METER', `meter ${request.meter} has no DL/T 645 meter number to sell cards for`);
    return this.#withEncoder(request.encoder, (encoder, layout, psc) => {
      const unit = layout.amountUnit;
      // The station's numbers were checked at the MQTT edge; what is left is whether they are in the layout's unit.
      const amount = unit === '0.01kWh' ? centiKwhFromNumber(request.energyKwh) : fenFromNumber(request.amountFen);
      if (!amount.ok)
        throw new CardError(
          'UNIT_MISMATCH',
          `this card layout carries ${unit === 'fen' ? 'money: give amountFen' : 'energy: give energyKwh'}`,
        );
      return this.#counter.sell(encoder, layout, {
        meterNumber,
        amount: amount.value,
        operator: request.operator,
        psc,
        ...(request.adopt ? { adopt: true } : {}),
      });
    });
  }

  open(request: StationCardOpen): Promise<OpenedCard> {
    const provisioning = this.#provisioning();
    const meterNumber = this.#opts.meters.find((m) => m.id === request.meter)?.address;
    if (!meterNumber) throw new CardError('NOT_A_CARD_METER', `meter ${request.meter} has no DL/T 645 meter number to open cards for`);
    return this.#withEncoder(request.encoder, (encoder, layout, psc) => {
      let firstAmount: number | undefined;
      if (request.energyKwh !== undefined || request.amountFen !== undefined) {
        const amount = layout.amountUnit === '0.01kWh' ? centiKwhFromNumber(request.energyKwh) : fenFromNumber(request.amountFen);
        if (!amount.ok)
          throw new CardError(
            'UNIT_MISMATCH',
            `this card layout carries ${layout.amountUnit === 'fen' ? 'money: give amountFen' : 'energy: give energyKwh'}`,
          );
        firstAmount = amount.value;
      }
      return provisioning.openCard(encoder, layout, {
        meterNumber,
        customerNo: request.customerNo,
        ...(request.name !== undefined ? { name: request.name } : {}),
        ...(request.room !== undefined ? { room: request.room } : {}),
        ...(request.cardSerial !== undefined ? { cardSerial: request.cardSerial } : {}),
        ...(firstAmount !== undefined ? { firstAmount } : {}),
        operator: request.operator,
        psc,
      });
    });
  }

  replace(request: StationCardReplace): Promise<ReplacedCard> {
    const provisioning = this.#provisioning();
    return this.#withEncoder(request.encoder, (encoder, layout, psc) =>
      provisioning.replaceCard(encoder, layout, {
        customerNo: request.customerNo,
        reason: request.reason,
        ...(request.cardSerial !== undefined ? { cardSerial: request.cardSerial } : {}),
        operator: request.operator,
        psc,
      }),
    );
  }

  /** card-rewrite: the damaged card in the encoder rewritten from the books; the meter by config id, if named. */
  rewrite(request: StationCardRewrite): Promise<RewrittenCard> {
    const provisioning = this.#provisioning();
    let meterNumber: string | undefined;
    if (request.meter !== undefined) {
      meterNumber = this.#opts.meters.find((m) => m.id === request.meter)?.address;
      if (!meterNumber) throw new CardError('NOT_A_CARD_METER', `meter ${request.meter} has no DL/T 645 meter number to rewrite cards for`);
    }
    return this.#withEncoder(request.encoder, (encoder, layout, psc) =>
      provisioning.rewriteCard(encoder, layout, {
        ...(request.customerNo !== undefined ? { customerNo: request.customerNo } : {}),
        ...(meterNumber !== undefined ? { meterNumber } : {}),
        operator: request.operator,
        psc,
      }),
    );
  }

  /** card-param: a parameter card on the card in the encoder; the limits in the layout's unit (kWh or yuan). */
  param(request: StationCardParam): Promise<ParameterCardRecord> {
    const provisioning = this.#provisioning();
    let meterNumber: string | undefined;
    if (request.meter !== undefined) {
      meterNumber = this.#opts.meters.find((m) => m.id === request.meter)?.address;
      if (!meterNumber)
        throw new CardError('NOT_A_CARD_METER', `meter ${request.meter} has no DL/T 645 meter number to write a parameter card for`);
    }
    return this.#withEncoder(request.encoder, (encoder, layout, psc) => {
      const price = priceFromNumber(request.priceYuan);
      if (!price.ok) throw new CardError('VALUE_INVALID', `priceYuan ${price.reason}`);
      const limits: Record<'alarm1' | 'alarm2' | 'overdraft' | 'hoarding', number> = { alarm1: 0, alarm2: 0, overdraft: 0, hoarding: 0 };
      for (const key of ['alarm1', 'alarm2', 'overdraft', 'hoarding'] as const) {
        const v = limitFromNumber(request[key], layout.amountUnit);
        if (!v.ok)
          throw new CardError(
            'VALUE_INVALID',
            `${key} ${v.reason} (this card layout counts ${layout.amountUnit === 'fen' ? 'yuan' : 'kWh'})`,
          );
        limits[key] = v.value;
      }
      const bad = checkParameterLimits(limits);
      if (bad) throw new CardError('VALUE_INVALID', `${bad.field} ${bad.reason}`);
      return provisioning.writeParameterCard(encoder, layout, {
        values: { price: price.value, ...limits },
        ...(meterNumber !== undefined ? { meterNumber } : {}),
        operator: request.operator,
        psc,
      });
    });
  }

  /** What the cards of an encoder count purchases in: its layout's unit. */
  amountUnit(encoderId: string | undefined): 'fen' | '0.01kWh' {
    return this.#encoderConfig(encoderId).layout.amountUnit;
  }

  /** 购电卡常规性维护 of the card in the slot: what it is, its PSC attempts, whether it agrees with the archive and the books. */
  health(encoderId: string | undefined): Promise<CardHealth> {
    const provisioning = this.#provisioning();
    return this.#withEncoder(encoderId, (encoder, layout) => provisioning.health(encoder, layout));
  }

  /**
   * The books' last purchase of a meter written again onto its customer card (same count, same amount): a card whose
   * purchase was lost before the meter took it. Not a sale: nothing moves in the books.
   */
  reissue(request: {
    meter: string;
    encoder?: string;
  }): Promise<{ meterNumber: string; count: number; amount: number; unit: 'fen' | '0.01kWh' }> {
    const meterNumber = this.#meterNumber(request.meter, 're-issue cards for');
    return this.#withEncoder(request.encoder, async (encoder, layout, psc) => {
      const r = await this.#counter.reissue(encoder, layout, { meterNumber, psc });
      return { meterNumber, ...r, unit: layout.amountUnit };
    });
  }

  /** The card in the slot made a check (query) card: for its own meter, or with `anyMeter` for every meter of the system. */
  checkCard(request: { encoder?: string; anyMeter?: boolean }): Promise<CardReading> {
    return this.#withEncoder(request.encoder, (encoder, layout, psc) =>
      this.#counter.makeCheckCard(encoder, layout, { psc, ...(request.anyMeter ? { anyMeter: true } : {}) }),
    );
  }

  #encoderConfig(id: string | undefined): { cfg: GatewayConfig['encoders'][number]; layout: CardLayout } {
    const { encoders } = this.#opts;
    const cfg = id === undefined ? encoders[0] : encoders.find((e) => e.id === id);
    if (!cfg)
      throw new CardError('UNKNOWN_ENCODER', id ? `no encoder "${id}" in the gateway config` : 'the gateway config has no encoders');
    return { cfg, layout: loadCardLayout(cfg.layout, [BUILTIN_CARD_LAYOUTS_DIR]) };
  }

  #meterNumber(meter: string, what: string): string {
    const meterNumber = this.#opts.meters.find((m) => m.id === meter)?.address;
    if (!meterNumber) throw new CardError('NOT_A_CARD_METER', `meter ${meter} has no DL/T 645 meter number to ${what}`);
    return meterNumber;
  }

  #provisioning(): CardProvisioning {
    if (!this.#opts.provisioning)
      throw new CardError('CONFIG_INVALID', 'this counter has no customer archive to open or replace cards with');
    return this.#opts.provisioning;
  }

  async #withEncoder<T>(id: string | undefined, fn: (encoder: CardEncoder, layout: CardLayout, psc: Uint8Array) => Promise<T>): Promise<T> {
    const { cfg, layout } = this.#encoderConfig(id);
    const psc = cfg.psc === undefined ? layout.psc : fromHex(cfg.psc);
    if (psc?.length !== 3) throw new CardError('CONFIG_INVALID', `encoder ${cfg.id}: psc must be 6 hex digits`);
    const encoder = new SerialCardEncoder({
      id: cfg.id,
      port: cfg.port,
      profile: loadEncoderProfile(cfg.profile, [BUILTIN_ENCODER_PROFILES_DIR]),
      logger: this.#opts.logger ?? silentLogger,
    });
    await encoder.open();
    try {
      return await fn(encoder, layout, psc);
    } finally {
      await encoder.close();
    }
  }
}
