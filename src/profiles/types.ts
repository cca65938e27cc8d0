import type { AlertKind } from '../values/alert-kinds.js';
import type { TimeLayout, ValueFormat } from '../../protocols/dlt645/index.js';
import type { z } from 'zod';
import type { accountSchema, creditSchema, modbusOrders, modbusTables, modbusTypes, relaySchema } from './schema.js';

export type Protocol = 'dlt645-2007' | 'dlt645-1997' | 'modbus-rtu' | 'modbus-tcp';
export type ModbusType = (typeof modbusTypes)[number];
export type ModbusOrder = (typeof modbusOrders)[number];
export type ModbusTable = (typeof modbusTables)[number];

export interface LineSettings {
  readonly baudRate: number;
  readonly parity: 'none' | 'even' | 'odd';
  readonly dataBits: 7 | 8;
  readonly stopBits: 1 | 2;
}

export interface Dlt645Point {
  readonly kind: 'dlt645';
  readonly name: string;
  readonly di: string;
  readonly format: ValueFormat;
  readonly unit: string;
  readonly item?: number;
  readonly field?: string;
  readonly scale: number;
}

export interface ModbusPoint {
  readonly kind: 'modbus';
  readonly name: string;
  readonly table: ModbusTable;
  readonly address: number;
  readonly type: ModbusType;
  readonly order: ModbusOrder;
  readonly scale: number;
  readonly offset: number;
  readonly unit: string;
}

export interface DerivedPoint {
  readonly kind: 'derived';
  readonly name: string;
  readonly from: string;
  readonly bit: number;
  readonly unit: string;
}

export type PointSpec = Dlt645Point | ModbusPoint | DerivedPoint;

export interface PointGroup {
  readonly name: string;
  readonly intervalMs: number;
  /** Once-a-day groups: local time of day "HH:MM". */
  readonly at?: string;
  readonly points: readonly string[];
}

export interface BlockRead {
  readonly di: string;
  readonly points: readonly (string | null)[];
}

export interface StatusBit {
  readonly point: string;
  readonly bit: number;
  readonly condition: string;
}

export type AnyCreditSpec = z.infer<typeof creditSchema>;
/** A method that loads purchased credit (top-ups, cards, and allowances on meters without a free-energy register). */
export type CreditSpec = Exclude<AnyCreditSpec, { method: 'modbus-subsidy' }>;
/** The meter's free-energy registers, written by allowances. */
export type SubsidySpec = Extract<AnyCreditSpec, { method: 'modbus-subsidy' }>;
export type RelaySpec = z.infer<typeof relaySchema>;
export type AccountSpec = z.infer<typeof accountSchema>;

/** A meter model as data (device-profiles/*.yaml), validated and resolved: every point has its format and unit. */
export interface DeviceProfile {
  readonly id: string;
  readonly name: string;
  readonly protocol: Protocol;
  readonly line: LineSettings;
  readonly maxGap: number;
  readonly points: ReadonlyMap<string, PointSpec>;
  readonly groups: readonly PointGroup[];
  readonly blocks: readonly BlockRead[];
  readonly status: readonly StatusBit[];
  /** Profile-specific conditions and counters that mean an alert kind (beside the built-in names). */
  readonly alerts?: { readonly conditions: Readonly<Record<string, AlertKind>>; readonly counters: Readonly<Record<string, AlertKind>> };
  readonly credit?: CreditSpec;
  /** The free-energy registers allowances write instead of a purchase, when the meter keeps free energy apart. */
  readonly subsidy?: SubsidySpec;
  readonly relay?: RelaySpec;
  /** Years between periodic verifications (周检/轮换) of a meter of this model; default 8 (docs/lifecycle.md). */
  readonly verificationYears: number;
  /** How the station opens an account on the meter remotely (its customer number, or ESAM account opening). */
  readonly account?: AccountSpec;
  /** The file it came from, for error messages. */
  readonly source: string;
}

export type { TimeLayout };
