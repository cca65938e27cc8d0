import type { Store, SupplyRecordLine } from '../../store/index.js';

// The month's cuts and restores in the books (停(送)电记录 of the period), read from the supply record.

/** One confirmed cut or restore of the period, with who asked, who approved, who restored and why. */
export interface SupplyBooksLine {
  readonly at: number;
  readonly meterId: string;
  readonly kind: 'cut' | 'restore';
  /** Null for a technician's plain relay command. */
  readonly noticeId: number | null;
  /** The notice's reason (arrears, safety, …), or the relay command's reason text. */
  readonly reason: string | null;
  /** Cut: who asked; restore: who restored. */
  readonly by: string | null;
  /** Cut under a notice: who approved it. */
  readonly approvedBy: string | null;
  /** Restore: why (arrears cleared by load …, the technician's reason). */
  readonly why: string | null;
}

export interface SupplyBooks {
  /** Confirmed cuts under a notice, per reason. */
  readonly cuts: Readonly<Record<string, number>>;
  /** Confirmed restores of a cut under a notice (by a person or by the gateway after a payment). */
  readonly restores: number;
  /** Plain relay commands confirmed (technicians). */
  readonly relayTrips: number;
  readonly relayCloses: number;
  /** Every confirmed cut and restore, oldest first. */
  readonly lines: readonly SupplyBooksLine[];
}

/** The cuts and restores confirmed in [since, until). */
export function supplyBooks(store: Store, since: number, until: number): SupplyBooks {
  const record = store.supply.record({
    since,
    until,
    steps: ['trip-confirmed', 'restore-confirmed', 'relay-trip', 'relay-close'],
  });
  const cuts: Record<string, number> = {};
  let restores = 0;
  let relayTrips = 0;
  let relayCloses = 0;
  const lines: SupplyBooksLine[] = [];
  const notices = new Map<number, ReturnType<Store['supply']['notice']>>();
  const noticeOf = (l: SupplyRecordLine) => {
    if (l.noticeId === null) return null;
    if (!notices.has(l.noticeId)) notices.set(l.noticeId, store.supply.notice(l.noticeId));
    return notices.get(l.noticeId) ?? null;
  };
  for (const l of record) {
    const confirmed = l.step === 'trip-confirmed' || l.step === 'restore-confirmed' || l.detail?.confirmed === true;
    if (!confirmed) continue;
    const n = noticeOf(l);
    if (l.step === 'trip-confirmed' && n !== null) {
      cuts[n.reason] = (cuts[n.reason] ?? 0) + 1;
      lines.push({
        at: l.at,
        meterId: l.meterId,
        kind: 'cut',
        noticeId: n.id,
        reason: n.reason,
        by: n.requestedBy,
        approvedBy: n.approvedBy,
        why: n.note,
      });
    } else if (l.step === 'restore-confirmed') {
      if (n !== null) restores++;
      lines.push({
        at: l.at,
        meterId: l.meterId,
        kind: 'restore',
        noticeId: n?.id ?? null,
        reason: n?.reason ?? null,
        by: l.operator,
        approvedBy: null,
        why: l.reason,
      });
    } else if (l.step === 'relay-trip' || l.step === 'relay-close') {
      if (l.step === 'relay-trip') relayTrips++;
      else relayCloses++;
      if (l.step === 'relay-close' && n !== null) restores++;
      lines.push({
        at: l.at,
        meterId: l.meterId,
        kind: l.step === 'relay-trip' ? 'cut' : 'restore',
        noticeId: n?.id ?? null,
        reason: n?.reason ?? null,
        by: l.operator,
        approvedBy: null,
        why: l.reason,
      });
    }
  }
  return { cuts, restores, relayTrips, relayCloses, lines };
}
