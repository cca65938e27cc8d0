import type { SupplyService } from '../services/supply/service.js';
import { SupplyError, supplyNoticeJson } from '../services/supply/service.js';
import type { Store } from '../store/index.js';
import type { CommandHandlers, CommandOutcome } from '../uplink/commands/types.js';

type SupplyHandlers = Pick<CommandHandlers, 'supplyNotice' | 'supplyApprove' | 'supplyCancel' | 'supplyRestore'>;

function refused(err: unknown): CommandOutcome {
  if (err instanceof SupplyError)
    return { status: 'rejected', error: { code: err.code, message: err.message }, ...(err.details ? { result: { ...err.details } } : {}) };
  throw err;
}

/**
 * supply-notice, -approve, -cancel and -restore: the router validates, authenticates and de-duplicates; the supply
 * service decides. A request resumed after a restart finds what it already did (its notice, its approval) and
 * answers the same instead of failing on its own earlier step.
 */
export function supplyCommandHandlers(service: SupplyService, store: Store): SupplyHandlers {
  return {
    async supplyNotice(cmd, ctx) {
      const earlier = ctx.resumed ? store.supply.noticeByRequestId(cmd.requestId) : null;
      try {
        const n =
          earlier ??
          service.notice({ requestId: cmd.requestId, meterId: cmd.meter, reason: cmd.reason, operator: cmd.operator, note: cmd.note });
        return { status: 'done', result: supplyNoticeJson(n, service.plannedAt(n)) };
      } catch (err) {
        return refused(err);
      }
    },
    async supplyApprove(cmd, ctx) {
      try {
        const n = service.approve({ requestId: cmd.requestId, noticeId: cmd.noticeId, operator: cmd.operator });
        return { status: 'done', result: supplyNoticeJson(n, service.plannedAt(n)) };
      } catch (err) {
        const n = store.supply.notice(cmd.noticeId);
        if (ctx.resumed && n !== null && n.approvedBy === cmd.operator)
          return { status: 'done', result: supplyNoticeJson(n, service.plannedAt(n)) };
        return refused(err);
      }
    },
    async supplyCancel(cmd, ctx) {
      try {
        return { status: 'done', result: supplyNoticeJson(service.cancel(cmd)) };
      } catch (err) {
        const n = store.supply.notice(cmd.noticeId);
        if (ctx.resumed && n !== null && n.state === 'cancelled' && n.cancelledBy === cmd.operator)
          return { status: 'done', result: supplyNoticeJson(n) };
        return refused(err);
      }
    },
    async supplyRestore(cmd, ctx) {
      try {
        const r = await service.restore(
          { requestId: cmd.requestId, meterId: cmd.meter, operator: cmd.operator, reason: cmd.reason },
          ctx.signal,
        );
        const result = { meter: cmd.meter, relay: r.result.relay, ...(r.notice ? { noticeId: r.notice.id, state: r.notice.state } : {}) };
        if (r.result.confirmed) return { status: 'done', result };
        return {
          status: 'failed',
          error: { code: r.result.code ?? 'RELAY_NOT_CONFIRMED', message: r.result.message ?? 'the relay did not close' },
          result,
        };
      } catch (err) {
        return refused(err);
      }
    },
  };
}
