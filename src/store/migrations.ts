import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { StoreError } from './errors.js';
import type { StoreClock } from './types.js';

/**
 * One step of the schema. Applied once, in its own transaction, and recorded in `schema_migrations`.
 * A migration that has shipped is never edited: change the schema by appending the next one.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly up: string | ((db: Database.Database) => void);
}

const V1_READINGS_OUTBOX = `
CREATE TABLE readings (
  id          INTEGER PRIMARY KEY,
  meter_id    TEXT    NOT NULL,
  taken_at    INTEGER NOT NULL,
  values_json TEXT    NOT NULL
) STRICT;
CREATE INDEX readings_by_meter ON readings (meter_id, taken_at);
-- Retention deletes by age across all meters.
CREATE INDEX readings_by_time ON readings (taken_at);

-- AUTOINCREMENT: an id is never reused after the newest row is acknowledged, so id order is enqueue order for ever.
CREATE TABLE outbox (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  topic      TEXT    NOT NULL,
  class      TEXT    NOT NULL CHECK (class IN ('telemetry', 'state', 'credit', 'alert', 'report', 'reply')),
  qos        INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
  retain     INTEGER NOT NULL CHECK (retain IN (0, 1)),
  payload    TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  bytes      INTEGER NOT NULL
) STRICT;
-- The disk cap drops the oldest telemetry without walking past other classes.
CREATE INDEX outbox_by_class ON outbox (class, id);
-- A new retained state replaces the undelivered one for its topic.
CREATE INDEX outbox_state_by_topic ON outbox (topic) WHERE class = 'state';

CREATE TABLE sequences (
  stream TEXT    PRIMARY KEY,
  value  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE meter_state (
  meter_id             TEXT    PRIMARY KEY,
  online               INTEGER NOT NULL CHECK (online IN (0, 1)),
  consecutive_failures INTEGER NOT NULL CHECK (consecutive_failures >= 0),
  last_good_read_at    INTEGER,
  last_attempt_at      INTEGER,
  relay_state          TEXT    CHECK (relay_state IN ('closed', 'open', 'unknown')),
  balance_json         TEXT,
  updated_at           INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`;

const V2_LEDGER = `
-- The credit ledger: one row per load (remote top-up, card sale, allowance) or refund, keyed by the station's
-- request id so the same request can never load twice. Money in fen, energy in 0.01 kWh: never floats.
CREATE TABLE ledger (
  id               INTEGER PRIMARY KEY,
  request_id       TEXT    NOT NULL UNIQUE,
  channel          TEXT    NOT NULL CHECK (channel IN ('remote', 'operator', 'card', 'allowance')),
  kind             TEXT    NOT NULL CHECK (kind IN ('load', 'refund')),
  meter_id         TEXT    NOT NULL,
  unit             TEXT    NOT NULL CHECK (unit IN ('money', 'energy')),
  amount           INTEGER NOT NULL CHECK (amount > 0),
  state            TEXT    NOT NULL CHECK (state IN ('received', 'writing', 'verifying', 'applied', 'rejected', 'failed')),
  -- The count sent to the meter (its own + 1), committed before the frame leaves.
  purchase_count   INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0,
  before_count     INTEGER,
  before_balance   INTEGER,
  before_overdraft INTEGER,
  after_count      INTEGER,
  after_balance    INTEGER,
  after_overdraft  INTEGER,
  error_code       TEXT,
  error_message    TEXT,
  operator         TEXT,
  customer_no      TEXT,
  refers_to        INTEGER REFERENCES ledger (id),
  request_json     TEXT    NOT NULL,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  final_at         INTEGER
) STRICT;
CREATE INDEX ledger_by_meter ON ledger (meter_id, created_at);
CREATE INDEX ledger_by_time ON ledger (created_at);
CREATE INDEX ledger_open ON ledger (state) WHERE state IN ('received', 'writing', 'verifying');

-- Every state change, so a crash mid-load can be explained afterwards.
CREATE TABLE ledger_events (
  id        INTEGER PRIMARY KEY,
  ledger_id INTEGER NOT NULL REFERENCES ledger (id),
  state     TEXT    NOT NULL,
  at        INTEGER NOT NULL,
  detail    TEXT
) STRICT;
CREATE INDEX ledger_events_by_entry ON ledger_events (ledger_id, id);
`;

const V3_COMMANDS = `
-- Replies to station commands go to the MQTT 5 response topic the request named (an absolute topic, possibly outside
-- the gateway's tree), echoing its correlation data. Null for every other message, which goes to its relative topic.
ALTER TABLE outbox ADD COLUMN response_topic TEXT;
ALTER TABLE outbox ADD COLUMN correlation_data BLOB;

-- One row per station command that passed validation, keyed by the station's request id: a request id seen again gets
-- this row's status and result, and its handler never runs a second time, across restarts.
CREATE TABLE commands (
  request_id       TEXT    PRIMARY KEY,
  command          TEXT    NOT NULL,
  meter_id         TEXT,
  status           TEXT    NOT NULL CHECK (status IN ('accepted', 'done', 'rejected', 'failed')),
  -- The request as validated, canonical JSON without signature and ts: what a duplicate must equal.
  request_json     TEXT    NOT NULL,
  result_json      TEXT,
  error_code       TEXT,
  error_message    TEXT,
  -- Where the first request asked for its replies (MQTT 5); null means <prefix>/<gatewayId>/cmd/<command>/result.
  response_topic   TEXT,
  correlation_data BLOB,
  received_at      INTEGER NOT NULL,
  finished_at      INTEGER,
  CHECK ((status = 'accepted') = (finished_at IS NULL))
) STRICT;
CREATE INDEX commands_by_time ON commands (received_at);
-- What a restart resumes.
CREATE INDEX commands_open ON commands (received_at) WHERE status = 'accepted';
`;

const V4_BOOKS = `
-- Reports the books have handed to the outbox, one row per period: a day (or month) is published exactly once, even
-- when the daemon restarts around midnight or catches up on days it was down.
CREATE TABLE published_reports (
  kind         TEXT    NOT NULL CHECK (kind IN ('daily', 'monthly')),
  period       TEXT    NOT NULL,
  outbox_id    INTEGER NOT NULL,
  published_at INTEGER NOT NULL,
  PRIMARY KEY (kind, period)
) STRICT, WITHOUT ROWID;
`;

const V5_DEAD_LETTERS = `
-- How often the broker refused a message (an MQTT 5 PUBACK reason code of 0x80 or more, or the connection closed while
-- the message was alone in flight), and why the last time. Reset never: a row that reaches mqtt.deadLetterAfter moves.
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error TEXT;

-- Messages the broker refused for ever, moved out of the outbox so they hold nothing up. Kept as they were queued, so
-- an operator can read why and queue one again once the broker's ACL or size limit is fixed.
CREATE TABLE dead_letters (
  id               INTEGER PRIMARY KEY,
  outbox_id        INTEGER NOT NULL,
  topic            TEXT    NOT NULL,
  class            TEXT    NOT NULL,
  qos              INTEGER NOT NULL,
  retain           INTEGER NOT NULL,
  payload          TEXT    NOT NULL,
  created_at       INTEGER NOT NULL,
  bytes            INTEGER NOT NULL,
  response_topic   TEXT,
  correlation_data BLOB,
  attempts         INTEGER NOT NULL,
  last_error       TEXT    NOT NULL,
  dead_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX dead_letters_by_time ON dead_letters (dead_at);
`;

/**
 * Commands that came through the local control socket (the `meterd` CLI beside the daemon): their replies go back on
 * the socket, not to the broker, also when a restart resumes them; and who sent them (the OS user or `--operator`).
 */
const V6_COMMAND_ORIGIN = `
ALTER TABLE commands ADD COLUMN origin TEXT NOT NULL DEFAULT 'mqtt' CHECK (origin IN ('mqtt', 'socket'));
ALTER TABLE commands ADD COLUMN operator TEXT;
`;

/**
 * Line loss per transformer district (docs/lineloss.md): the meters' daily freezes as read (a failed read is no row,
 * never a zero), each district's daily and monthly figures with their revision (the station keeps the newest), each
 * member's consumption per day (what explains a jump), and the district's line-loss alert.
 */
const V7_LINELOSS = `
CREATE TABLE lineloss_freezes (
  meter_id     TEXT    NOT NULL,
  -- The local date whose 00:00 this freeze should carry; frozen_at is what the meter said (a day off is kept, unused).
  boundary     TEXT    NOT NULL,
  frozen_at    TEXT    NOT NULL,
  -- Forward (and, where read, reverse) active energy total in 0.01 kWh, as the register shows it.
  import_centi INTEGER NOT NULL CHECK (import_centi >= 0),
  export_centi INTEGER CHECK (export_centi >= 0),
  read_at      INTEGER NOT NULL,
  PRIMARY KEY (meter_id, boundary)
) STRICT, WITHOUT ROWID;
CREATE INDEX lineloss_freezes_by_boundary ON lineloss_freezes (boundary);

CREATE TABLE lineloss_figures (
  district     TEXT    NOT NULL,
  kind         TEXT    NOT NULL CHECK (kind IN ('daily', 'monthly')),
  period       TEXT    NOT NULL,
  revision     INTEGER NOT NULL CHECK (revision >= 1),
  class        TEXT    NOT NULL CHECK (class IN ('qualified', 'high', 'negative', 'not-computable')),
  -- The figure as published (without ts).
  figure_json  TEXT    NOT NULL,
  computed_at  INTEGER NOT NULL,
  PRIMARY KEY (district, kind, period)
) STRICT, WITHOUT ROWID;

CREATE TABLE lineloss_member_days (
  district     TEXT    NOT NULL,
  date         TEXT    NOT NULL,
  meter_id     TEXT    NOT NULL,
  kwh_centi    INTEGER NOT NULL,
  PRIMARY KEY (district, date, meter_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE lineloss_alerts (
  district     TEXT    PRIMARY KEY,
  alert_id     TEXT    NOT NULL,
  kind         TEXT    NOT NULL CHECK (kind IN ('line-loss-high', 'line-loss-negative')),
  raised_at    INTEGER NOT NULL,
  since_date   TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
`;

/**
 * Free electricity allowances: the plan of each round (one row per meter under a unique key, with a snapshot of the
 * amount and the meter's identity), the rounds planned, and every move of a row (docs/allowances.md).
 */
const V8_ALLOWANCES = `
CREATE TABLE allowance_rounds (
  allowance    TEXT    NOT NULL,
  term         TEXT    NOT NULL,
  round        TEXT    NOT NULL,
  due_at       INTEGER NOT NULL,
  deadline_at  INTEGER NOT NULL,
  planned_at   INTEGER NOT NULL,
  late_on_plan INTEGER NOT NULL CHECK (late_on_plan IN (0, 1)),
  completed_at INTEGER,
  PRIMARY KEY (allowance, term, round)
) STRICT, WITHOUT ROWID;

CREATE TABLE allowance_rows (
  id              INTEGER PRIMARY KEY,
  allowance       TEXT    NOT NULL,
  term            TEXT    NOT NULL,
  round           TEXT    NOT NULL,
  meter_id        TEXT    NOT NULL,
  bus_id          TEXT    NOT NULL,
  address         TEXT,
  customer_no     TEXT,
  unit            TEXT    NOT NULL CHECK (unit IN ('money', 'energy')),
  amount          INTEGER NOT NULL CHECK (amount > 0),
  state           TEXT    NOT NULL CHECK (state IN ('planned', 'pending', 'applied', 'needs-attention', 'expired', 'cancelled')),
  -- The ledger load this row is on (its request id is derived from the key and this number).
  attempt         INTEGER NOT NULL DEFAULT 1,
  -- Tries since the row last moved forward: the retry backoff doubles with it.
  tries           INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,
  deadline_at     INTEGER NOT NULL,
  reason_code     TEXT,
  reason          TEXT,
  created_by      TEXT    NOT NULL,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  final_at        INTEGER,
  UNIQUE (allowance, term, round, meter_id)
) STRICT;
-- Each bus's worker picks its next row by state and retry time.
CREATE INDEX allowance_rows_by_bus ON allowance_rows (bus_id, state, next_attempt_at);

CREATE TABLE allowance_events (
  id     INTEGER PRIMARY KEY,
  row_id INTEGER NOT NULL REFERENCES allowance_rows (id),
  at     INTEGER NOT NULL,
  state  TEXT    NOT NULL,
  detail TEXT
) STRICT;
CREATE INDEX allowance_events_by_row ON allowance_events (row_id);

-- A person's carry-over: the allowance of a row is added to the meter's row of a later round, once that is planned.
CREATE TABLE allowance_carry (
  allowance    TEXT    NOT NULL,
  term         TEXT    NOT NULL,
  round        TEXT    NOT NULL,
  meter_id     TEXT    NOT NULL,
  from_row_id  INTEGER NOT NULL UNIQUE REFERENCES allowance_rows (id),
  amount       INTEGER NOT NULL CHECK (amount > 0),
  applied      INTEGER NOT NULL DEFAULT 0 CHECK (applied IN (0, 1)),
  created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX allowance_carry_by_round ON allowance_carry (allowance, term, round);
`;

const V9_ALERTS = `
-- One row per alert episode; at most one active episode per meter and kind.
CREATE TABLE alerts (
  id            TEXT    PRIMARY KEY,
  meter_id      TEXT    NOT NULL,
  kind          TEXT    NOT NULL,
  severity      TEXT    NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
  raised_at     INTEGER NOT NULL,
  cleared_at    INTEGER,
  cleared_by    TEXT,
  evidence_json TEXT    NOT NULL,
  unsynced      INTEGER NOT NULL DEFAULT 0 CHECK (unsynced IN (0, 1))
) STRICT;
CREATE UNIQUE INDEX alerts_one_active ON alerts (meter_id, kind) WHERE cleared_at IS NULL;
CREATE INDEX alerts_by_meter ON alerts (meter_id, raised_at);
CREATE INDEX alerts_by_time ON alerts (raised_at);
-- The repair history of an alert (acknowledgements and notes); never edited.
CREATE TABLE alert_notes (
  id       INTEGER PRIMARY KEY,
  alert_id TEXT    NOT NULL REFERENCES alerts (id),
  at       INTEGER NOT NULL,
  operator TEXT    NOT NULL,
  action   TEXT    NOT NULL CHECK (action IN ('ack', 'note')),
  note     TEXT
) STRICT;
CREATE INDEX alert_notes_by_alert ON alert_notes (alert_id, at);
-- What the detectors remember of each meter (last accepted register, counters, windows), so a restart neither
-- re-raises nor forgets.
CREATE TABLE alert_detectors (
  meter_id    TEXT    PRIMARY KEY,
  memory_json TEXT    NOT NULL,
  updated_at  INTEGER NOT NULL
) STRICT;
-- Broadcast time syncs the daemon sent: meters take one a day, so one per bus and local day.
CREATE TABLE clock_syncs (
  id          INTEGER PRIMARY KEY,
  bus_id      TEXT    NOT NULL,
  local_day   TEXT    NOT NULL,
  at          INTEGER NOT NULL,
  meters_json TEXT    NOT NULL,
  UNIQUE (bus_id, local_day)
) STRICT;
-- Readings taken while the gateway's clock was not known to be right.
ALTER TABLE readings ADD COLUMN unsynced INTEGER NOT NULL DEFAULT 0 CHECK (unsynced IN (0, 1));
`;

/**
 * Provisioning (docs/provisioning.md): the customer archive with its history, the card serials reported lost, and
 * opening entries in the ledger (channel and kind `opening`, amount 0 or the last purchase seen on a card): the
 * count and balance a meter had when meterd took it over, the starting point of its books, never a sale.
 */
function v10Provisioning(db: Database.Database): void {
  db.exec(`
CREATE TABLE customers (
  customer_no   TEXT    PRIMARY KEY,
  name          TEXT    NOT NULL,
  room          TEXT    NOT NULL,
  -- The meter's DL/T 645 address (12 digits), as cards carry it; null until bound.
  meter_address TEXT,
  card_serial   TEXT,
  state         TEXT    NOT NULL CHECK (state IN ('active', 'moved-out', 'closed')),
  tags_json     TEXT    NOT NULL DEFAULT '[]',
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- One active customer per meter.
CREATE UNIQUE INDEX customers_active_meter ON customers (meter_address) WHERE state = 'active' AND meter_address IS NOT NULL;
-- Every change of a customer, never edited: who, when, what (field: [before, after]).
CREATE TABLE customer_history (
  id           INTEGER PRIMARY KEY,
  customer_no  TEXT    NOT NULL REFERENCES customers (customer_no),
  at           INTEGER NOT NULL,
  operator     TEXT    NOT NULL,
  action       TEXT    NOT NULL,
  changes_json TEXT    NOT NULL
) STRICT;
CREATE INDEX customer_history_by_customer ON customer_history (customer_no, id);
-- Card serials reported lost or broken (补卡): such a card presented later is refused.
CREATE TABLE lost_cards (
  card_serial   TEXT    PRIMARY KEY,
  customer_no   TEXT,
  meter_address TEXT    NOT NULL,
  reason        TEXT    NOT NULL CHECK (reason IN ('lost', 'broken')),
  replaced_by   TEXT,
  operator      TEXT    NOT NULL,
  at            INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`);
  // SQLite cannot ALTER a CHECK; the documented way is to edit the stored CREATE TABLE text (it only widens here:
  // every existing row still passes) and bump schema_version so every connection re-reads the schema.
  const widen: [string, string][] = [
    [
      "channel          TEXT    NOT NULL CHECK (channel IN ('remote', 'operator', 'card', 'allowance'))",
      "channel          TEXT    NOT NULL CHECK (channel IN ('remote', 'operator', 'card', 'allowance', 'opening'))",
    ],
    [
      "kind             TEXT    NOT NULL CHECK (kind IN ('load', 'refund'))",
      "kind             TEXT    NOT NULL CHECK (kind IN ('load', 'refund', 'opening'))",
    ],
    [
      'amount           INTEGER NOT NULL CHECK (amount > 0)',
      "amount           INTEGER NOT NULL CHECK (amount > 0 OR (kind = 'opening' AND amount >= 0))",
    ],
  ];
  const sqlOf = db.prepare<[], string>("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'ledger'").pluck();
  let sql = sqlOf.get() ?? '';
  for (const [from, to] of widen) {
    if (!sql.includes(from)) throw new Error(`the ledger table does not have the expected definition (${from})`);
    sql = sql.replace(from, to);
  }
  const version = db.pragma('schema_version', { simple: true }) as number;
  db.unsafeMode(true);
  try {
    db.pragma('writable_schema = ON');
    db.prepare("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = 'ledger'").run(sql);
    db.pragma(`schema_version = ${version + 1}`);
    db.pragma('writable_schema = OFF');
  } finally {
    db.unsafeMode(false);
  }
}

const V11_USERS = `
-- The people who sign in to the web console. Passwords only as scrypt hashes; failed sign-ins and the lock-out are
-- kept here so a restart does not reset them.
CREATE TABLE users (
  name          TEXT    PRIMARY KEY,
  role          TEXT    NOT NULL CHECK (role IN ('cashier', 'technician', 'admin')),
  password_hash TEXT    NOT NULL,
  created_at    INTEGER NOT NULL,
  updated_at    INTEGER NOT NULL,
  failed_count  INTEGER NOT NULL DEFAULT 0,
  locked_until  INTEGER
) STRICT;
`;

/**
 * The web console's sessions, so a restart of the daemon does not sign the counter out. The cookie token only as its
 * SHA-256; a session goes with its user.
 */
const V15_WEB_SESSIONS = `
CREATE TABLE web_sessions (
  token_hash TEXT    PRIMARY KEY,
  user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
  role       TEXT    NOT NULL CHECK (role IN ('cashier', 'technician', 'admin')),
  csrf       TEXT    NOT NULL,
  started_at INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL
) STRICT;
CREATE INDEX web_sessions_by_user ON web_sessions (user_name);
`;

/** The schema, oldest first. Adding a table is appending one line here. */

/** Readings keep the `seq` they were published with, so the station can recall a gap by its numbers (补召). */
const V12_READING_SEQ = `
ALTER TABLE readings ADD COLUMN seq INTEGER;
CREATE INDEX readings_by_seq ON readings (seq) WHERE seq IS NOT NULL;
`;

/**
 * Parameter cards written at the counter (参数卡, docs/provisioning.md § Parameter cards): who wrote which values onto
 * which card, for which meter (null: every meter of the system). Never edited.
 */
const V13_PARAMETER_CARDS = `
CREATE TABLE parameter_cards (
  id            INTEGER PRIMARY KEY,
  at            INTEGER NOT NULL,
  operator      TEXT    NOT NULL,
  meter_address TEXT,
  card_serial   TEXT,
  layout        TEXT    NOT NULL,
  encoder       TEXT    NOT NULL,
  -- The layout's amount unit the limits count in: '0.01kWh' or 'fen'.
  unit          TEXT    NOT NULL CHECK (unit IN ('0.01kWh', 'fen')),
  -- 0.0001 yuan per kWh.
  price         INTEGER NOT NULL CHECK (price > 0),
  alarm1        INTEGER NOT NULL CHECK (alarm1 >= 0),
  alarm2        INTEGER NOT NULL CHECK (alarm2 >= 0),
  overdraft     INTEGER NOT NULL CHECK (overdraft >= 0),
  hoarding      INTEGER NOT NULL CHECK (hoarding >= 0)
) STRICT;
CREATE INDEX parameter_cards_by_meter ON parameter_cards (meter_address, id);
`;

/**
 * The 停(送)电 record (docs/lifecycle.md): each notice of a cut with its approval, trip and restore, and every step of
 * every cut and restore, plain relay commands included, in one book that is only appended to.
 */
const V14_SUPPLY = `
CREATE TABLE supply_notices (
  id                   INTEGER PRIMARY KEY,
  meter_id             TEXT    NOT NULL,
  reason               TEXT    NOT NULL CHECK (reason IN ('arrears', 'safety', 'customer-request', 'other')),
  requested_by         TEXT    NOT NULL,
  request_id           TEXT    NOT NULL,
  note                 TEXT,
  created_at           INTEGER NOT NULL,
  earliest_at          INTEGER NOT NULL,
  state                TEXT    NOT NULL CHECK (state IN ('notified', 'approved', 'tripping', 'cut', 'restoring', 'restored', 'cancelled')),
  approved_by          TEXT,
  approved_at          INTEGER,
  trip_sent_at         INTEGER,
  trip_confirmed_at    INTEGER,
  -- A trip or restore that could not be confirmed waits until then; a trip held by a protected window, until its end.
  next_try_at          INTEGER,
  last_error           TEXT,
  restore_requested_at INTEGER,
  restored_by          TEXT,
  restore_reason       TEXT,
  restore_sent_at      INTEGER,
  restored_at          INTEGER,
  cancelled_at         INTEGER,
  cancelled_by         TEXT,
  updated_at           INTEGER NOT NULL
) STRICT;
-- One notice in progress per meter: a second would cut a meter already cut, or restore one twice.
CREATE UNIQUE INDEX supply_notices_one_open ON supply_notices (meter_id)
  WHERE state IN ('notified', 'approved', 'tripping', 'cut', 'restoring');
CREATE INDEX supply_notices_by_state ON supply_notices (state, id);

CREATE TABLE supply_record (
  id          INTEGER PRIMARY KEY,
  notice_id   INTEGER REFERENCES supply_notices (id),
  meter_id    TEXT    NOT NULL,
  at          INTEGER NOT NULL,
  step        TEXT    NOT NULL,
  operator    TEXT,
  reason      TEXT,
  request_id  TEXT,
  detail_json TEXT
) STRICT;
CREATE INDEX supply_record_by_meter ON supply_record (meter_id, id);
CREATE INDEX supply_record_by_time ON supply_record (at);
CREATE INDEX supply_record_by_notice ON supply_record (notice_id, id) WHERE notice_id IS NOT NULL;
`;

/**
 * The meter register (docs/lifecycle.md): each configured meter is a service point; the physical meter serving it is
 * an asset bound to it for a period, with its readings at install and removal. At most one asset per point and one
 * point per address at a time. A replacement (meter-replace) is one resumable job whose steps are recorded here.
 * The ledger takes channel `transfer`: the credit of a removed meter loaded onto its successor, never a sale.
 */
function v16MeterRegister(db: Database.Database): void {
  db.exec(`
CREATE TABLE meter_assets (
  id             INTEGER PRIMARY KEY,
  point_id       TEXT    NOT NULL,
  bus_id         TEXT    NOT NULL,
  -- DL/T 645: the 12-digit address; Modbus: 'unit N'.
  address        TEXT    NOT NULL,
  asset_no       TEXT,
  profile        TEXT    NOT NULL,
  installed_at   INTEGER NOT NULL,
  -- {importKwh, exportKwh, balance, overdraft, purchaseCount} in ledger units for money and energy wallets.
  initial_json   TEXT,
  initial_source TEXT    NOT NULL CHECK (initial_source IN ('config', 'read', 'manual')),
  removed_at     INTEGER,
  final_json     TEXT,
  final_source   TEXT    CHECK (final_source IN ('read', 'manual')),
  reason         TEXT,
  operator       TEXT,
  request_id     TEXT,
  replaced_by    INTEGER REFERENCES meter_assets (id)
) STRICT;
CREATE UNIQUE INDEX meter_assets_one_per_point ON meter_assets (point_id) WHERE removed_at IS NULL;
CREATE UNIQUE INDEX meter_assets_one_point_per_address ON meter_assets (bus_id, address) WHERE removed_at IS NULL;
CREATE INDEX meter_assets_by_point ON meter_assets (point_id, id);

-- One row per meter-replace request: where the job stands (the last step committed) and what it learned on the way.
CREATE TABLE meter_replacements (
  request_id   TEXT    PRIMARY KEY,
  point_id     TEXT    NOT NULL,
  step         TEXT    NOT NULL,
  facts_json   TEXT    NOT NULL,
  result_json  TEXT,
  error_code   TEXT,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX meter_replacements_one_running ON meter_replacements (point_id) WHERE step NOT IN ('done', 'refused');

-- The address of the physical meter a reading came from (DL/T 645), so a recalled reading is the one first published.
ALTER TABLE readings ADD COLUMN address TEXT;
`);
  widenTable(db, 'ledger', [
    [
      "channel          TEXT    NOT NULL CHECK (channel IN ('remote', 'operator', 'card', 'allowance', 'opening'))",
      "channel          TEXT    NOT NULL CHECK (channel IN ('remote', 'operator', 'card', 'allowance', 'opening', 'transfer'))",
    ],
  ]);
}

/**
 * SQLite cannot ALTER a CHECK; the documented way is to edit the stored CREATE TABLE text (only ever widening: every
 * existing row still passes) and bump schema_version so every connection re-reads the schema.
 */
function widenTable(db: Database.Database, table: string, widen: readonly [string, string][]): void {
  const sqlOf = db.prepare<[string], string>("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?").pluck();
  let sql = sqlOf.get(table) ?? '';
  for (const [from, to] of widen) {
    if (!sql.includes(from)) throw new Error(`the ${table} table does not have the expected definition (${from})`);
    sql = sql.replace(from, to);
  }
  const version = db.pragma('schema_version', { simple: true }) as number;
  db.unsafeMode(true);
  try {
    db.pragma('writable_schema = ON');
    db.prepare("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?").run(sql, table);
    db.pragma(`schema_version = ${version + 1}`);
    db.pragma('writable_schema = OFF');
  } finally {
    db.unsafeMode(false);
  }
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'readings, outbox, sequences, meter_state', up: V1_READINGS_OUTBOX },
  { version: 2, name: 'credit ledger', up: V2_LEDGER },
  { version: 3, name: 'station commands, reply routing in the outbox', up: V3_COMMANDS },
  { version: 4, name: 'published books reports', up: V4_BOOKS },
  { version: 5, name: 'outbox refusals and dead letters', up: V5_DEAD_LETTERS },
  { version: 6, name: 'command origin and operator', up: V6_COMMAND_ORIGIN },
  { version: 7, name: 'line loss: freezes, figures, member days, alerts', up: V7_LINELOSS },
  { version: 8, name: 'allowance plans', up: V8_ALLOWANCES },
  { version: 9, name: 'alerts, detector memory and clock syncs', up: V9_ALERTS },
  { version: 10, name: 'customer archive, lost cards, opening entries', up: v10Provisioning },
  { version: 11, name: 'web console users', up: V11_USERS },
  { version: 12, name: 'the seq of each reading, for recall', up: V12_READING_SEQ },
  { version: 13, name: 'parameter cards', up: V13_PARAMETER_CARDS },
  { version: 14, name: 'supply notices and the cut and restore record', up: V14_SUPPLY },
  { version: 15, name: 'web console sessions', up: V15_WEB_SESSIONS },
  { version: 16, name: 'meter register: assets, replacements, transfer channel, reading address', up: v16MeterRegister },
];

export interface MigrationResult {
  readonly from: number;
  readonly to: number;
}

/**
 * Brings the database up to the last migration in `migrations`, refusing a database that is newer than the code.
 * Safe when two processes open the same file at once: each step re-reads the version inside its write transaction.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[], clock: StoreClock, logger: Logger): MigrationResult {
  checkNumbering(migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const currentVersion = db.prepare<[], number>('SELECT coalesce(max(version), 0) FROM schema_migrations').pluck();
  const record = db.prepare<[number, string, number]>('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');

  const from = currentVersion.get() ?? 0;
  const latest = migrations.at(-1)?.version ?? 0;
  if (from > latest) {
    const unknown = db
      .prepare<[number], string>("SELECT version || ' ' || name FROM schema_migrations WHERE version > ? ORDER BY version")
      .pluck()
      .all(latest);
    throw new StoreError(
      'STORE_TOO_NEW',
      `${db.name} has schema version ${from} but this meterd knows versions up to ${latest} ` +
        `(unknown: ${unknown.join(', ')}); run the meterd that wrote it, or restore a backup made by this version`,
    );
  }

  for (const migration of migrations) {
    if (migration.version <= from) continue;
    const step = db.transaction(() => {
      if ((currentVersion.get() ?? 0) >= migration.version) return false;
      if (typeof migration.up === 'string') db.exec(migration.up);
      else migration.up(db);
      record.run(migration.version, migration.name, clock.now());
      return true;
    });
    let applied: boolean;
    try {
      applied = step.immediate();
    } catch (error) {
      throw new StoreError(
        'STORE_MIGRATION_FAILED',
        `migration ${migration.version} "${migration.name}" failed on ${db.name} and was rolled back; ` +
          `the database stays at version ${migration.version - 1}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (applied) logger.info({ version: migration.version, migration: migration.name }, 'schema migration applied');
  }
  return { from, to: latest };
}

function checkNumbering(migrations: readonly Migration[]): void {
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new StoreError(
        'STORE_MIGRATION_FAILED',
        `migration "${migration.name}" has version ${migration.version} but sits at position ${index + 1}; ` +
          'versions must be 1, 2, 3, … in order with none missing',
      );
    }
  });
}
