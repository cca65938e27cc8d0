import type { Connection, Tx } from './connection.js';
import { StoreError } from './errors.js';

export type CustomerState = 'active' | 'moved-out' | 'closed';
export const CUSTOMER_STATES: readonly CustomerState[] = ['active', 'moved-out', 'closed'];

/** A customer of the station and the meter and card they are bound to (客户档案). */
export interface Customer {
  readonly customerNo: string;
  readonly name: string;
  readonly room: string;
  /** The meter's DL/T 645 address (12 digits), null while unbound. */
  readonly meterAddress: string | null;
  readonly cardSerial: string | null;
  readonly state: CustomerState;
  readonly tags: readonly string[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** The fields a change may set. */
export type CustomerFields = Pick<Customer, 'name' | 'room' | 'meterAddress' | 'cardSerial' | 'state' | 'tags'>;

/** One line of a customer's history: who changed what, when (each field as [before, after]; before is null on creation). */
export interface CustomerChange {
  readonly customerNo: string;
  readonly at: number;
  readonly operator: string;
  readonly action: string;
  readonly changes: Readonly<Record<string, readonly [unknown, unknown]>>;
}

/** A card serial reported lost or broken, and the card that replaced it. */
export interface LostCard {
  readonly cardSerial: string;
  readonly customerNo: string | null;
  readonly meterAddress: string;
  readonly reason: 'lost' | 'broken';
  readonly replacedBy: string | null;
  readonly operator: string;
  readonly at: number;
}

interface CustomerRow {
  customer_no: string;
  name: string;
  room: string;
  meter_address: string | null;
  card_serial: string | null;
  state: CustomerState;
  tags_json: string;
  created_at: number;
  updated_at: number;
}

const FIELD_COLUMNS: Record<keyof CustomerFields, string> = {
  name: 'name',
  room: 'room',
  meterAddress: 'meter_address',
  cardSerial: 'card_serial',
  state: 'state',
  tags: 'tags_json',
};

/**
 * Creates a customer, or changes the fields given of an existing one, and writes what changed to the history in the
 * same transaction. Returns the customer and the changes (empty when nothing differed: nothing is written then).
 * STORE_CONFLICT when the meter is already bound to another active customer.
 */
export function saveCustomer(
  tx: Tx,
  customerNo: string,
  fields: Partial<CustomerFields>,
  who: { operator: string; action: string },
): { customer: Customer; changes: Record<string, [unknown, unknown]> } {
  const c = tx.connection;
  const now = c.clock.now();
  const current = customerByNo(c, customerNo);
  const changes: Record<string, [unknown, unknown]> = {};
  if (!current) {
    const created: CustomerFields = {
      name: fields.name ?? '',
      room: fields.room ?? '',
      meterAddress: fields.meterAddress ?? null,
      cardSerial: fields.cardSerial ?? null,
      state: fields.state ?? 'active',
      tags: fields.tags ?? [],
    };
    checkMeterFree(c, customerNo, created);
    c.statement(
      `INSERT INTO customers (customer_no, name, room, meter_address, card_serial, state, tags_json, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      customerNo,
      created.name,
      created.room,
      created.meterAddress,
      created.cardSerial,
      created.state,
      JSON.stringify(created.tags),
      now,
      now,
    );
    for (const [k, v] of Object.entries(created)) if (v !== null && !(Array.isArray(v) && v.length === 0)) changes[k] = [null, v];
  } else {
    const next = { ...current, ...fields };
    for (const key of Object.keys(FIELD_COLUMNS) as (keyof CustomerFields)[]) {
      if (fields[key] === undefined) continue;
      if (JSON.stringify(current[key]) !== JSON.stringify(fields[key])) changes[key] = [current[key], fields[key]];
    }
    if (Object.keys(changes).length === 0) return { customer: current, changes };
    checkMeterFree(c, customerNo, next);
    const keys = Object.keys(changes) as (keyof CustomerFields)[];
    c.statement(`UPDATE customers SET ${keys.map((k) => `${FIELD_COLUMNS[k]} = ?`).join(', ')}, updated_at = ? WHERE customer_no = ?`).run(
      ...keys.map((k) => (k === 'tags' ? JSON.stringify(next.tags) : next[k])),
      now,
      customerNo,
    );
  }
  c.statement('INSERT INTO customer_history (customer_no, at, operator, action, changes_json) VALUES (?, ?, ?, ?, ?)').run(
    customerNo,
    now,
    who.operator,
    who.action,
    JSON.stringify(changes),
  );
  return { customer: customerByNo(c, customerNo)!, changes };
}

function checkMeterFree(c: Connection, customerNo: string, f: CustomerFields): void {
  if (f.state !== 'active' || f.meterAddress === null) return;
  const other = c
    .statement<[string, string], { customer_no: string }>(
      "SELECT customer_no FROM customers WHERE meter_address = ? AND state = 'active' AND customer_no <> ?",
    )
    .get(f.meterAddress, customerNo);
  if (other)
    throw new StoreError(
      'STORE_CONFLICT',
      `meter ${f.meterAddress} is bound to active customer ${other.customer_no}; move that customer out first (meterd archive move-out ${other.customer_no})`,
    );
}

/**
 * A history line for something done to a customer that changes none of their fields (a card rewritten from the
 * books, a parameter card, a meter's account opened): what was done, as `[before, after]` pairs the caller names.
 */
export function noteCustomer(
  tx: Tx,
  customerNo: string,
  who: { operator: string; action: string },
  changes: Readonly<Record<string, readonly [unknown, unknown]>>,
): void {
  const c = tx.connection;
  if (!customerByNo(c, customerNo)) throw new StoreError('STORE_CONFLICT', `customer ${customerNo} is not in the archive`);
  c.statement('INSERT INTO customer_history (customer_no, at, operator, action, changes_json) VALUES (?, ?, ?, ?, ?)').run(
    customerNo,
    c.clock.now(),
    who.operator,
    who.action,
    JSON.stringify(changes),
  );
}

/** Records a card serial as lost or broken (idempotent: the first report stands). */
export function recordLostCard(tx: Tx, card: Omit<LostCard, 'at'>): LostCard {
  const c = tx.connection;
  c.statement(
    `INSERT INTO lost_cards (card_serial, customer_no, meter_address, reason, replaced_by, operator, at)
     VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card_serial) DO NOTHING`,
  ).run(card.cardSerial, card.customerNo, card.meterAddress, card.reason, card.replacedBy, card.operator, c.clock.now());
  return lostCardBySerial(c, card.cardSerial)!;
}

/** Reads of the customer archive (writes go through saveCustomer / recordLostCard inside a transaction). */
export class CustomerArchive {
  constructor(private readonly connection: Connection) {}

  get(customerNo: string): Customer | null {
    return customerByNo(this.connection, customerNo);
  }

  /** The active customer bound to a meter address, if any. */
  byMeter(meterAddress: string): Customer | null {
    const row = this.connection
      .statement<[string], CustomerRow>("SELECT * FROM customers WHERE meter_address = ? AND state = 'active'")
      .get(meterAddress);
    return row ? toCustomer(row) : null;
  }

  /** The customer whose card in use has this serial (any state), if any. */
  byCardSerial(cardSerial: string): Customer | null {
    const row = this.connection
      .statement<[string], CustomerRow>('SELECT * FROM customers WHERE card_serial = ? ORDER BY updated_at DESC')
      .get(cardSerial);
    return row ? toCustomer(row) : null;
  }

  list(q: { state?: CustomerState } = {}): Customer[] {
    return this.connection
      .statement<[string | null, string | null], CustomerRow>('SELECT * FROM customers WHERE (? IS NULL OR state = ?) ORDER BY customer_no')
      .all(q.state ?? null, q.state ?? null)
      .map(toCustomer);
  }

  history(customerNo: string): CustomerChange[] {
    return this.connection
      .statement<[string], { customer_no: string; at: number; operator: string; action: string; changes_json: string }>(
        'SELECT customer_no, at, operator, action, changes_json FROM customer_history WHERE customer_no = ? ORDER BY id',
      )
      .all(customerNo)
      .map((r) => ({
        customerNo: r.customer_no,
        at: r.at,
        operator: r.operator,
        action: r.action,
        changes: JSON.parse(r.changes_json) as Record<string, [unknown, unknown]>,
      }));
  }

  /** The highest numeric serial recorded lost (0 when none): new serials never reuse one. */
  maxLostSerial(): number {
    const rows = this.connection.statement<[], { card_serial: string }>('SELECT card_serial FROM lost_cards').all();
    return rows.reduce((max, r) => (/^\d+$/.test(r.card_serial) ? Math.max(max, Number(r.card_serial)) : max), 0);
  }

  lostCard(cardSerial: string): LostCard | null {
    return lostCardBySerial(this.connection, cardSerial);
  }
}

function customerByNo(c: Connection, customerNo: string): Customer | null {
  const row = c.statement<[string], CustomerRow>('SELECT * FROM customers WHERE customer_no = ?').get(customerNo);
  return row ? toCustomer(row) : null;
}

function lostCardBySerial(c: Connection, serial: string): LostCard | null {
  const r = c
    .statement<
      [string],
      {
        card_serial: string;
        customer_no: string | null;
        meter_address: string;
        reason: 'lost' | 'broken';
        replaced_by: string | null;
        operator: string;
        at: number;
      }
    >('SELECT * FROM lost_cards WHERE card_serial = ?')
    .get(serial);
  return r
    ? {
        cardSerial: r.card_serial,
        customerNo: r.customer_no,
        meterAddress: r.meter_address,
        reason: r.reason,
        replacedBy: r.replaced_by,
        operator: r.operator,
        at: r.at,
      }
    : null;
}

function toCustomer(r: CustomerRow): Customer {
  return {
    customerNo: r.customer_no,
    name: r.name,
    room: r.room,
    meterAddress: r.meter_address,
    cardSerial: r.card_serial,
    state: r.state,
    tags: JSON.parse(r.tags_json) as string[],
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
