import {
  abnormalReply,
  diFromBytes,
  ERR_2007,
  findDataItem,
  normalReply,
  SERR,
  type Address,
  type Edition,
  type Frame,
  type ValueFormat,
} from '../../../protocols/dlt645/index.js';
import type { EnergyModel } from './energy.js';
import type { Relay } from './relay.js';
import type { SecurityModule } from './security.js';
import type { MeterKind, MeterSpec } from './spec.js';
import type { LoadRefusal, Wallet } from './wallet.js';

const bit = (table: typeof ERR_2007, name: string): number => 1 << table.find((e) => e.name === name)!.bit;

/** Error word bits of an abnormal reply (docs/reference/dlt645.md § Error word ERR). */
export const ERR = {
  other: bit(ERR_2007, 'other-error'),
  noData: bit(ERR_2007, 'no-requested-data'),
  password: bit(ERR_2007, 'password-error'),
  baud: bit(ERR_2007, 'baud-rate-unchangeable'),
};

/** Security error word bits of a refused 0x03 (docs/reference/prepaid.md § Security error word SERR). */
export const SERR_BIT: Record<LoadRefusal | 'other-error' | 'mac-failed' | 'authentication-failed' | 'customer-number-mismatch', number> = {
  'other-error': bit(SERR, 'other-error'),
  'authentication-failed': bit(SERR, 'authentication-failed'),
  'repeat-recharge': bit(SERR, 'repeat-recharge'),
  'mac-failed': bit(SERR, 'mac-failed'),
  'customer-number-mismatch': bit(SERR, 'customer-number-mismatch'),
  'purchase-count-error': bit(SERR, 'purchase-count-error'),
  'over-hoarding-limit': bit(SERR, 'over-hoarding-limit'),
};

/** The event counters a meter keeps, by the point that reads each one. */
export const COUNTER_POINTS = {
  'events.programming.count': 'programming',
  'events.meter-clear.count': 'meterClear',
  'events.demand-clear.count': 'demandClear',
  'events.event-clear.count': 'eventClear',
  'events.time-set.count': 'timeSet',
  'events.cover-open.count': 'coverOpen',
  'events.power-down.count': 'powerDown',
} as const;
export type Counter = (typeof COUNTER_POINTS)[keyof typeof COUNTER_POINTS];

/** A value the meter computes from its state; `write` is how a seed or a 0x14 write sets it. */
export interface LiveValue {
  read(): Uint8Array;
  write?(bytes: Uint8Array): boolean;
  /** A master may set it with 0x14 (parameters such as the clock or the customer number). */
  master?: boolean;
  /** Why a spec cannot seed it, when it cannot. */
  notSeedable?: string;
}
export type LiveFactory = (format: ValueFormat) => LiveValue;

/** The meter's clock: host time plus the offset a clock write or a broadcast sets. */
export interface MeterClock {
  /** Host time of the last request or advance. */
  now: number;
  /** Host time up to which consumption has been counted. */
  lastMs: number | undefined;
  offsetMs: number;
  readonly maxBroadcastSkewMs: number;
  /** The meter day of the last accepted broadcast time: one per day. */
  lastBroadcastDay: string | undefined;
}

/**
 * Everything one simulated meter knows, shared by its energy model, its point bindings and the handler of each
 * function family. Internal to the simulator: tests and the CLI see a meter through `SimulatedMeter`.
 */
export interface MeterState {
  address: Address;
  readonly edition: Edition;
  readonly kind: MeterKind;
  readonly phases: 1 | 3;
  readonly blockReads: boolean;
  readonly vendorCredit: MeterSpec['vendorCredit'];
  readonly maxReplyData: number;
  readonly registers: Map<string, Uint8Array>;
  readonly live: Map<string, LiveValue>;
  /** Password by level. */
  readonly passwords: Map<number, string>;
  readonly relay: Relay;
  readonly wallet: Wallet | undefined;
  readonly security: SecurityModule;
  readonly energy: EnergyModel;
  readonly clock: MeterClock;
  readonly counters: Record<Counter, number>;
  /** Seeded or written status words; the simulator's own bits are laid over them on every read. */
  readonly statusBase: Map<string, number>;
  customerNumber: string;
  opened: boolean;
  lastOperatorCode: string | undefined;
  requestedBaud: number | undefined;
  multiFunctionMode: number;
}

/** The meter's own clock now, in epoch milliseconds. */
export function clockMs(m: MeterState): number {
  return m.clock.now + m.clock.offsetMs;
}

export function errReply(m: MeterState, req: Frame, word: number): Frame {
  return abnormalReply(req, m.address, word, m.edition);
}

export function okReply(m: MeterState, req: Frame, data: Uint8Array = new Uint8Array(0)): Frame {
  return normalReply(req, m.address, data);
}

export function passwordOk(m: MeterState, bytes: Uint8Array): boolean {
  return m.passwords.get(bytes[0]!) === diFromBytes(bytes.subarray(1, 4));
}

/**
 * Password and operator code of a clear or a control command (PA P0 P1 P2, C0..C3, then the command's own bytes):
 * the refusal to send, or undefined when the command may go ahead.
 */
export function authorised(m: MeterState, req: Frame, length: number): Frame | undefined {
  if (req.data.length < 8) return errReply(m, req, ERR.other);
  if (!passwordOk(m, req.data.subarray(0, 4))) return errReply(m, req, ERR.password);
  if (req.data.length !== length) return errReply(m, req, ERR.other);
  m.lastOperatorCode = diFromBytes(req.data.subarray(4, 8));
  return undefined;
}

/** Items a meter of this kind and phase count does not have (a money meter has no kWh balance, and so on). */
export function supports(m: MeterState, di: string): boolean {
  const point = findDataItem(di, m.edition)?.point;
  if (m.phases === 1 && point && /\.(b|c)$/.test(point)) return false;
  if (m.edition === '1997') return true;
  if (/^009002|^040010/.test(di)) return m.kind === 'money';
  if (/^009001|^04000F/.test(di)) return m.kind === 'energy';
  if (di.startsWith('0333')) return m.kind !== 'plain';
  return true;
}
