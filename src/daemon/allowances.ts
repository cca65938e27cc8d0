import type { Clock, Timers } from '../clock.js';
import type { GatewayConfig, MeterConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import { AllowanceError, type AllowanceMeter, AllowanceService, countsMessage } from '../services/allowances/index.js';
import type { CommandContext, CommandHandlers, CommandOutcome } from '../uplink/commands/types.js';
import type { CreditService } from '../services/credit.js';
import type { RelayService } from '../services/relay.js';
import type { Store } from '../store/index.js';

/**
 * The allowance service of a gateway, from its config: every meter with its identity and credit unit, one worker per
 * bus. A meter the allowance left empty may have opened its relay: it is closed after the load, as after a top-up.
 */
export function composeAllowances(
  config: GatewayConfig,
  d: { store: Store; clock: Clock; timers: Timers; logger: Logger; credit: CreditService; relays: RelayService; onCommitted: () => void },
): AllowanceService {
  return new AllowanceService({
    store: d.store,
    clock: d.clock,
    timers: d.timers,
    logger: d.logger,
    timeZone: config.gateway.timeZone,
    allowances: config.allowances,
    meters: allowanceMeters(config),
    // Only the buses that carry a targeted meter need a worker.
    busIds: config.allowances.length === 0 ? [] : config.buses.map((b) => b.id),
    credit: d.credit,
    afterApplied: async (row, entry, signal) => {
      if (!config.credit.closeRelayAfterTopup || (entry.before !== null && entry.before.balance > 0)) return;
      await d.relays.closeIfOpen(row.meterId, `${entry.requestId}:after-allowance`, signal);
    },
    onCommitted: d.onCommitted,
  });
}

/**
 * What the allowance service knows of each configured meter: its identity, tags, district and the unit an allowance is
 * loaded in (the free-energy registers' when the profile has them, else the purchase wallet's).
 */
export function allowanceMeters(config: GatewayConfig): AllowanceMeter[] {
  return config.meters.map(allowanceMeterOf);
}

/** One point as the allowance service knows it, from its config entry (at start, and at a replacement's rebind). */
export function allowanceMeterOf(m: MeterConfig): AllowanceMeter {
  return {
    id: m.id,
    busId: m.busId,
    ...(m.address !== undefined ? { address: m.address } : {}),
    ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
    tags: m.tags,
    ...(m.district !== undefined ? { district: m.district } : {}),
    ...(m.profile.subsidy || m.profile.credit ? { creditUnit: (m.profile.subsidy ?? m.profile.credit)!.unit } : {}),
    ...(m.profile.subsidy ? { freeEnergy: m.profile.subsidy.registers } : {}),
  };
}

/** Who a command acts for, in the plan's audit trail: the CLI's operator, else the station. */
function actor(ctx: CommandContext): string {
  return ctx.operator ?? (ctx.origin === 'socket' ? 'operator' : 'station');
}

function refused(err: unknown): CommandOutcome {
  if (err instanceof AllowanceError) return { status: 'rejected', error: { code: err.code, message: err.message } };
  throw err;
}

/**
 * allowance-run and allowance-resolve: the router validates, authenticates and de-duplicates; the service decides.
 * Both return at once: a round runs in the background, its progress and report go to `allowances/<id>`.
 */
export function allowanceCommandHandlers(service: AllowanceService): Pick<CommandHandlers, 'allowanceRun' | 'allowanceResolve'> {
  return {
    async allowanceRun(cmd, ctx) {
      try {
        const status = service.runNow(cmd, { by: actor(ctx), ...(cmd.force ? { force: true } : {}) });
        return {
          status: 'done',
          result: {
            allowance: status.allowance,
            term: status.term,
            round: status.round,
            counts: countsMessage(status.counts),
            complete: status.complete,
          },
        };
      } catch (err) {
        return refused(err);
      }
    },
    async allowanceResolve(cmd, ctx) {
      try {
        const row = service.resolve(cmd, cmd.meter, cmd.action, actor(ctx));
        return {
          status: 'done',
          result: {
            allowance: row.allowance,
            term: row.term,
            round: row.round,
            meter: row.meterId,
            action: cmd.action,
            state: row.state,
            ...(row.reasonCode !== null ? { reason: { code: row.reasonCode, message: row.reason ?? '' } } : {}),
          },
        };
      } catch (err) {
        return refused(err);
      }
    },
  };
}
