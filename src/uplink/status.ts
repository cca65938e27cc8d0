/** How one bus looks from the station: its id and whether its port is open. */
export interface BusStatus {
  readonly id: string;
  readonly state: 'up' | 'down';
  /** Why a bus is down, in words a technician can act on (e.g. "/dev/ttyUSB0 is gone"). */
  readonly error?: string;
}

/** What the birth message says besides `state`, asked for at every connect so it is current. */
export interface BirthInfo {
  /** meterd's version (package.json). */
  readonly version: string;
  /** When this process started, ISO 8601 UTC; a new value means the gateway restarted. */
  readonly startedAt: string;
  readonly buses: readonly BusStatus[];
  /** `full` while the gateway's disk is full (readings held in memory, not stored); absent means ok. */
  readonly storage?: 'ok' | 'full';
  /** Problems the station should act on; left out while there are none. */
  readonly health?: GatewayHealth;
}

/** What is wrong with the gateway itself, as opposed to its meters and buses. */
export interface GatewayHealth {
  /** Messages the broker refused for ever, held in the store's dead letters (check the broker's ACL and size limit). */
  readonly deadLetters: number;
}

/** The retained payload of `<prefix>/<gatewayId>/status`. */
export type GatewayStatus = ({ readonly state: 'online' } & BirthInfo) | { readonly state: 'offline'; readonly reason?: 'shutdown' };

export function onlineStatus(info: BirthInfo): GatewayStatus {
  const status: { -readonly [K in keyof BirthInfo]: BirthInfo[K] } & { state: 'online' } = {
    state: 'online',
    version: info.version,
    startedAt: info.startedAt,
    buses: info.buses,
  };
  if (info.storage !== undefined) status.storage = info.storage;
  if (info.health !== undefined && info.health.deadLetters > 0) status.health = info.health;
  return status;
}

/** The last will: the broker publishes it when the connection dies without a DISCONNECT (crash, power, network). */
export const OFFLINE_WILL: GatewayStatus = { state: 'offline' };

/** Published by the gateway itself before a clean disconnect, so the station can tell maintenance from a fault. */
export const OFFLINE_SHUTDOWN: GatewayStatus = { state: 'offline', reason: 'shutdown' };
