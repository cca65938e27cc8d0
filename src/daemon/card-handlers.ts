import { CardProvisioning, GatewayCardCounter, LedgerCardSales } from '../cards/index.js';
import type { GatewayConfig } from '../config/index.js';
import { isCardError } from '../devices/card-encoder/index.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import type {
  CardOpenCommand,
  CardParamCommand,
  CardReadCommand,
  CardReplaceCommand,
  CardRewriteCommand,
  CardSellCommand,
  CommandOutcome,
} from '../uplink/commands/types.js';

/** The gateway's card counter: its encoders, the books and the customer archive in its store. */
export function gatewayCardCounter(config: GatewayConfig, store: Store, logger: Logger): GatewayCardCounter {
  return new GatewayCardCounter({
    encoders: config.encoders,
    meters: config.meters,
    books: new LedgerCardSales(() => store),
    provisioning: new CardProvisioning(() => store, { logger }),
    logger,
  });
}

/** card-read, card-sell, card-open, card-replace, card-rewrite and card-param over MQTT and the control socket: each command is one call of the gateway's card counter (src/cards). */
export function cardCommandHandlers(config: GatewayConfig, store: Store, logger: Logger) {
  const counter = gatewayCardCounter(config, store, logger);
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
    async cardOpen(cmd: CardOpenCommand): Promise<CommandOutcome> {
      try {
        const opened = await counter.open(cmd);
        return { status: 'done', result: JSON.parse(JSON.stringify(opened)) as Record<string, unknown> };
      } catch (err) {
        return outcomeOf(err);
      }
    },
    async cardReplace(cmd: CardReplaceCommand): Promise<CommandOutcome> {
      try {
        const replaced = await counter.replace(cmd);
        return { status: 'done', result: { ...replaced } };
      } catch (err) {
        return outcomeOf(err);
      }
    },
    async cardParam(cmd: CardParamCommand): Promise<CommandOutcome> {
      try {
        const written = await counter.param(cmd);
        return { status: 'done', result: { ...written } };
      } catch (err) {
        return outcomeOf(err);
      }
    },
    async cardRewrite(cmd: CardRewriteCommand): Promise<CommandOutcome> {
      try {
        const rewritten = await counter.rewrite(cmd);
        return { status: 'done', result: JSON.parse(JSON.stringify(rewritten)) as Record<string, unknown> };
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
