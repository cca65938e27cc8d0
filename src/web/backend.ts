import type { DaemonStatus } from '../control/index.js';
import type { PublicUser, SignInResult, UserRole } from '../services/users.js';
import type { AlertNote, AlertRecord, AllowanceRow, LedgerEntry, MeterBalance, RelayState } from '../store/index.js';
import type { RoundStatus } from '../services/allowances/index.js';
import type { ExplainedMember } from '../services/lineloss/index.js';
import type { LocalSender, LocalSubmission } from '../uplink/commands/router.js';

/** One line of the meters table, and the head of a meter's page. */
export interface MeterRow {
  readonly id: string;
  readonly bus: string;
  readonly customerNo: string | null;
  readonly district: string | null;
  readonly profile: string;
  /** What the meter counts credit in; null for a meter without prepayment. */
  readonly creditUnit: 'money' | 'energy' | null;
  readonly online: boolean;
  readonly relay: RelayState | null;
  readonly balance: MeterBalance | null;
  readonly lastGoodReadAt: number | null;
  readonly activeAlerts: number;
  /** Whether the meter can be tripped, read, time-synced (its profile has the means). */
  readonly can: { readonly relay: boolean; readonly topup: boolean; readonly timeSync: boolean };
}

/** A point of a meter's charts: register energy, balance and voltage from its readings (null where not read). */
export interface ChartPoint {
  readonly t: number;
  readonly energyKwh: number | null;
  readonly balance: number | null;
  readonly voltage: number | null;
}

/** What /metrics shows, taken at each scrape (src/web/metrics.ts, docs/metrics.md). */
export interface MetricsSnapshot {
  readonly buses: readonly {
    readonly id: string;
    readonly up: boolean;
    readonly utilisation: number;
    readonly timeouts: number;
    readonly retries: number;
    readonly reconnects: number;
    readonly skipped: number;
  }[];
  readonly brokerConnected: boolean;
  readonly outbox: { readonly depth: number; readonly oldestAgeSeconds: number | null; readonly deadLetters: number };
  readonly readingsStored: number;
  readonly meters: { readonly online: number; readonly offline: number; readonly unreachable: number };
  readonly commands: readonly { readonly command: string; readonly status: string; readonly count: number }[];
  readonly alertsByKind: Readonly<Record<string, number>>;
  readonly allowanceRows: Readonly<Record<string, number>>;
}

/** A books report for the page (the JSON the station gets) and the same sums as CSV lines. */
export interface BooksView {
  readonly json: Record<string, unknown>;
  readonly csv: readonly string[];
}

export interface SalesToday {
  readonly loads: number;
  readonly moneyFen: number;
  readonly energyCentiKwh: number;
}

/** A transformer district as the line-loss page lists it (docs/lineloss.md). */
export interface DistrictView {
  readonly id: string;
  readonly name: string | null;
  readonly supplyMeter: string;
  readonly members: number;
  /** The qualified band in %: below it negative, above it high. */
  readonly qualified: readonly [number, number];
  readonly target: number | null;
}

/** A district's line loss over a month: each day's figure and the month's, as published on MQTT (without ts). */
export interface LinelossMonth {
  readonly district: string;
  /** 'YYYY-MM'. */
  readonly month: string;
  readonly days: readonly Record<string, unknown>[];
  readonly monthFigure: Record<string, unknown> | null;
}

/** The members behind one district's day (`meterd lineloss explain`). */
export interface LinelossDayView {
  readonly figure: Record<string, unknown>;
  readonly members: readonly ExplainedMember[];
}

/** What card health found (src/cards CardHealth): plain sentences in `findings`, each saying what to do. */
export interface CardHealthView {
  readonly atr: string;
  readonly kind: string;
  readonly pscAttemptsLeft: number;
  readonly blank: boolean;
  readonly meterNumber?: string;
  readonly customerNumber?: string;
  readonly cardSerial?: string;
  readonly purchaseCount?: number;
  readonly booksCount?: number;
  readonly findings: readonly string[];
  readonly ok: boolean;
}

/**
 * The counter's card maintenance that moves neither money nor energy, so it needs no command record: card health,
 * re-issuing the books' last purchase onto the customer's card, making a check card. A refusal throws the card
 * stack's error (a `code` and a sentence).
 */
export interface CounterDesk {
  /** What the encoder's cards count purchases in (its card layout's unit). */
  unit(encoder?: string): Promise<'money' | 'energy'>;
  health(encoder?: string): Promise<CardHealthView>;
  reissue(meter: string, encoder?: string): Promise<{ meterNumber: string; count: number; amount: number; unit: 'money' | 'energy' }>;
  checkCard(anyMeter: boolean, encoder?: string): Promise<{ meterNumber: string; role: string }>;
}

/** A stored session (the cookie token only as its SHA-256), as src/web/sessions.ts keeps them. */
export interface SessionRecord {
  readonly tokenHash: string;
  readonly user: string;
  readonly role: UserRole;
  readonly csrf: string;
  readonly startedAt: number;
  readonly lastSeen: number;
}

/** Where the console's sessions live: the gateway's database, so they outlive a restart of the daemon. */
export interface SessionRecords {
  add(s: SessionRecord): void;
  get(tokenHash: string): SessionRecord | null;
  touch(tokenHash: string, lastSeen: number): void;
  remove(tokenHash: string): boolean;
  removeUser(user: string): number;
  removeExpired(lastSeenBefore: number, startedBefore: number): number;
}

/** The users as the console sees them (src/services/users.ts). */
export interface UserDirectory {
  signIn(name: string, password: string): Promise<SignInResult>;
  count(): number;
  list(): PublicUser[];
  get(name: string): PublicUser | null;
  add(name: string, role: UserRole, password: string): Promise<void>;
  remove(name: string): void;
  setPassword(name: string, password: string): Promise<void>;
}

/**
 * Everything the console reads and does, built by the composition root (src/daemon/console.ts) from the services and
 * the store's read side: the web layer holds no SQL and no bytes. Actions go through `submit`, the command router's
 * local door: the MQTT commands' schemas, exactly-once record and handlers, with the signed-in user as the operator.
 */
export interface ConsoleBackend {
  readonly gatewayId: string;
  readonly timeZone: string;
  status(): DaemonStatus;
  submit(command: string, request: unknown, sender: LocalSender): LocalSubmission;
  readonly users: UserDirectory;
  readonly sessions: SessionRecords;
  /** null when the config names no encoder. */
  readonly counter: CounterDesk | null;
  meters(): MeterRow[];
  meter(id: string): MeterRow | null;
  /** The point names a "read now" asks for (the meter's polled points, at most 64). */
  readPoints(id: string): string[];
  readings(id: string, sinceMs: number): ChartPoint[];
  ledger(id: string, limit: number): LedgerEntry[];
  salesToday(): SalesToday;
  alerts(): { readonly active: AlertRecord[]; readonly history: AlertRecord[] };
  alertNotes(alertId: string): AlertNote[];
  /** The daily (YYYY-MM-DD) or monthly (YYYY-MM) books; a bad period throws a BooksError with a sentence. */
  books(kind: 'daily' | 'monthly', period: string, operator?: string): BooksView;
  /** The configured meter whose DL/T 645 address is a card's meter number. */
  meterByNumber(meterNumber: string): MeterRow | null;
  /** The ledger id of a card sale (the receipt number), once the books hold it. */
  cardSaleId(meterId: string, purchaseCount: number): number | null;
  metrics(): MetricsSnapshot;
  /** Each planned allowance round with its counts, newest first, and the rows waiting for a person. */
  allowances(): { readonly rounds: RoundStatus[]; readonly attention: AllowanceRow[] };
  /** The districts whose line loss is computed (those with a supply meter). */
  districts(): DistrictView[];
  /**
   * A district's days and figure of a month ('YYYY-MM'; a bad month throws a BooksError with a sentence); without a
   * month, the month of its latest daily figure (the current month before the first one).
   */
  lineloss(district: string, month?: string): LinelossMonth;
  /** The explanation of a district's day, or null when that day was not computed. */
  linelossDay(district: string, date: string): LinelossDayView | null;
  /** A meter's cut notices (停电通知) with their state, newest first (src/store/supply.ts, docs/lifecycle.md). */
  supplyNotices(meterId: string): Record<string, unknown>[];
  /** The meter a notice is for, or null when there is no such notice. */
  supplyNoticeMeter(noticeId: number): string | null;
  /** The data directory's file system: free and total bytes (null when it cannot be read). */
  disk(): { readonly freeBytes: number; readonly totalBytes: number } | null;
}
