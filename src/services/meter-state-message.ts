import { enqueue, type MeterBalance, type RelayState, type Tx } from '../store/index.js';

export interface MeterStateFacts {
  readonly online: boolean | null;
  /** Its bus is down: the gateway cannot reach it, whatever the meter itself is doing. */
  readonly unreachable?: boolean;
  readonly lastGoodReadAt: number | null;
  readonly relay: RelayState | null | undefined;
  readonly balance: MeterBalance | null | undefined;
}

/**
 * Queue the retained `meters/<id>/state` message (docs/mqtt-api.md "Meter state"): the one shape every service that
 * learns something about a meter (poller, relay service) publishes, in the caller's transaction.
 */
export function enqueueMeterState(
  tx: Tx,
  meterId: string,
  facts: MeterStateFacts,
  nowMs: number,
  extra: Record<string, unknown> = {},
): void {
  enqueue(tx, {
    topic: `meters/${meterId}/state`,
    class: 'state',
    retain: true,
    payload: {
      meter: meterId,
      state: facts.unreachable ? 'unreachable' : facts.online ? 'online' : 'offline',
      lastGoodRead: facts.lastGoodReadAt === null ? null : new Date(facts.lastGoodReadAt).toISOString(),
      relay: facts.relay ?? 'unknown',
      balance: facts.balance ?? null,
      ...extra,
      ts: new Date(nowMs).toISOString(),
    },
  });
}
