/**
 * Time source of the store. The same shape as `Clock` in src/clock.ts, declared here so that the store imports
 * nothing of meterd but its logger.
 */
export interface StoreClock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** One point of a reading: a value with its unit, or why the meter gave none. */
/** A number in the point's unit, or text for times and identifiers (a meter's clock, its number). */
export type PointValue = { readonly v: number | string; readonly unit: string } | { readonly error: string; readonly message?: string };

/** What one poll of one meter produced. A point the meter did not answer is an `{ error }`, never a stale value. */
export interface Reading {
  readonly meterId: string;
  /** Time of the meter exchange (epoch ms), not the time it was stored. */
  readonly takenAt: number;
  readonly values: Readonly<Record<string, PointValue>>;
  /** Taken while the gateway's clock was not known to be right (no NTP yet): `takenAt` may be wrong. */
  readonly unsynced?: boolean;
  /** The `seq` it was published with on the `readings` stream (the station's recall asks by it). */
  readonly seq?: number;
  /** The address of the physical meter read (DL/T 645), as published (docs/lifecycle.md). */
  readonly address?: string;
}

export interface StoredReading extends Reading {
  readonly id: number;
}

/** Message classes, each with its own durability guarantee (docs/durability.md). */
export const OUTBOX_CLASSES = ['telemetry', 'state', 'credit', 'alert', 'report', 'reply'] as const;
export type OutboxClass = (typeof OUTBOX_CLASSES)[number];

export type Qos = 0 | 1 | 2;

/** A message waiting in the outbox, as the uplink publishes it. */
export interface OutboxMessage {
  readonly id: number;
  /** Relative to the gateway's topic prefix, e.g. `meters/room-101/readings`. */
  readonly topic: string;
  readonly class: OutboxClass;
  readonly qos: Qos;
  readonly retain: boolean;
  /** Serialized JSON, ready to publish as is (it already holds `seq` when the message has one). */
  readonly payload: string;
  readonly createdAt: number;
  /** UTF-8 length of the payload. */
  readonly bytes: number;
}

export type RelayState = 'closed' | 'open' | 'unknown';

/** The meter's wallet as last read, e.g. `{ remaining: 12.5, overdraft: 0, purchaseCount: 7 }`. */
export type MeterBalance = Readonly<Record<string, number>>;

export interface MeterState {
  readonly meterId: string;
  readonly online: boolean;
  readonly consecutiveFailures: number;
  readonly lastGoodReadAt: number | null;
  readonly lastAttemptAt: number | null;
  readonly relayState: RelayState | null;
  readonly balance: MeterBalance | null;
  readonly updatedAt: number;
}
