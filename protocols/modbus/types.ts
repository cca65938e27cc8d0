/**
 * The four Modbus data tables, the value types meters put in them, and the byte/word orders vendors use.
 * Tables are data so the planner, the drivers and the profile loader share one source of truth.
 */

/** The four primary tables of the MODBUS data model (MODBUS Application Protocol v1.1b3 §4.3 Table "MODBUS Data model"). */
export type RegisterTable = 'coil' | 'discrete' | 'holding' | 'input';

export interface TableInfo {
  /** What one address holds: a single bit or a 16-bit register. */
  readonly unit: 'bit' | 'register';
  readonly writable: boolean;
  readonly readFunction: 1 | 2 | 3 | 4;
  readonly writeSingleFunction?: 5 | 6;
  readonly writeMultipleFunction?: 15 | 16;
  /** Largest quantity one read request may ask for. */
  readonly maxRead: number;
  /** Largest quantity one write-multiple request may carry. */
  readonly maxWrite?: number;
}

/** Protocol limits: FC01/02 read 1–2000 bits, FC03/04 read 1–125 registers (MODBUS Application Protocol v1.1b3 §6.1–§6.4). */
export const MAX_READ_BITS = 2000;
export const MAX_READ_REGISTERS = 125;
/** FC15 writes 1–1968 coils (MODBUS Application Protocol v1.1b3 §6.11). */
export const MAX_WRITE_COILS = 1968;
/** FC16 writes 1–123 registers (MODBUS Application Protocol v1.1b3 §6.12). */
export const MAX_WRITE_REGISTERS = 123;
/** Data addresses are 16 bits: 0x0000–0xFFFF in every table (MODBUS Application Protocol v1.1b3 §4.4). */
export const ADDRESS_SPACE = 0x10000;

/** Function codes per table (MODBUS Application Protocol v1.1b3 §6.1–§6.6, §6.11, §6.12); discrete inputs and input registers are read-only. */
export const TABLES: Readonly<Record<RegisterTable, TableInfo>> = {
  coil: {
    unit: 'bit',
    writable: true,
    readFunction: 1,
    writeSingleFunction: 5,
    writeMultipleFunction: 15,
    maxRead: MAX_READ_BITS,
    maxWrite: MAX_WRITE_COILS,
  },
  discrete: { unit: 'bit', writable: false, readFunction: 2, maxRead: MAX_READ_BITS },
  holding: {
    unit: 'register',
    writable: true,
    readFunction: 3,
    writeSingleFunction: 6,
    writeMultipleFunction: 16,
    maxRead: MAX_READ_REGISTERS,
    maxWrite: MAX_WRITE_REGISTERS,
  },
  input: { unit: 'register', writable: false, readFunction: 4, maxRead: MAX_READ_REGISTERS },
};

/** Tables in read-function order, which is also the order plans list their blocks in. */
export const REGISTER_TABLES: readonly RegisterTable[] = ['coil', 'discrete', 'holding', 'input'];

/**
 * Value types a point can have. `bool` is a single coil or discrete input; the others live in 16-bit registers
 * (MODBUS Application Protocol v1.1b3 §4.2: the protocol itself only knows bits and 16-bit words; wider types are vendor conventions).
 */
export type DataType = 'bool' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'int64' | 'uint64';

export interface DataTypeInfo {
  /** Addresses the value occupies: bits for `bool`, registers for the rest. */
  readonly count: number;
  readonly kind: 'bit' | 'integer' | 'float';
  readonly signed: boolean;
}

/** Width and signedness of each type (register-based types follow MODBUS Application Protocol v1.1b3 §4.2: 16-bit words). */
export const DATA_TYPES: Readonly<Record<DataType, DataTypeInfo>> = {
  bool: { count: 1, kind: 'bit', signed: false },
  int16: { count: 1, kind: 'integer', signed: true },
  uint16: { count: 1, kind: 'integer', signed: false },
  int32: { count: 2, kind: 'integer', signed: true },
  uint32: { count: 2, kind: 'integer', signed: false },
  float32: { count: 2, kind: 'float', signed: true },
  int64: { count: 4, kind: 'integer', signed: true },
  uint64: { count: 4, kind: 'integer', signed: false },
};

/**
 * How a multi-byte value is laid out over its registers, named by where the value's bytes A (most significant) …
 * D (least significant) land on the wire. For 64-bit types the same rule extends to four words.
 *
 * - `ABCD`: big-endian, high word first: the Modbus default (MODBUS Application Protocol v1.1b3 §4.2). Eastron, Chint.
 * - `CDAB`: word-swapped, low word first, bytes big-endian within each word. Common in meters (and in PLCs).
 * - `BADC`: byte-swapped within each word, high word first.
 * - `DCBA`: fully little-endian: low word first and bytes swapped within each word.
 *
 * A one-register type ignores the word part, but `BADC` and `DCBA` still swap its two bytes.
 */
export type WordOrder = 'ABCD' | 'CDAB' | 'BADC' | 'DCBA';

export const WORD_ORDERS: readonly WordOrder[] = ['ABCD', 'CDAB', 'BADC', 'DCBA'];

/** Which swaps turn the big-endian layout into each order (MODBUS Application Protocol v1.1b3 §4.2 defines only ABCD). */
export const WORD_ORDER_SWAPS: Readonly<Record<WordOrder, { readonly words: boolean; readonly bytes: boolean }>> = {
  ABCD: { words: false, bytes: false },
  CDAB: { words: true, bytes: false },
  BADC: { words: false, bytes: true },
  DCBA: { words: true, bytes: true },
};

/** Type guard for names coming from a profile (MODBUS Application Protocol v1.1b3 §4.3 data model tables). */
export function isRegisterTable(name: string): name is RegisterTable {
  return Object.hasOwn(TABLES, name);
}

/** Type guard for names coming from a profile (types are vendor conventions over §4.2 16-bit words). */
export function isDataType(name: string): name is DataType {
  return Object.hasOwn(DATA_TYPES, name);
}

/** Type guard for names coming from a profile (orders are vendor conventions over §4.2 big-endian words). */
export function isWordOrder(name: string): name is WordOrder {
  return Object.hasOwn(WORD_ORDER_SWAPS, name);
}

/** Addresses a type occupies: 1–4 registers, or 1 bit for `bool` (MODBUS Application Protocol v1.1b3 §4.2). */
export function registerCount(type: DataType): number {
  return dataTypeInfo(type).count;
}

/** Width and kind of a type (over MODBUS Application Protocol v1.1b3 §4.2 16-bit words); an unknown name is a programmer error, since profiles are checked with `isDataType` at the edge. */
export function dataTypeInfo(type: DataType): DataTypeInfo {
  if (!isDataType(type))
    throw new TypeError(`unknown Modbus data type "${String(type)}"; expected one of ${Object.keys(DATA_TYPES).join(', ')}`);
  return DATA_TYPES[type];
}

/** Metadata of a table; an unknown name is a programmer error (MODBUS Application Protocol v1.1b3 §4.3). */
export function tableInfo(table: RegisterTable): TableInfo {
  if (!isRegisterTable(table))
    throw new TypeError(`unknown Modbus table "${String(table)}"; expected one of ${REGISTER_TABLES.join(', ')}`);
  return TABLES[table];
}

/** True when a type can live in a table: `bool` only in coils/discrete inputs, the rest only in registers (§4.3). */
export function typeFitsTable(type: DataType, table: RegisterTable): boolean {
  return (dataTypeInfo(type).kind === 'bit') === (tableInfo(table).unit === 'bit');
}
