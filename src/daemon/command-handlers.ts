import { meterTimeOf } from '../../protocols/dlt645/index.js';
import type { Dlt645Meter } from '../devices/dlt645-meter.js';
import { sendBroadcastTime } from '../devices/dlt645-meter.js';
import { creditMessage, CreditError, type CreditService } from '../services/credit.js';
import type { Poller } from '../services/poller.js';
import type { RelayService } from '../services/relay.js';
import type { CommandHandlers, CommandOutcome } from '../uplink/commands/types.js';
import type { OpenedBus } from './meters.js';

const SETTLE_TRIES = 10;
const SETTLE_PAUSE_MS = 3000;
const FINAL = ['applied', 'rejected', 'failed'];

function expired(expiresAt: string | undefined): boolean {
  return expiresAt !== undefined && Date.parse(expiresAt) <= Date.now();
}

export interface HandlerDeps {
  /** The counter's card operations (card-sell, card-read). */
  cards: Pick<CommandHandlers, 'cardSell' | 'cardRead'>;
  credit: CreditService;
  relays: RelayService;
  poller: Poller;
  /** Config facts a handler needs about a meter: its bus, its default customer number, its DL/T 645 driver. */
  meters: ReadonlyMap<string, { busId: string; customerNo?: string; dlt645?: Dlt645Meter; points: ReadonlySet<string> }>;
  buses: readonly OpenedBus[];
  /** Station policy: close a relay a meter left open after a remote top-up. */
  closeRelayAfterTopup: boolean;
}

/**
 * The MQTT commands, served by the services: the router validates, authenticates and de-duplicates; these only
 * translate a command into a service call and its outcome into a reply. Services know nothing of MQTT.
 */
export function gatewayCommandHandlers(d: HandlerDeps): CommandHandlers {
  return {
    cardSell: (cmd, ctx) => d.cards.cardSell(cmd, ctx),
    cardRead: (cmd, ctx) => d.cards.cardRead(cmd, ctx),
    async topup(cmd, ctx): Promise<CommandOutcome> {
      // A request that expired while the gateway was down is refused, unless its load had already started:
      // that one must be settled from the meter, never dropped.
      if (ctx.resumed && expired(cmd.expiresAt) && !d.credit.known(cmd.requestId)) {
        return {
          status: 'rejected',
          error: { code: 'EXPIRED', message: `the request expired at ${cmd.expiresAt} while the gateway was down; nothing was loaded` },
        };
      }
      try {
        let { entry } = await d.credit.topUp(
          {
            requestId: cmd.requestId,
            meterId: cmd.meter,
            channel: 'remote',
            ...(cmd.energyKwh !== undefined ? { energyKwh: cmd.energyKwh } : { amountFen: cmd.amountFen }),
            purchaseCount: cmd.purchaseCount,
            customerNo: cmd.customerNo ?? d.meters.get(cmd.meter)?.customerNo,
            operator: 'station',
            // ESAM meters: the station's ciphertext for identity authentication; MACs come from the encryption machine.
            ...(cmd.esam ? { esam: cmd.esam } : {}),
          },
          ctx.signal,
        );
        // Not settled yet (the meter did not answer the read-back): keep reading it for a while before answering,
        // so the station gets a definite result whenever the meter comes back soon.
        for (let i = 0; i < SETTLE_TRIES && !FINAL.includes(entry.state) && !ctx.signal.aborted; i++) {
          await new Promise((r) => setTimeout(r, SETTLE_PAUSE_MS));
          entry = (await d.credit.settleOne(entry.requestId, ctx.signal)) ?? entry;
        }
        const result = creditMessage(entry, Date.now());
        if (entry.state === 'applied') {
          // Some meters stay tripped after a remote recharge until the button is pressed or a close arrives.
          const relay = d.closeRelayAfterTopup
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
      if (expired(cmd.expiresAt))
        return {
          status: 'rejected',
          error: { code: 'EXPIRED', message: `the ${cmd.action} expired at ${cmd.expiresAt}; nothing was sent to the meter` },
        };
      const r = await d.relays.switch(
        { meterId: cmd.meter, action: cmd.action, requestedBy: cmd.requestId, receivedAt: ctx.receivedAt },
        ctx.signal,
      );
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
      return { status: 'done', result: { meter: cmd.meter, ts: new Date().toISOString(), values: Object.fromEntries(values) } };
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
      for (const b of targets) if (b.kind === 'dlt645') await sendBroadcastTime(b.bus, meterTimeOf(new Date()));
      const result: Record<string, unknown> = { broadcastOn: targets.map((b) => b.config.id), at: new Date().toISOString() };
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
