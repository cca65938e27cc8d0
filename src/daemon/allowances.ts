import type { Clock, Timers } from '../clock.js';
import type { GatewayConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import { AllowanceService } from '../services/allowances/index.js';
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
    meters: config.meters.map((m) => ({
      id: m.id,
      busId: m.busId,
      ...(m.address !== undefined ? { address: m.address } : {}),
      ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
      tags: m.tags,
      ...(m.district !== undefined ? { district: m.district } : {}),
      ...(m.profile.credit ? { creditUnit: m.profile.credit.unit } : {}),
    })),
    // Only the buses that carry a targeted meter need a worker.
    busIds: config.allowances.length === 0 ? [] : config.buses.map((b) => b.id),
    credit: d.credit,
    afterApplied: async (row, entry, signal) => {
      if (!config.credit.closeRelayAfterTopup || (entry.before !== null && entry.before.balance > 0)) return;
      await d.relays.closeIfOpen(row.meterId, `${entry.requestId}:after-allowance`, signal);
    },
    onChange: () => d.onCommitted(),
  });
}
