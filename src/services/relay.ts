import type { Clock } from '../clock.js';
import type { RelayAction, RelayPort, RelayState } from '../devices/relay-port.js';
import { silentLogger, type Logger } from '../log.js';
import { upsertMeterState, type Store } from '../store/index.js';
import { enqueueMeterState } from './meter-state-message.js';

export interface RelayRequest {
  readonly meterId: string;
  readonly action: RelayAction;
  /** Who asked (the station's request id, or a technician's name), recorded with the result. */
  readonly requestedBy: string;
  /** When the request was received: a trip older than a load applied since then is cancelled. */
  readonly receivedAt: number;
}

export type RelayResult =
  | { readonly status: 'done'; readonly state: RelayState; readonly note?: string }
  | { readonly status: 'cancelled'; readonly reason: string }
  | { readonly status: 'rejected' | 'failed'; readonly code: string; readonly message: string; readonly state?: RelayState };

export interface RelayServiceOptions {
  store: Store;
  clock: Clock;
  ports: ReadonlyMap<string, RelayPort>;
  logger?: Logger;
  onCommitted?: () => void;
  /** How long a relay command stays valid at the meter. Default 10 minutes. */
  validForMs?: number;
}

/**
 * Trips and closes relays for arrears, each command sent once and confirmed from the meter's own status. A trip for
 * a meter that has been topped up since the request arrived is cancelled, not executed.
 */
export class RelayService {
  private readonly log: Logger;

  constructor(private readonly opts: RelayServiceOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'relay' });
  }

  /** Whether the meter's profile gives it a relay this service can switch. */
  supports(meterId: string): boolean {
    return this.opts.ports.has(meterId);
  }

  /** The relay as the meter reports it now (status word 3 on DL/T 645), without switching it. */
  async readState(meterId: string, signal?: AbortSignal): Promise<RelayState> {
    const port = this.opts.ports.get(meterId);
    if (!port) throw new Error(`meter ${meterId} has no relay control in its profile`);
    return port.readState({ priority: 'operator', signal });
  }

  async switch(req: RelayRequest, signal?: AbortSignal): Promise<RelayResult> {
    const port = this.opts.ports.get(req.meterId);
    if (!port)
      return { status: 'rejected', code: 'RELAY_UNSUPPORTED', message: `meter ${req.meterId} has no relay control in its profile` };
    if (req.action === 'trip') {
      const paid = this.opts.store.ledger
        .list({ meterId: req.meterId, since: req.receivedAt })
        .find((e) => e.state === 'applied' && e.kind === 'load');
      if (paid) {
        const reason = `meter ${req.meterId} was topped up after the trip was requested (request ${paid.requestId}); the trip is cancelled`;
        this.log.info({ meter: req.meterId, requestedBy: req.requestedBy, topup: paid.requestId }, 'trip cancelled by a later top-up');
        return { status: 'cancelled', reason };
      }
    }
    const outcome = await port.command(req.action, { priority: 'operator', validForMs: this.opts.validForMs ?? 600_000, signal });
    if (outcome.kind === 'refused') {
      this.log.warn({ meter: req.meterId, action: req.action, requestedBy: req.requestedBy, code: outcome.code }, outcome.message);
      return { status: 'rejected', code: outcome.code, message: outcome.message };
    }
    // Confirm from the meter, also after a lost acknowledgement: the status word says whether the relay moved.
    let state: RelayState;
    try {
      state = await port.readState({ priority: 'operator', signal });
    } catch (err) {
      return {
        status: 'failed',
        code: 'RELAY_NOT_CONFIRMED',
        message: `the relay state could not be read back: ${(err as Error).message}${outcome.kind === 'unknown' ? '; the command may or may not have reached the meter' : ''}`,
      };
    }
    this.record(req, state);
    const wantOpen = req.action === 'trip';
    if (state.open === wantOpen)
      return {
        status: 'done',
        state,
        ...(outcome.kind === 'unknown' ? { note: 'the acknowledgement was lost; confirmed from the meter status' } : {}),
      };
    if (req.action === 'close' && port.closeMode === 'allowed' && state.commandTrip === false) {
      return { status: 'done', state, note: 'close allowed: the relay closes when the customer presses the button' };
    }
    return {
      status: 'failed',
      code: 'RELAY_NOT_CONFIRMED',
      message: `the meter ${outcome.kind === 'accepted' ? 'accepted' : 'may have received'} the ${req.action} but its relay is ${state.open ? 'open' : 'closed'}`,
      state,
    };
  }

  /**
   * After a top-up: read the relay, and close it when it is open (a remote recharge leaves some meters tripped until
   * the button is pressed or a close arrives, docs/reference/prepaid.md § Relay control for arrears). Returns the relay as it then stands.
   */
  async closeIfOpen(meterId: string, requestedBy: string, signal?: AbortSignal): Promise<'open' | 'closed' | 'unknown'> {
    const port = this.opts.ports.get(meterId);
    if (!port) return 'unknown';
    try {
      const state = await port.readState({ priority: 'credit', signal });
      if (!state.open) return 'closed';
      const r = await this.switch({ meterId, action: 'close', requestedBy, receivedAt: this.opts.clock.now() }, signal);
      return r.status === 'done' ? (r.state.open ? 'open' : 'closed') : 'open';
    } catch (err) {
      this.log.warn({ meter: meterId, err: (err as Error).message }, 'relay not checked after the top-up');
      return 'unknown';
    }
  }

  /** The new relay state goes to the meter state row and its retained message, in one commit. */
  private record(req: RelayRequest, state: RelayState): void {
    const now = this.opts.clock.now();
    this.opts.store.transaction((tx) => {
      const s = upsertMeterState(tx, req.meterId, { relayState: state.open ? 'open' : 'closed' });
      enqueueMeterState(
        tx,
        req.meterId,
        { online: s.online, lastGoodReadAt: s.lastGoodReadAt, relay: s.relayState, balance: s.balance },
        now,
        {
          relayChange: { action: req.action, requestedBy: req.requestedBy, at: new Date(now).toISOString() },
        },
      );
    });
    this.opts.onCommitted?.();
    this.log.info({ meter: req.meterId, action: req.action, requestedBy: req.requestedBy, open: state.open }, 'relay switched');
  }
}
