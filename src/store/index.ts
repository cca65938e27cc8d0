/** The store's public surface: the only way meterd touches SQLite. */
export {
  openStore,
  Store,
  type StoreOptions,
  type TransactionOptions,
  type IntegrityResult,
  type LimitCounters,
  type StoreSettings,
  type StorageState,
} from './db.js';
export { walSizing, walBytes, type WalSizing } from './wal-sizing.js';
export type { Tx } from './connection.js';
export { StoreError, type StoreErrorCode } from './errors.js';
export type { SeqRewind } from './seq-guard.js';
export { MIGRATIONS, type Migration } from './migrations.js';
export { insertReadings, ReadingHistory } from './readings.js';
export {
  enqueue,
  OutboxQueue,
  type OutboxEntry,
  type OutboxDelivery,
  type Enqueued,
  type PeekOptions,
  type OutboxCounts,
} from './outbox.js';
export {
  AlertStore,
  insertAlert,
  clearAlert,
  updateAlert,
  addAlertNote,
  saveDetectorMemory,
  recordClockSync,
  type AlertRecord,
  type AlertNote,
  type ClockSyncRecord,
} from './alerts.js';
export { DeadLetters, type DeadLetter, type RefusalOutcome } from './dead-letters.js';
export { upsertMeterState, MeterStates, type MeterStatePatch } from './meter-state.js';
export type { LimitsResult } from './retention.js';
export * from './types.js';
export {
  openLedgerEntry,
  transitionLedger,
  recordOpening,
  Ledger,
  FINAL_STATES,
  isSubsidyLoad,
  subsidyStateOf,
  type SubsidyState,
  type SubsidyRegisterState,
  type LedgerEntry,
  type NewLedgerEntry,
  type NewOpeningEntry,
  type LedgerTransition,
  type LedgerState,
  type LedgerChannel,
  type LedgerKind,
  type CreditUnit,
  type MeterWallet,
  type LedgerQuery,
} from './ledger.js';
export {
  recordAcceptedCommand,
  finishCommand,
  findCommand,
  openCommands,
  listCommands,
  commandCounts,
  COMMAND_REPLAY_WINDOW_MS,
  COMMAND_STATUSES,
  type CommandRecord,
  type CommandStatus,
  type CommandOrigin,
  type NewCommandRecord,
  type CommandFinish,
  type CommandQuery,
} from './commands.js';
export {
  purchaseCounterBefore,
  purchaseCounterWindow,
  refundedAmount,
  markReportPublished,
  reportPublishedAt,
  lastPublishedPeriod,
  type CounterReading,
  type CounterWindow,
  type ReportKind,
} from './books.js';
export {
  upsertFreeze,
  freezesAt,
  findFigure,
  saveFigure,
  listFigures,
  lastFigureDate,
  incompleteDays,
  saveMemberDays,
  memberDays,
  activeLinelossAlert,
  raiseLinelossAlert,
  clearLinelossAlert,
  pruneLineloss,
  type StoredFreeze,
  type StoredFigure,
  type StoredLinelossAlert,
  type LinelossClass,
  type LinelossPeriodKind,
} from './lineloss.js';
export {
  ALLOWANCE_ROW_STATES,
  OPEN_ALLOWANCE_STATES,
  allowanceCounts,
  allowanceEvents,
  allowanceRound,
  allowanceRounds,
  allowanceRow,
  allowanceRowById,
  allowanceRows,
  carryAllowanceRow,
  completeAllowanceRound,
  moveAllowanceRow,
  nextAllowanceRetryAt,
  nextAllowanceRow,
  openAllowanceRounds,
  overdueAllowanceRows,
  planAllowanceRound,
  refreshAllowanceIdentity,
  reopenAllowanceRound,
  type AllowanceCounts,
  type AllowanceRound,
  type AllowanceRoundKey,
  type AllowanceRow,
  type AllowanceRowPatch,
  type AllowanceRowQuery,
  type AllowanceRowState,
  type NewAllowanceRow,
} from './allowances.js';
export {
  CustomerArchive,
  CUSTOMER_STATES,
  recordLostCard,
  noteCustomer,
  saveCustomer,
  type Customer,
  type CustomerChange,
  type CustomerFields,
  type CustomerState,
  type LostCard,
} from './archive.js';
export { ParameterCards, recordParameterCard, type ParameterCardRecord } from './parameter-cards.js';
export { UserStore, USER_ROLES, type UserRecord, type UserRole } from './users.js';
export {
  SupplyBook,
  SUPPLY_REASONS,
  OPEN_NOTICE_STATES,
  insertSupplyNotice,
  updateSupplyNotice,
  appendSupplyRecord,
  type SupplyNotice,
  type SupplyNoticePatch,
  type SupplyNoticeState,
  type SupplyReason,
  type SupplyRecordLine,
  type SupplyRecordQuery,
  type SupplyStep,
  type NewSupplyNotice,
} from './supply.js';
export { WebSessionStore, type WebSessionRecord } from './web-sessions.js';
