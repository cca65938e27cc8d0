import { fromHex } from '../../protocols/dlt645/index.js';
import { readCard, sellCard } from '../cards/index.js';
import type { GatewayConfig } from '../config/index.js';
import { CardError } from '../devices/card/errors.js';
import { SerialCardEncoder } from '../devices/card-encoder.js';
import type { Logger } from '../log.js';
import { BUILTIN_CARD_LAYOUTS_DIR, loadCardLayout } from '../profiles/card-layout.js';
import { BUILTIN_ENCODER_PROFILES_DIR, loadEncoderProfile } from '../profiles/encoder-profile.js';
import { LedgerCardSales } from '../services/card-sales.js';
import type { Store } from '../store/index.js';
import type { CardReadCommand, CardSellCommand, CommandOutcome } from '../uplink/commands/types.js';

/**
 * card-sell and card-read over MQTT: the station software at the counter drives an encoder attached to the gateway.
 * The encoder's port is opened for each operation only, so a technician can still use it with `meterd card`.
 */
export function cardCommandHandlers(config: GatewayConfig, store: Store, logger: Logger) {
  const books = new LedgerCardSales(() => store);
  const encoderFor = (id: string | undefined) => (id === undefined ? config.encoders[0] : config.encoders.find((e) => e.id === id));
  async function withEncoder<T>(
    id: string | undefined,
    fn: (e: SerialCardEncoder, layout: ReturnType<typeof loadCardLayout>, psc: Uint8Array) => Promise<T>,
  ): Promise<T | CommandOutcome> {
    const cfg = encoderFor(id);
    if (!cfg)
      return {
        status: 'rejected',
        error: { code: 'UNKNOWN_ENCODER', message: id ? `no encoder "${id}" in the gateway config` : 'the gateway config has no encoders' },
      };
    const layout = loadCardLayout(cfg.layout, [BUILTIN_CARD_LAYOUTS_DIR]);
    const psc = cfg.psc === undefined ? layout.psc : fromHex(cfg.psc);
    if (psc?.length !== 3)
      return { status: 'rejected', error: { code: 'CONFIG_INVALID', message: `encoder ${cfg.id}: psc must be 6 hex digits` } };
    const encoder = new SerialCardEncoder({
      id: cfg.id,
      port: cfg.port,
      profile: loadEncoderProfile(cfg.profile, [BUILTIN_ENCODER_PROFILES_DIR]),
      logger,
    });
    await encoder.open();
    try {
      return await fn(encoder, layout, psc);
    } finally {
      await encoder.close();
    }
  }
  const failure = (err: unknown): CommandOutcome => {
    if (err instanceof CardError) return { status: 'rejected', error: { code: err.code, message: err.message } };
    const code = (err as { code?: string }).code;
    if (code) return { status: 'failed', error: { code, message: (err as Error).message } };
    throw err;
  };
  return {
    async cardRead(cmd: CardReadCommand): Promise<CommandOutcome> {
      try {
        const r = await withEncoder(cmd.encoder, async (encoder, layout) => readCard(encoder, layout));
        if ('status' in r) return r;
        return { status: 'done', result: JSON.parse(JSON.stringify(r)) as Record<string, unknown> };
      } catch (err) {
        return failure(err);
      }
    },
    async cardSell(cmd: CardSellCommand): Promise<CommandOutcome> {
      const meter = config.meters.find((m) => m.id === cmd.meter);
      const meterNumber = meter?.address;
      if (!meterNumber)
        return {
          status: 'rejected',
          error: { code: 'NOT_A_CARD_METER', message: `meter ${cmd.meter} has no DL/T 645 meter number to sell cards for` },
        };
      try {
        const r = await withEncoder(cmd.encoder, async (encoder, layout, psc) => {
          const unit = layout.amountUnit;
          const amount = unit === '0.01kWh' ? Math.round((cmd.energyKwh ?? NaN) * 100) : (cmd.amountFen ?? NaN);
          if (!Number.isSafeInteger(amount)) {
            return {
              status: 'rejected',
              error: {
                code: 'UNIT_MISMATCH',
                message: `this card layout carries ${unit === 'fen' ? 'money: give amountFen' : 'energy: give energyKwh'}`,
              },
            } as CommandOutcome;
          }
          const last = await books.lastSale(meterNumber);
          return sellCard(encoder, layout, { meterNumber, booksCount: last?.count ?? 0, amount, operator: cmd.operator, psc }, books, {
            logger,
          });
        });
        if ('status' in r) return r;
        return { status: 'done', result: { ...r } };
      } catch (err) {
        return failure(err);
      }
    },
  };
}
