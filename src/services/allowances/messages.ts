import type { AllowanceCounts, AllowanceRound, AllowanceRow } from '../../store/index.js';
import { allowanceRequestId } from './rounds.js';

// What the station receives about allowances (docs/mqtt-api.md § Allowances): retained progress per allowance, and
// one report per completed round listing every meter and its outcome.

/** Retained progress of an allowance's current round, relative to the gateway's topic prefix. */
export function allowanceTopic(allowanceId: string): string {
  return `allowances/${allowanceId}`;
}

/** The report of each completed round. */
export function allowanceReportTopic(allowanceId: string): string {
  return `allowances/${allowanceId}/report`;
}

/** The counts as the station reads them (camelCase; complete only when nothing is planned or pending). */
export function countsMessage(c: AllowanceCounts): Record<string, number> {
  return {
    planned: c.planned,
    pending: c.pending,
    applied: c.applied,
    needsAttention: c['needs-attention'],
    expired: c.expired,
    cancelled: c.cancelled,
  };
}

export function progressMessage(round: AllowanceRound, counts: AllowanceCounts, nowMs: number): Record<string, unknown> {
  return {
    allowance: round.allowance,
    term: round.term,
    round: round.round,
    counts: countsMessage(counts),
    complete: counts.planned + counts.pending === 0,
    ts: new Date(nowMs).toISOString(),
  };
}

export function reportMessage(
  round: AllowanceRound,
  counts: AllowanceCounts,
  rows: readonly AllowanceRow[],
  nowMs: number,
): Record<string, unknown> {
  return {
    ...progressMessage(round, counts, nowMs),
    dueAt: new Date(round.dueAt).toISOString(),
    deadlineAt: new Date(round.deadlineAt).toISOString(),
    lateOnPlan: round.lateOnPlan,
    meters: rows.map((r) => ({
      meter: r.meterId,
      state: r.state,
      amount: { value: r.amount / 100, unit: r.unit === 'money' ? 'CNY' : 'kWh', units: r.amount },
      ...(r.state === 'applied' ? { requestId: allowanceRequestId(r) } : {}),
      ...(r.reasonCode !== null && r.state !== 'applied' ? { reason: { code: r.reasonCode, message: r.reason ?? '' } } : {}),
    })),
  };
}
