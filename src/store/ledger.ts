import type { Connection, Tx } from './connection.js';
import { StoreError } from './errors.js';

/**
 * `opening`: the count and balance a meter had when meterd took it over (docs/provisioning.md); never money taken.
 * `transfer`: the credit of a replaced meter loaded onto its successor (docs/lifecycle.md); never money taken.
 */
export type LedgerChannel = 'remote' | 'operator' | 'card' | 'allowance' | 'opening' | 'transfer';
export type LedgerKind = 'load' | 'refund' | 'opening';
export type CreditUnit = 'money' | 'energy';
export type LedgerState = 'received' | 'writing' | 'verifying' | 'applied' | 'rejected' | 'failed';

export const FINAL_STATES: readonly LedgerState[] = ['applied', 'rejected', 'failed'];

/** What the meter said before and after a load, in ledger units (fen or 0.01 kWh). */
export interface MeterWallet {
  readonly count: number;
  readonly balance: number;
  readonly overdraft: number;
}

export interface LedgerEntry {
  readonly id: number;
  readonly requestId: string;
  readonly channel: LedgerChannel;
  readonly kind: LedgerKind;
  readonly meterId: string;
  readonly unit: CreditUnit;
  /** Fen for money, 0.01 kWh for energy. */
  readonly amount: number;
  readonly state: LedgerState;
  readonly purchaseCount: number | null;
  readonly attempts: number;
  readonly before: MeterWallet | null;
  readonly after: MeterWallet | null;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly operator: string | null;
  readonly customerNo: string | null;
  readonly refersTo: number | null;
  readonly request: Readonly<Record<string, unknown>>;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly finalAt: number | null;
}

export interface NewLedgerEntry {
  readonly requestId: string;
  readonly channel: LedgerChannel;
  readonly kind?: LedgerKind;
  readonly meterId: string;
  readonly unit: CreditUnit;
  readonly amount: number;
  readonly operator?: string;
  readonly customerNo?: string;
  readonly refersTo?: number;
  readonly request: Readonly<Record<string, unknown>>;
}

export interface LedgerTransition {
  readonly purchaseCount?: number;
  readonly attempts?: number;
  readonly before?: MeterWallet;
  readonly after?: MeterWallet;
  readonly error?: { code: string; message: string } | null;
  /** Free text for the event history (what the meter answered, why). */
  readonly detail?: string;
  /** Free-energy loads: the register values committed before a write, kept in the entry's request as `subsidy`. */
  readonly subsidy?: SubsidyState;
}

/**
 * What a free-energy load (credit method modbus-subsidy) is decided against: for each register, its value read before
 * its write, the absolute value written and the meter's import energy at that read, in ledger units (0.01 kWh).
 */
export interface SubsidyState {
  readonly registers: readonly SubsidyRegisterState[];
}

export interface SubsidyRegisterState {
  readonly name: string;
  readonly before: number;
  readonly target: number;
  readonly consumedBefore: number;
  /** The value read back last. */
  readonly after?: number;
}

/** The only moves a load may make; anything else is a bug, refused loudly rather than recorded. */
const ALLOWED: Readonly<Record<LedgerState, readonly LedgerState[]>> = {
  received: ['writing', 'verifying', 'applied', 'rejected', 'failed'],
  writing: ['writing', 'verifying', 'applied', 'rejected', 'failed'],
  verifying: ['writing', 'verifying', 'applied', 'rejected', 'failed'],
  applied: [],
  rejected: [],
  failed: [],
};

interface LedgerRow {
  id: number;
  request_id: string;
  channel: LedgerChannel;
  kind: LedgerKind;
  meter_id: string;
  unit: CreditUnit;
  amount: number;
  state: LedgerState;
  purchase_count: number | null;
  attempts: number;
  before_count: number | null;
  before_balance: number | null;
  before_overdraft: number | null;
  after_count: number | null;
  after_balance: number | null;
  after_overdraft: number | null;
  error_code: string | null;
  error_message: string | null;
  operator: string | null;
  customer_no: string | null;
  refers_to: number | null;
  request_json: string;
  created_at: number;
  updated_at: number;
  final_at: number | null;
}

/**
 * Records a new load keyed by its request id. A request id seen before returns the first entry untouched
 * (`created: false`): the same request never loads twice.
 */
export function openLedgerEntry(tx: Tx, input: NewLedgerEntry): { entry: LedgerEntry; created: boolean } {
  const c = tx.connection;
  if (!Number.isSafeInteger(input.amount) || input.amount <= 0) {
    throw new StoreError('STORE_INVALID_VALUE', `ledger amount must be a whole positive number of fen or 0.01 kWh, got ${input.amount}`);
  }
  const existing = byRequestId(c, input.requestId);
  if (existing) return { entry: existing, created: false };
  const now = c.clock.now();
  const id = Number(
    c
      .statement(
        `INSERT INTO ledger (request_id, channel, kind, meter_id, unit, amount, state, operator, customer_no, refers_to, request_json, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'received', ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        input.requestId,
        input.channel,
        input.kind ?? 'load',
        input.meterId,
        input.unit,
        input.amount,
        input.operator ?? null,
        input.customerNo ?? null,
        input.refersTo ?? null,
        JSON.stringify(input.request),
        now,
        now,
      ).lastInsertRowid,
  );
  c.statement('INSERT INTO ledger_events (ledger_id, state, at, detail) VALUES (?, ?, ?, ?)').run(id, 'received', now, null);
  return { entry: byId(c, id)!, created: true };
}

export interface NewOpeningEntry {
  /** Names the meter as its other entries do: the card meter number (address) when it has one, else the config id. */
  readonly meterId: string;
  readonly unit: CreditUnit;
  /** What the meter showed when it was taken over. */
  readonly wallet: MeterWallet;
  /** The last purchase's amount when it is known (a customer card shows it), else 0. */
  readonly lastAmount: number;
  readonly operator: string;
  readonly customerNo?: string;
  /** Where the figures came from: `remote-read` or `card`. */
  readonly source: string;
}

/**
 * Records the starting point of a meter's books (channel and kind `opening`): applied at once, keyed by meter and
 * count, so recording the same opening again returns the first one (`created: false`).
 */
export function recordOpening(tx: Tx, input: NewOpeningEntry): { entry: LedgerEntry; created: boolean } {
  const c = tx.connection;
  if (!Number.isSafeInteger(input.lastAmount) || input.lastAmount < 0) {
    throw new StoreError('STORE_INVALID_VALUE', `an opening's last purchase must be a whole number ≥ 0, got ${input.lastAmount}`);
  }
  if (!Number.isSafeInteger(input.wallet.count) || input.wallet.count < 0) {
    throw new StoreError('STORE_INVALID_VALUE', `an opening's purchase count must be a whole number ≥ 0, got ${input.wallet.count}`);
  }
  const requestId = `opening-${input.meterId}-${input.wallet.count}`;
  const existing = byRequestId(c, requestId);
  if (existing) return { entry: existing, created: false };
  const now = c.clock.now();
  const w = input.wallet;
  const id = Number(
    c
      .statement(
        `INSERT INTO ledger (request_id, channel, kind, meter_id, unit, amount, state, purchase_count, before_count, before_balance,
           before_overdraft, after_count, after_balance, after_overdraft, operator, customer_no, request_json, created_at, updated_at, final_at)
         VALUES (?, 'opening', 'opening', ?, ?, ?, 'applied', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        requestId,
        input.meterId,
        input.unit,
        input.lastAmount,
        w.count,
        w.count,
        w.balance,
        w.overdraft,
        w.count,
        w.balance,
        w.overdraft,
        input.operator,
        input.customerNo ?? null,
        JSON.stringify({ source: input.source }),
        now,
        now,
        now,
      ).lastInsertRowid,
  );
  c.statement('INSERT INTO ledger_events (ledger_id, state, at, detail) VALUES (?, ?, ?, ?)').run(
    id,
    'applied',
    now,
    `opening from ${input.source}: purchase count ${w.count}, balance ${w.balance}, by ${input.operator}`,
  );
  return { entry: byId(c, id)!, created: true };
}

/** Moves an entry to its next state with what was learned on the way; refuses moves out of a final state. */
export function transitionLedger(tx: Tx, id: number, state: LedgerState, t: LedgerTransition = {}): LedgerEntry {
  const c = tx.connection;
  const current = byId(c, id);
  if (!current) throw new StoreError('STORE_INVALID_VALUE', `no ledger entry ${id}`);
  if (!ALLOWED[current.state].includes(state)) {
    throw new StoreError('STORE_INVALID_VALUE', `ledger entry ${id} (${current.requestId}) cannot go from ${current.state} to ${state}`);
  }
  const now = c.clock.now();
  const b = t.before ?? current.before;
  const a = t.after ?? current.after;
  const err = t.error === undefined ? current.error : t.error;
  c.statement(
    `UPDATE ledger SET state = ?, purchase_count = ?, attempts = ?, before_count = ?, before_balance = ?, before_overdraft = ?,
       after_count = ?, after_balance = ?, after_overdraft = ?, error_code = ?, error_message = ?, updated_at = ?, final_at = ?
     WHERE id = ?`,
  ).run(
    state,
    t.purchaseCount ?? current.purchaseCount,
    t.attempts ?? current.attempts,
    b?.count ?? null,
    b?.balance ?? null,
    b?.overdraft ?? null,
    a?.count ?? null,
    a?.balance ?? null,
    a?.overdraft ?? null,
    err?.code ?? null,
    err?.message ?? null,
    now,
    FINAL_STATES.includes(state) ? now : null,
    id,
  );
  if (t.subsidy !== undefined)
    c.statement(`UPDATE ledger SET request_json = json_set(request_json, '$.subsidy', json(?)) WHERE id = ?`).run(
      JSON.stringify(t.subsidy),
      id,
    );
  c.statement('INSERT INTO ledger_events (ledger_id, state, at, detail) VALUES (?, ?, ?, ?)').run(id, state, now, t.detail ?? null);
  return byId(c, id)!;
}

export interface LedgerQuery {
  readonly meterId?: string;
  /** Epoch ms, inclusive. */
  readonly since?: number;
  /** Epoch ms, exclusive. */
  readonly until?: number;
  readonly limit?: number;
}

/** Reads of the ledger (writes go through openLedgerEntry / transitionLedger inside a transaction). */
export class Ledger {
  constructor(private readonly connection: Connection) {}

  get(requestId: string): LedgerEntry | null {
    return byRequestId(this.connection, requestId);
  }

  byId(id: number): LedgerEntry | null {
    return byId(this.connection, id);
  }

  /** Entries not final yet: what a restart must settle by reading the meters. */
  open(): LedgerEntry[] {
    return this.connection
      .statement<[], LedgerRow>("SELECT * FROM ledger WHERE state IN ('received', 'writing', 'verifying') ORDER BY id")
      .all()
      .map(toEntry);
  }

  list(q: LedgerQuery = {}): LedgerEntry[] {
    return this.connection
      .statement<[string | null, string | null, number, number, number], LedgerRow>(
        `SELECT * FROM ledger WHERE (? IS NULL OR meter_id = ?) AND created_at >= ? AND created_at < ? ORDER BY id LIMIT ?`,
      )
      .all(q.meterId ?? null, q.meterId ?? null, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit ?? 100_000)
      .map(toEntry);
  }

  /** The latest applied opening entry of each meter key made before `until`: where each meter's books start. */
  openings(until = Number.MAX_SAFE_INTEGER): Map<string, { count: number; at: number }> {
    const rows = this.connection
      .statement<[number], { meter_id: string; after_count: number; created_at: number }>(
        "SELECT meter_id, after_count, created_at FROM ledger WHERE kind = 'opening' AND state = 'applied' AND created_at < ? ORDER BY created_at, id",
      )
      .all(until);
    return new Map(rows.map((r) => [r.meter_id, { count: r.after_count, at: r.created_at }]));
  }

  /** The state history of one entry, oldest first. */
  events(id: number): { state: LedgerState; at: number; detail: string | null }[] {
    return this.connection
      .statement<[number], { state: LedgerState; at: number; detail: string | null }>(
        'SELECT state, at, detail FROM ledger_events WHERE ledger_id = ? ORDER BY id',
      )
      .all(id);
  }
}

function byRequestId(c: Connection, requestId: string): LedgerEntry | null {
  const row = c.statement<[string], LedgerRow>('SELECT * FROM ledger WHERE request_id = ?').get(requestId);
  return row ? toEntry(row) : null;
}

function byId(c: Connection, id: number): LedgerEntry | null {
  const row = c.statement<[number], LedgerRow>('SELECT * FROM ledger WHERE id = ?').get(id);
  return row ? toEntry(row) : null;
}

function wallet(count: number | null, balance: number | null, overdraft: number | null): MeterWallet | null {
  return count === null || balance === null ? null : { count, balance, overdraft: overdraft ?? 0 };
}

function toEntry(r: LedgerRow): LedgerEntry {
  return {
    id: r.id,
    requestId: r.request_id,
    channel: r.channel,
    kind: r.kind,
    meterId: r.meter_id,
    unit: r.unit,
    amount: r.amount,
    state: r.state,
    purchaseCount: r.purchase_count,
    attempts: r.attempts,
    before: wallet(r.before_count, r.before_balance, r.before_overdraft),
    after: wallet(r.after_count, r.after_balance, r.after_overdraft),
    error: r.error_code === null ? null : { code: r.error_code, message: r.error_message ?? '' },
    operator: r.operator,
    customerNo: r.customer_no,
    refersTo: r.refers_to,
    request: JSON.parse(r.request_json) as Record<string, unknown>,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finalAt: r.final_at,
  };
}

/** True for a load that went to the meter's free-energy registers: it does not move the purchase counter. */
export function isSubsidyLoad(e: Pick<LedgerEntry, 'request'>): boolean {
  return e.request.wallet === 'subsidy';
}

/** The committed register values of a free-energy load, or null before its first write. */
export function subsidyStateOf(e: Pick<LedgerEntry, 'request'>): SubsidyState | null {
  const s = e.request.subsidy as SubsidyState | undefined;
  return s && Array.isArray(s.registers) && s.registers.length > 0 ? s : null;
}
