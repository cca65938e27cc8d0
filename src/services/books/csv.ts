import { csvField } from '../../values/csv.js';
import { periodLabel } from './periods.js';
import { formatUnits, LOAD_STATUSES, unitLabel, type BooksReport, type BooksSum } from './report.js';

const CSV_HEADER = [
  'period',
  'row',
  'operator',
  'channel',
  'unit',
  'loads',
  'loads_amount',
  'refunds',
  'refunds_amount',
  'net',
  'applied',
  'applied_amount',
  'awaiting',
  'awaiting_amount',
  'not_settled',
  'not_settled_amount',
  'rejected_failed',
  'rejected_failed_amount',
];

/**
 * The sums as CSV, one header row: `row` is `line` (operator × channel), `operator` or `channel` (subtotals) or
 * `total`; amounts in yuan or kWh with two decimals, by `unit`. The reconciliation is in the table and JSON outputs.
 */
export function reportCsv(r: BooksReport): string[] {
  const label = periodLabel(r.period);
  const row = (kind: string, operator: string, channel: string, s: BooksSum) =>
    [
      label,
      kind,
      operator,
      channel,
      unitLabel(s.unit),
      String(s.loads.count),
      formatUnits(s.loads.amount),
      String(s.refunds.count),
      formatUnits(s.refunds.amount),
      formatUnits(s.net),
      ...LOAD_STATUSES.flatMap((k) => [String(s.states[k].count), formatUnits(s.states[k].amount)]),
    ]
      .map(csvField)
      .join(',');
  return [
    CSV_HEADER.join(','),
    ...r.lines.map((l) => row('line', l.operator ?? '', l.channel, l)),
    ...r.byOperator.map((o) => row('operator', o.operator ?? '', '', o)),
    ...r.byChannel.map((c) => row('channel', '', c.channel, c)),
    ...r.totals.map((t) => row('total', '', '', t)),
  ];
}
