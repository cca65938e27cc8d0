import { meterTimeOf } from '../../protocols/dlt645/index.js';
import type { Clock } from '../clock.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import { sendBroadcastTime } from '../devices/dlt645-meter.js';
import { creditMessage, CreditError, type CreditService } from '../services/credit.js';
import { ProvisioningError, type AccountOpening } from '../services/provisioning/index.js';
import { AlertsError, type AlertService } from '../services/alerts/service.js';
import type { BooksPublisher } from '../services/books/index.js';
import type { Poller } from '../services/poller.js';
import type { RecallService } from '../services/recall.js';
import type { RelayService } from '../services/relay.js';
import type { SupplyService } from '../services/supply/service.js';
import type { CommandHandlers, CommandOutcome } from '../uplink/commands/types.js';
import type { OpenedBus } from './meters.js';

function expired(expiresAt: string | undefined, nowMs: number): boolean {
  return expiresAt !== undefined && Date.parse(expiresAt) <= nowMs;
}

export interface HandlerDeps {
  /** The counter's card operations (card-sell, card-read). */
  cards: Pick<CommandHandlers, 'cardSell' | 'cardRead' | 'cardOpen' | 'cardReplace' | 'cardRewrite' | 'cardParam'>;
  /** allowance-run and allowance-resolve (allowance-handlers.ts). */
  allowances: Pick<CommandHandlers, 'allowanceRun' | 'allowanceResolve'>;
  /** supply-notice, -approve, -cancel, -restore (supply-handlers.ts). */
  supplyCommands: Pick<CommandHandlers, 'supplyNotice' | 'supplyApprove' | 'supplyCancel' | 'supplyRestore'>;
  /** The 停(送)电 record: plain relay commands are written into it; a meter cut under a notice is its relay. */
  supply: Pick<SupplyService, 'recordRelay' | 'holdsRelay' | 'wake'>;
  /** meter-replace (replacement.ts). */
  replacement: Pick<CommandHandlers, 'meterReplace'>;
  credit: CreditService;
  /** account-open: a remote meter's account opened (its customer number, or ESAM 070101FF). */
  accounts: Pick<AccountOpening, 'open'>;
  relays: RelayService;
  poller: Poller;
  /** Config facts a handler needs about a meter: its bus, its default customer number, its DL/T 645 driver. */
  meters: ReadonlyMap<string, { busId: string; customerNo?: string; dlt645?: Dlt645Meter; points: ReadonlySet<string> }>;
  buses: readonly OpenedBus[];
  /** Station policy: close a relay a meter left open after a remote top-up. */
  closeRelayAfterTopup: boolean;
  /** Wall time for expiry checks, reply timestamps and the time broadcast. */
  clock: Clock;
  /** Alert acknowledgements (alert-ack). */
  alerts: Pick<AlertService, 'acknowledge'>;
  /** The station's recall of readings by seq and of daily reports by date. */
  recall: {
    readonly maxRange: number;
    readings: Pick<RecallService, 'recall'>;
    reports: Pick<BooksPublisher, 'recallDays'>;
  };
}

/** card-read and card-sell on a gateway whose config names no encoder: refused as the card counter refuses them. */
export const withoutCardCounter: HandlerDeps['cards'] = {
  cardRead: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
  cardSell: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
  cardOpen: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
  cardReplace: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
  cardRewrite: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
  cardParam: async () => ({ status: 'rejected', error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders' } }),
};

/**
 * The MQTT commands, served by the services: the router validates, authenticates and de-duplicates; these only
 * translate a command into a service call and its outcome into a reply. Services know nothing of MQTT.
 */
export function gatewayCommandHandlers(d: HandlerDeps): CommandHandlers {
  return {
    cardSell: (cmd, ctx) => d.cards.cardSell(cmd, ctx),
    cardRead: (cmd, ctx) => d.cards.cardRead(cmd, ctx),
    cardOpen: (cmd, ctx) => d.cards.cardOpen(cmd, ctx),
    cardReplace: (cmd, ctx) => d.cards.cardReplace(cmd, ctx),
    cardRewrite: (cmd, ctx) => d.cards.cardRewrite(cmd, ctx),
    cardParam: (cmd, ctx) => d.cards.cardParam(cmd, ctx),
    meterReplace: (cmd, ctx) => d.replacement.meterReplace(cmd, ctx),
    async recall(cmd): Promise<CommandOutcome> {
      if (cmd.reports !== undefined) {
        const r = d.recall.reports.recallDays(cmd.reports.from, cmd.reports.to);
        return { status: 'done', result: { reports: r.republished, missing: r.missing } };
      }
      const fromSeq = cmd.fromSeq!;
      const toSeq = cmd.toSeq!;
      if (toSeq - fromSeq + 1 > d.recall.maxRange)
        return {
          status: 'rejected',
          error: {
            code: 'RECALL_RANGE_TOO_LARGE',
            message: `a recall names at most ${d.recall.maxRange} seq numbers (uplink.recallMaxRange); this one names ${toSeq - fromSeq + 1}: split it`,
          },
        };
      const plan = d.recall.readings.recall(cmd.requestId, fromSeq, toSeq);
      return { status: 'done', result: { fromSeq, toSeq, found: plan.found, missing: plan.missing } };
    },
    async alertAck(cmd, ctx): Promise<CommandOutcome> {
      try {
        // Through the socket the operator is the person at the CLI; over MQTT the station names its technician.
        const r = d.alerts.acknowledge({ alertId: cmd.alertId, operator: cmd.operator ?? ctx.operator, note: cmd.note });
        return {
          status: 'done',
          result: {
            alertId: r.alert.alertId,
            meter: r.alert.meterId,
            kind: r.alert.kind,
            state: r.alert.clearedAt === null ? 'raised' : 'cleared',
            cleared: r.cleared,
            notes: r.notes.map((n) => ({ at: new Date(n.at).toISOString(), operator: n.operator, action: n.action, note: n.note })),
          },
        };
      } catch (err) {
        if (err instanceof AlertsError) return { status: 'rejected', error: { code: err.code, message: err.message } };
        throw err;
      }
    },
    async accountOpen(cmd, ctx): Promise<CommandOutcome> {
      try {
        const opened = await d.accounts.open(
          {
            requestId: cmd.requestId,
            meterId: cmd.meter,
            customerNo: cmd.customerNo,
            ...(cmd.name !== undefined ? { name: cmd.name } : {}),
            ...(cmd.room !== undefined ? { room: cmd.room } : {}),
            ...(cmd.energyKwh !== undefined ? { energyKwh: cmd.energyKwh } : {}),
            ...(cmd.amountFen !== undefined ? { amountFen: cmd.amountFen } : {}),
            operator: cmd.operator,
          },
          ctx.signal,
        );
        return { status: 'done', result: JSON.parse(JSON.stringify(opened)) as Record<string, unknown> };
      } catch (err) {
        // The station's to fix (archive, unit, a meter that refuses): rejected; a meter that does not answer: failed.
        if (err instanceof ProvisioningError || err instanceof CreditError)
          return { status: 'rejected', error: { code: err.code, message: err.message } };
        const code = (err as { code?: string }).code;
        if (code) return { status: 'failed', error: { code, message: (err as Error).message } };
        throw err;
      }
    },
    allowanceRun: (cmd, ctx) => d.allowances.allowanceRun(cmd, ctx),
    allowanceResolve: (cmd, ctx) => d.allowances.allowanceResolve(cmd, ctx),
    supplyNotice: (cmd, ctx) => d.supplyCommands.supplyNotice(cmd, ctx),
    supplyApprove: (cmd, ctx) => d.supplyCommands.supplyApprove(cmd, ctx),
    supplyCancel: (cmd, ctx) => d.supplyCommands.supplyCancel(cmd, ctx),
    supplyRestore: (cmd, ctx) => d.supplyCommands.supplyRestore(cmd, ctx),
    async topup(cmd, ctx): Promise<CommandOutcome> {
      // A request that expired while the gateway was down is refused, unless its load had already started:
      // that one must be settled from the meter, never dropped.
      if (ctx.resumed && expired(cmd.expiresAt, d.clock.now()) && !d.credit.known(cmd.requestId)) {
        return {
          status: 'rejected',
          error: { code: 'EXPIRED', message: `the request expired at ${cmd.expiresAt} while the gateway was down; nothing was loaded` },
        };
      }
      try {
        // The credit service keeps reading a meter that missed the read-back for a while, so the station gets a
        // definite result whenever the meter comes back soon.
        const { entry } = await d.credit.topUpSettled(
          {
            requestId: cmd.requestId,
            meterId: cmd.meter,
            // A technician's load through the control socket is the counter's kind of load, by a named operator.
            channel: ctx.origin === 'socket' ? 'operator' : 'remote',
            ...(cmd.energyKwh !== undefined ? { energyKwh: cmd.energyKwh } : { amountFen: cmd.amountFen }),
            purchaseCount: cmd.purchaseCount,
            customerNo: cmd.customerNo ?? d.meters.get(cmd.meter)?.customerNo,
            operator: ctx.operator ?? 'station',
            // ESAM meters: the station's ciphertext for identity authentication; MACs come from the encryption machine.
            ...(cmd.esam ? { esam: cmd.esam } : {}),
          },
          ctx.signal,
        );
        const result = creditMessage(entry, d.clock.now());
        if (entry.state === 'applied') {
          // A meter cut under a supply notice is the supply service's to restore: an arrears cut once the arrears are
          // cleared, a safety cut never because of money.
          const heldBySupply = d.supply.holdsRelay(cmd.meter);
          if (heldBySupply) d.supply.wake();
          // Some meters stay tripped after a remote recharge until the button is pressed or a close arrives.
          const relay =
            d.closeRelayAfterTopup && !heldBySupply
              ? await d.relays.closeIfOpen(cmd.meter, `${cmd.requestId}:after-topup`, ctx.signal)
              : undefined;
          return { status: 'done', result: relay ? { ...result, relay } : result };
        }
        if (entry.state === 'rejected')
          return { status: 'rejected', error: entry.error ?? { code: 'REJECTED', message: 'the meter refused the load' }, result };
        // Not final: the load may have reached the meter; say so, never "failed" as if nothing happened.
        return {
          status: 'failed',
          error: entry.error ?? { code: 'UNSETTLED', message: 'the load is not settled yet' },
          result: { ...result, settled: entry.state === 'failed' },
        };
      } catch (err) {
        if (err instanceof CreditError) return { status: 'rejected', error: { code: err.code, message: err.message } };
        throw err;
      }
    },

    async relay(cmd, ctx): Promise<CommandOutcome> {
      // A stale trip must die rather than cut off a customer who may have paid since.
      if (expired(cmd.expiresAt, d.clock.now()))
        return {
          status: 'rejected',
          error: { code: 'EXPIRED', message: `the ${cmd.action} expired at ${cmd.expiresAt}; nothing was sent to the meter` },
        };
      const r = await d.relays.switch(
        { meterId: cmd.meter, action: cmd.action, requestedBy: cmd.requestId, receivedAt: ctx.receivedAt },
        ctx.signal,
      );
      // Every relay command goes into the 停(送)电 record with its reason, whatever came of it.
      d.supply.recordRelay({
        requestId: cmd.requestId,
        meterId: cmd.meter,
        action: cmd.action,
        operator: ctx.operator ?? 'station',
        ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}),
        result:
          r.status === 'done'
            ? { relay: r.state.open ? 'open' : 'closed', confirmed: true }
            : r.status === 'cancelled'
              ? { relay: 'unknown', confirmed: false, code: 'CANCELLED_BY_TOPUP', message: r.reason }
              : { relay: r.state ? (r.state.open ? 'open' : 'closed') : 'unknown', confirmed: false, code: r.code, message: r.message },
      });
      if (r.status === 'done')
        return {
          status: 'done',
          result: { meter: cmd.meter, relay: r.state.open ? 'open' : 'closed', ...(r.note ? { note: r.note } : {}) },
        };
      if (r.status === 'cancelled') return { status: 'rejected', error: { code: 'CANCELLED_BY_TOPUP', message: r.reason } };
      return {
        status: r.status,
        error: { code: r.code, message: r.message },
        ...(r.state ? { result: { relay: r.state.open ? 'open' : 'closed' } } : {}),
      };
    },

    async read(cmd): Promise<CommandOutcome> {
      const meter = d.meters.get(cmd.meter)!;
      const unknown = cmd.points.filter((p) => !meter.points.has(p));
      if (unknown.length > 0)
        return { status: 'rejected', error: { code: 'UNKNOWN_POINT', message: `meter ${cmd.meter} has no point ${unknown.join(', ')}` } };
      const values = await d.poller.pollNow(cmd.meter, cmd.points, 'operator');
      return {
        status: 'done',
        result: { meter: cmd.meter, ts: new Date(d.clock.now()).toISOString(), values: Object.fromEntries(values) },
      };
    },

    async timeSync(cmd): Promise<CommandOutcome> {
      const busIds =
        cmd.meter === 'all' ? d.buses.filter((b) => b.kind === 'dlt645').map((b) => b.config.id) : [d.meters.get(cmd.meter)?.busId];
      const targets = d.buses.filter((b) => b.kind === 'dlt645' && busIds.includes(b.config.id));
      if (targets.length === 0)
        return {
          status: 'rejected',
          error: { code: 'TIME_SYNC_UNSUPPORTED', message: 'time sync is a DL/T 645 broadcast; no DL/T 645 bus carries this meter' },
        };
      // One broadcast per bus: meters accept it within 5 minutes of their own clock (docs/reference/dlt645.md § Broadcast time 0x08).
      const at = new Date(d.clock.now()).toISOString();
      // Read per bus: a broadcast waits for its bus, and the time it carries must be the time it leaves.
      for (const b of targets) if (b.kind === 'dlt645') await sendBroadcastTime(b.bus, meterTimeOf(new Date(d.clock.now())));
      const result: Record<string, unknown> = { broadcastOn: targets.map((b) => b.config.id), at };
      const one = cmd.meter === 'all' ? undefined : d.meters.get(cmd.meter)?.dlt645;
      if (one) {
        const { skewMs, meterClock } = await one.clockSkewMs({ priority: 'operator' });
        result.meterClock = meterClock;
        result.skewSeconds = Math.round(skewMs / 1000);
        if (Math.abs(skewMs) > 5000)
          return {
            status: 'failed',
            error: {
              code: 'TIME_NOT_SET',
              message: `the meter clock is still ${Math.round(skewMs / 1000)} s off: meters take one broadcast a day, within 5 minutes of their own time`,
            },
            result,
          };
      }
      return { status: 'done', result };
    },
  };
}
