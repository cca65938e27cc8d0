// The cashier's books: periods, the report, the purchase-counter reconciliation and the daily publisher.
export * from './periods.js';
export * from './publisher.js';
export { reportCsv } from './csv.js';
export { supplyBooks, type SupplyBooks, type SupplyBooksLine } from './supply.js';
export {
  Books,
  formatUnits,
  LOAD_STATUS_LABELS,
  LOAD_STATUSES,
  reportJson,
  unitLabel,
  type BooksLine,
  type BooksOptions,
  type BooksReport,
  type BooksSum,
  type ChannelSum,
  type LoadStatus,
  type OperatorSum,
  type ReportFilter,
  type Tally,
  type UnconfirmedLoad,
  type UnitTotal,
} from './report.js';
export type {
  BooksMeter,
  CounterPoint,
  FindingKind,
  MeterReconciliation,
  MeterSwap,
  ReconciliationFinding,
  ReconciliationStatus,
} from './reconciliation.js';
