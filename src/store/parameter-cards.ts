import type { Connection, Tx } from './connection.js';

/** A parameter card (参数卡) as written and read back at the counter, with who wrote it. */
export interface ParameterCardRecord {
  readonly id: number;
  readonly at: number;
  readonly operator: string;
  /** The one meter the card is for; null for every meter of the system. */
  readonly meterAddress: string | null;
  readonly cardSerial: string | null;
  readonly layout: string;
  readonly encoder: string;
  /** What alarm1…hoarding count: hundredths of a kWh or fen. */
  readonly unit: '0.01kWh' | 'fen';
  /** 0.0001 yuan per kWh. */
  readonly price: number;
  readonly alarm1: number;
  readonly alarm2: number;
  readonly overdraft: number;
  readonly hoarding: number;
}

interface Row {
  id: number;
  at: number;
  operator: string;
  meter_address: string | null;
  card_serial: string | null;
  layout: string;
  encoder: string;
  unit: '0.01kWh' | 'fen';
  price: number;
  alarm1: number;
  alarm2: number;
  overdraft: number;
  hoarding: number;
}

/** Records a parameter card once it has been written and read back. */
export function recordParameterCard(tx: Tx, card: Omit<ParameterCardRecord, 'id' | 'at'>): ParameterCardRecord {
  const c = tx.connection;
  const at = c.clock.now();
  const id = Number(
    c
      .statement(
        `INSERT INTO parameter_cards (at, operator, meter_address, card_serial, layout, encoder, unit, price, alarm1, alarm2, overdraft, hoarding)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        at,
        card.operator,
        card.meterAddress,
        card.cardSerial,
        card.layout,
        card.encoder,
        card.unit,
        card.price,
        card.alarm1,
        card.alarm2,
        card.overdraft,
        card.hoarding,
      ).lastInsertRowid,
  );
  return { id, at, ...card };
}

/** Reads of the parameter cards written (newest last). */
export class ParameterCards {
  constructor(private readonly connection: Connection) {}

  list(q: { meterAddress?: string } = {}): ParameterCardRecord[] {
    return this.connection
      .statement<[string | null, string | null], Row>('SELECT * FROM parameter_cards WHERE (? IS NULL OR meter_address = ?) ORDER BY id')
      .all(q.meterAddress ?? null, q.meterAddress ?? null)
      .map((r) => ({
        id: r.id,
        at: r.at,
        operator: r.operator,
        meterAddress: r.meter_address,
        cardSerial: r.card_serial,
        layout: r.layout,
        encoder: r.encoder,
        unit: r.unit,
        price: r.price,
        alarm1: r.alarm1,
        alarm2: r.alarm2,
        overdraft: r.overdraft,
        hoarding: r.hoarding,
      }));
  }
}
