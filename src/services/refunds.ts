import { openLedgerEntry, refundedAmount, transitionLedger, type LedgerEntry, type Store } from '../store/index.js';
import { MeterdError } from '../errors.js';

export type RefundErrorCode =
  /** No ledger entry has the original request id. */
  | 'REFUND_ORIGINAL_UNKNOWN'
  /** The original is not an applied load (still open, rejected or failed: nothing was sold). */
  | 'REFUND_NOT_APPLIED'
  /** The original is itself a refund, or an allowance (nobody paid for it). */
  | 'REFUND_NOT_REFUNDABLE'
  /** More than what is left of the original after earlier refunds. */
  | 'REFUND_EXCEEDS_ORIGINAL'
  /** The refund's request id already names a load. */
  | 'REFUND_REQUEST_ID_IN_USE'
  /** Amount not a whole positive number of fen / 0.01 kWh, or operator / reason missing. */
  | 'REFUND_INVALID';

export class RefundError extends MeterdError<RefundErrorCode> {
  override readonly name = 'RefundError';
}

export interface RefundRequest {
  /** The refund's own request id: the same id never refunds twice. */
  readonly requestId: string;
  /** The request id of the load being refunded. */
  readonly originalRequestId: string;
  /** In the original's unit (fen or 0.01 kWh). Default: everything still left of the original. */
  readonly amount?: number;
  /** Who hands the money back: the refund counts in this operator's drawer. */
  readonly operator: string;
  readonly reason: string;
}

export interface RefundResult {
  readonly entry: LedgerEntry;
  /** False when this request id was refunded before: the first refund is returned and nothing is recorded. */
  readonly created: boolean;
}

/**
 * Records money given back for a load as a new, immutable ledger entry (kind `refund`, `refers_to` the original, same
 * meter, unit and channel, state `applied`). It is an event in the books only: nothing is written to a meter, and the
 * original entry is never edited (docs/reference/prepaid.md § Refunds and corrections). Checked inside the transaction that records it, so two
 * refunds at once cannot together exceed the original.
 *
 * @example
 * recordRefund(store, { requestId: 'refund-0042', originalRequestId: 'counter-0042', amount: 3000, operator: 'alice', reason: 'customer moved out' });
 */
export function recordRefund(store: Store, req: RefundRequest): RefundResult {
  if (req.operator.trim() === '') throw new RefundError('REFUND_INVALID', 'a refund needs the operator who hands the money back');
  if (req.reason.trim() === '') throw new RefundError('REFUND_INVALID', 'a refund needs a reason');
  if (req.amount !== undefined && (!Number.isSafeInteger(req.amount) || req.amount <= 0)) {
    throw new RefundError('REFUND_INVALID', `refund amount ${req.amount} is not a whole positive number of fen or 0.01 kWh`);
  }
  return store.transaction(
    (tx) => {
      const seen = store.ledger.get(req.requestId);
      if (seen) {
        if (seen.kind !== 'refund')
          throw new RefundError(
            'REFUND_REQUEST_ID_IN_USE',
            `request id ${req.requestId} already names a ${seen.channel} load; give the refund its own request id`,
          );
        return { entry: seen, created: false };
      }
      const original = store.ledger.get(req.originalRequestId);
      if (!original) throw new RefundError('REFUND_ORIGINAL_UNKNOWN', `no ledger entry with request id ${req.originalRequestId}`);
      if (original.kind === 'refund')
        throw new RefundError(
          'REFUND_NOT_REFUNDABLE',
          `${original.requestId} is itself a refund; a refund is never reversed: record a new sale instead`,
        );
      if (original.channel === 'allowance')
        throw new RefundError(
          'REFUND_NOT_REFUNDABLE',
          `${original.requestId} is a free allowance: nobody paid for it, there is nothing to give back`,
        );
      if (original.state !== 'applied') {
        throw new RefundError(
          'REFUND_NOT_APPLIED',
          `${original.requestId} is ${original.state}, not applied: ${original.state === 'rejected' || original.state === 'failed' ? 'nothing was sold' : 'wait until it is settled'}`,
        );
      }
      const left = original.amount - refundedAmount(tx, original.id);
      const amount = req.amount ?? left;
      if (left <= 0 || amount > left) {
        throw new RefundError(
          'REFUND_EXCEEDS_ORIGINAL',
          `${original.requestId} was ${units(original.amount, original.unit)}${left < original.amount ? `, of which ${units(left, original.unit)} is left after earlier refunds` : ''}; cannot refund ${units(amount, original.unit)}`,
        );
      }
      const { entry } = openLedgerEntry(tx, {
        requestId: req.requestId,
        channel: original.channel,
        kind: 'refund',
        meterId: original.meterId,
        unit: original.unit,
        amount,
        operator: req.operator,
        ...(original.customerNo === null ? {} : { customerNo: original.customerNo }),
        refersTo: original.id,
        request: { originalRequestId: original.requestId, amount, operator: req.operator, reason: req.reason },
      });
      return {
        entry: transitionLedger(tx, entry.id, 'applied', { detail: `refund of ${original.requestId}: ${req.reason}` }),
        created: true,
      };
    },
    { durable: true },
  );
}

function units(amount: number, unit: 'money' | 'energy'): string {
  const sign = amount < 0 ? '-' : '';
  const a = Math.abs(amount);
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')} ${unit === 'money' ? 'CNY' : 'kWh'}`;
}
