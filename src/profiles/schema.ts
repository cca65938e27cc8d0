import { ALERT_KINDS } from '../values/alert-kinds.js';
import { z } from 'zod';

/** Canonical point names: dotted lowercase words, an optional [N] index (frozen.daily.energy.active.import[1]). */
export const pointName = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*(\[\d+\])?$/,
    'a point name is dotted lowercase words, e.g. energy.active.import or frozen.daily.energy.active.import[1]',
  );

const hexDi = z
  .string()
  .regex(/^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{4})$/, 'a data identifier is 8 hex digits (2007) or 4 (1997), quoted, e.g. "00010000"');
const duration = z.union([z.string(), z.number()]);

export const lineSchema = z.strictObject({
  baudRate: z.number().int().positive().default(2400),
  parity: z.enum(['none', 'even', 'odd']).default('even'),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
});

export const dlt645PointSchema = z.strictObject({
  di: hexDi,
  /** Notation of the standard (XXXXXX.XX, NNNN, YYMMDDhhmmss, word(2), ascii(6)); default: the identifier table's. */
  format: z.string().optional(),
  signed: z.boolean().optional(),
  unit: z.string().optional(),
  /** Take one item of a block or list reply (0 = first). */
  item: z.number().int().min(0).optional(),
  /** Take one field of a record reply. */
  field: z.string().optional(),
  /** Multiply the decoded value (e.g. 0.001 to turn W into kW); default 1. */
  scale: z.number().positive().optional(),
});

/** `bool` is for coil and discrete-input points (one bit each). */
export const modbusTypes = ['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'int64', 'uint64'] as const;
export const modbusOrders = ['ABCD', 'CDAB', 'BADC', 'DCBA'] as const;
export const modbusTables = ['holding', 'input', 'coil', 'discrete'] as const;

export const modbusPointSchema = z.strictObject({
  table: z.enum(modbusTables),
  address: z.number().int().min(0).max(0xffff),
  type: z.enum(modbusTypes),
  order: z.enum(modbusOrders).default('ABCD'),
  scale: z.number().default(1),
  offset: z.number().default(0),
  unit: z.string().optional(),
});

/** A point computed from a bit of another point (relay.state from status word 3 bit 4). */
export const derivedPointSchema = z.strictObject({
  from: pointName,
  bit: z.number().int().min(0).max(63),
  unit: z.string().optional(),
});

export const groupSchema = z.strictObject({
  interval: duration,
  /** Local time of day "HH:MM" for once-a-day groups (daily frozen energy after midnight). */
  at: z
    .string()
    .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'at is a time of day HH:MM')
    .optional(),
  points: z.array(pointName).min(1),
});

export const blockSchema = z.strictObject({
  di: hexDi,
  /** The points in the block's item order; null for an item the profile does not use. */
  points: z.array(pointName.nullable()).min(2),
});

const alertKind = z.enum(ALERT_KINDS, { error: `an alert kind is one of ${ALERT_KINDS.join(', ')}` });

const conditionName = z
  .string()
  .regex(/^[a-z][a-z0-9.-]*$/, 'a condition is lowercase words with dots or dashes, e.g. relay-open, voltage-loss.a');

const operatorSource = z.strictObject({ from: z.literal('config') });

const readBackSchema = z.strictObject({
  count: pointName,
  balance: pointName,
  overdraft: pointName.optional(),
});

export const layoutFieldNames = ['purchaseCount', 'amount', 'customerNumber', 'zero'] as const;
const layoutFieldSchema = z.strictObject({
  field: z.enum(layoutFieldNames),
  /** DL/T 645 notation (NNNN, XXXXXX.XX, digits(6)) or a binary little-endian integer `uint32le`. */
  format: z.string(),
});

export const creditSchema = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('dlt645-plain'),
    unit: z.enum(['money', 'energy']),
    operator: operatorSource.optional(),
    readBack: readBackSchema,
  }),
  z.strictObject({
    method: z.literal('dlt645-esam'),
    unit: z.enum(['money', 'energy']),
    operator: operatorSource.optional(),
    readBack: readBackSchema,
  }),
  z.strictObject({
    method: z.literal('dlt645-write'),
    unit: z.enum(['money', 'energy']),
    di: hexDi,
    password: operatorSource.optional(),
    operator: operatorSource.optional(),
    layout: z.array(layoutFieldSchema).min(1),
    readBack: readBackSchema,
  }),
  z.strictObject({
    method: z.literal('modbus-write'),
    unit: z.enum(['money', 'energy']),
    registers: z
      .array(
        z.strictObject({
          field: z.enum(layoutFieldNames),
          address: z.number().int().min(0).max(0xffff),
          type: z.enum(modbusTypes),
          order: z.enum(modbusOrders).default('ABCD'),
          scale: z.number().default(1),
        }),
      )
      .min(1),
    readBack: readBackSchema,
  }),
  z.strictObject({
    /**
     * The meter's own free-energy registers (剩余免费电量 / 补贴电量), written by allowances instead of a purchase. Each
     * register is written with an absolute value (its value before + its share), so a repeated write adds nothing;
     * the gateway commits the values before each write and decides by them
     * (docs/allowances.md § Exactly once without a purchase counter).
     */
    method: z.literal('modbus-subsidy'),
    unit: z.literal('energy', { error: 'a free-energy register holds kWh: unit is energy' }),
    /** One register per circuit on some meters (air conditioning, lighting): the point and its share of an allowance. */
    registers: z
      .array(z.strictObject({ point: pointName, share: z.number().int().min(1).max(100).default(1) }))
      .min(1)
      .max(8),
    /** The meter's import energy (kWh), read with the registers: the most consumption could have taken from them. */
    consumed: pointName,
  }),
]);

export const relaySchema = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('dlt645-remote-control'),
    /** `direct` sends 1C (State Grid direct close), `allowed` sends 1B (the customer presses the button). */
    close: z.enum(['direct', 'allowed']).default('direct'),
    password: operatorSource.optional(),
    operator: operatorSource.optional(),
    /** Where the meter reports its relay: actual state bit and command bit of a status word. */
    state: z.strictObject({
      point: pointName,
      actualBit: z.number().int().min(0).max(15),
      commandBit: z.number().int().min(0).max(15).optional(),
    }),
  }),
  z.strictObject({
    method: z.literal('modbus-coil'),
    address: z.number().int().min(0).max(0xffff),
    /** Coil value that opens (trips) the relay. */
    openValue: z.boolean().default(true),
  }),
]);

/**
 * How an account is opened on the meter from the station (docs/provisioning.md § Opening an account on a remote meter):
 * `dlt645-customer-number` writes the customer number to the point named (0x14, the point's DI) and reads it back;
 * `dlt645-esam-opening` runs ESAM account opening (0x03 070101FF) with the station's encryption machine.
 */
export const accountSchema = z.discriminatedUnion('method', [
  z.strictObject({
    method: z.literal('dlt645-customer-number'),
    point: pointName,
    password: operatorSource.optional(),
    operator: operatorSource.optional(),
  }),
  z.strictObject({ method: z.literal('dlt645-esam-opening') }),
]);

export const profileSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'the id is lowercase letters, digits and dashes, and equals the file name'),
  name: z.string().min(1),
  protocol: z.enum(['dlt645-2007', 'dlt645-1997', 'modbus-rtu', 'modbus-tcp']),
  line: lineSchema.optional(),
  /** Modbus: reads may bridge up to this many unused registers to save requests. */
  maxGap: z.number().int().min(0).max(100).optional(),
  /** Each point is checked by its own schema, chosen by its keys (di, table or from), for precise errors. */
  points: z.record(pointName, z.record(z.string(), z.unknown())),
  groups: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'a group name is lowercase, e.g. energy, instant, status'), groupSchema),
  blocks: z.array(blockSchema).optional(),
  status: z.record(pointName, z.record(z.string().regex(/^\d{1,2}$/, 'status bits are numbered 0..15'), conditionName)).optional(),
  /**
   * One credit method, or a list: a purchase method for top-ups and a free-energy method (modbus-subsidy) that
   * allowances use instead. Each method is checked by creditSchema where it stands, for precise errors.
   */
  credit: z.union([z.array(z.record(z.string(), z.unknown())).min(1), z.record(z.string(), z.unknown())]).optional(),
  relay: relaySchema.optional(),
  /** Periodic verification (周检/轮换): the years a meter of this model may serve before it is verified or rotated (default 8). */
  verification: z.strictObject({ periodYears: z.number().int('is a whole number of years').min(1).max(30) }).optional(),
  account: accountSchema.optional(),
  /**
   * What the meter itself reports as a fault, for conditions and counters the built-in names do not cover: a status
   * condition (`status:`) or an event counter point mapped to an alert kind, e.g. `counters: { events.kettle.count: malignant-load }`.
   */
  alerts: z
    .strictObject({
      conditions: z.record(conditionName, alertKind).optional(),
      counters: z.record(pointName, alertKind).optional(),
    })
    .optional(),
});

export type RawProfile = z.infer<typeof profileSchema>;
