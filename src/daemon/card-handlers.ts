import { GatewayCardCounter, LedgerCardSales } from '../cards/index.js';
import type { GatewayConfig } from '../config/index.js';
import { isCardError } from '../devices/card-encoder/index.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import type { CardReadCommand, CardSellCommand, CommandOutcome } from '../uplink/commands/types.js';

/** card-read and card-sell over MQTT: each command is one call of the gateway's card counter (src/cards). */
export function cardCommandHandlers(config: GatewayConfig, store: Store, logger: Logger) {
  const counter = new GatewayCardCounter({
    encoders: config.encoders,
    meters: config.meters,
    books: new LedgerCardSales(() => store),
    logger,
  });
  return {
    async cardRead(cmd: CardReadCommand): Promise<CommandOutcome> {
      try {
        const reading = await counter.read(cmd.encoder);
        return { status: 'done', result: JSON.parse(JSON.stringify(reading)) as Record<string, unknown> };
      } catch (err) {
        return outcomeOf(err);
      }
    },
    async cardSell(cmd: CardSellCommand): Promise<CommandOutcome> {
      try {
        const sale = await counter.sell(cmd);
        return { status: 'done', result: { ...sale } };
      } catch (err) {
        return outcomeOf(err);
      }
    },
  };
}

/** A card refusal is the station's to fix (rejected); any other coded failure is the gateway's (failed). */
function outcomeOf(err: unknown): CommandOutcome {
  if (isCardError(err)) return { status: 'rejected', error: { code: err.code, message: err.message } };
  const code = (err as { code?: string }).code;
  if (code) return { status: 'failed', error: { code, message: (err as Error).message } };
  throw err;
}
