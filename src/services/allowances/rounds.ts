import type { AllowanceConfig } from '../../config/index.js';
import type { AllowanceRoundKey } from '../../store/index.js';
import { zoneOffsetMs } from '../schedule.js';

// Pure rules of the allowance calendar: when a round is due, what its deadline is, and the request id of a row's load.

/** The instant a round starts: its date at the allowance's local time (`at`) in the gateway's zone. */
export function roundDueAt(date: string, at: string, timeZone: string): number {
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const [h, mi] = at.split(':').map(Number) as [number, number];
  const guessUtc = Date.UTC(y, mo - 1, d, h, mi);
  // Two passes settle the offset across a daylight-saving change (the books' schedule does the same).
  let t = guessUtc - zoneOffsetMs(guessUtc, timeZone);
  t = guessUtc - zoneOffsetMs(t, timeZone);
  return t;
}

export interface RoundSchedule extends AllowanceRoundKey {
  readonly dueAt: number;
  readonly deadlineAt: number;
}

/** Every round of every allowance with its due time and deadline, in due order. */
export function roundSchedule(allowances: readonly AllowanceConfig[], timeZone: string): RoundSchedule[] {
  const out: RoundSchedule[] = [];
  for (const a of allowances)
    for (const t of a.terms)
      for (const r of t.rounds) {
        const dueAt = roundDueAt(r.date, a.at, timeZone);
        out.push({ allowance: a.id, term: t.id, round: r.id, dueAt, deadlineAt: dueAt + a.deadlineMs });
      }
  return out.sort((x, y) => x.dueAt - y.dueAt);
}

/** Rounds whose start has passed at `now`: the ones a gateway must have planned (also after being off at that moment). */
export function dueRounds(allowances: readonly AllowanceConfig[], timeZone: string, now: number): RoundSchedule[] {
  return roundSchedule(allowances, timeZone).filter((r) => r.dueAt <= now);
}

/**
 * The ledger request id of a row's load. Derived from the plan key, so a crash between the ledger row and the plan
 * row finds the same load again; the attempt number changes only after a load ended without reaching the meter. The
 * space cannot occur in a station's request id (printable ASCII without spaces), so no station request can take it.
 */
export function allowanceRequestId(row: AllowanceRoundKey & { meterId: string; attempt: number }): string {
  return `allowance ${row.allowance}/${row.term}/${row.round}/${row.meterId} #${row.attempt}`;
}

/** Wait before the next try of a meter that did not answer: `retryMs` doubling per try, at most an hour. */
export function retryDelayMs(retryMs: number, tries: number): number {
  return Math.min(retryMs * 2 ** Math.max(0, Math.min(tries - 1, 20)), Math.max(retryMs, 3_600_000));
}

export function roundLabel(k: AllowanceRoundKey): string {
  return `${k.allowance}/${k.term}/${k.round}`;
}
