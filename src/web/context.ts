import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { CommandReply } from '../uplink/commands/types.js';
import type { ConsoleBackend } from './backend.js';
import type { Session, Sessions } from './sessions.js';

export const SESSION_COOKIE = 'meterd_session';

/** What the routes share: the backend, the sessions, and how to run a command through the router's local door. */
export interface ApiContext {
  readonly backend: ConsoleBackend;
  readonly sessions: Sessions;
  readonly clock: Clock;
  readonly secureCookie: boolean;
  readonly log: Logger;
  run(command: string, request: Record<string, unknown>, session: Session): Promise<CommandReply>;
  /** A request id for a command the console makes on its own (the browser sends its own for every action). */
  newRequestId(): string;
}

/** The overview page's figures: the daemon's status, trimmed to what the page shows, and today's sales. */
export function overviewOf(backend: ConsoleBackend): Record<string, unknown> {
  const s = backend.status();
  return {
    gatewayId: s.gatewayId,
    version: s.version,
    uptimeSeconds: Math.floor(s.uptimeSeconds / 60) * 60,
    broker: s.broker,
    buses: s.buses,
    meters: s.meters,
    outbox: s.outbox,
    alerts: s.alerts,
    batches: s.batches,
    commands: s.commands,
    sales: backend.salesToday(),
    disk: backend.disk(),
  };
}
