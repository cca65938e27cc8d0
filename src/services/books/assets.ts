import type { CounterScope, LedgerEntry, MeterAsset } from '../../store/index.js';

// Which physical meter served a point when, as the books need it: a purchase counter belongs to one meter, so a point
// whose meter was replaced (docs/lifecycle.md) is reconciled meter by meter, each over the time it hung there.

/** One meter's time at a point: its counter's readings and loads count only between `from` and `to`. */
export interface AssetSpan {
  /** The register's asset, or null for a point the register does not know (the books of a store without one). */
  readonly asset: MeterAsset | null;
  /** The meter before it at this point, when it was put up by a replacement. */
  readonly predecessor: MeterAsset | null;
  /** When it started serving the point (the first meter of a point: since ever, its history before the register). */
  readonly from: number;
  /** When it was taken down, or +Infinity. */
  readonly to: number;
  /** The keys its ledger entries may carry: the point's id, the meter's number (cards). */
  readonly keys: readonly string[];
}

/** The register's assets by point, read once per report (the report's transaction sees one register). */
export class PointAssets {
  private readonly byPoint = new Map<string, MeterAsset[]>();

  constructor(assets: readonly MeterAsset[]) {
    for (const a of assets) {
      const list = this.byPoint.get(a.pointId);
      if (list) list.push(a);
      else this.byPoint.set(a.pointId, [a]);
    }
  }

  /** Every meter number the point ever had, oldest first. */
  addressesOf(pointId: string): string[] {
    return (this.byPoint.get(pointId) ?? []).map((a) => a.address);
  }

  /** The point's meters, oldest first; one span over all time when the register has none. */
  spansOf(point: { readonly id: string; readonly keys: readonly string[] }): AssetSpan[] {
    const assets = this.byPoint.get(point.id) ?? [];
    if (assets.length === 0) return [{ asset: null, predecessor: null, from: -Infinity, to: Infinity, keys: point.keys }];
    const known = new Set(assets.map((a) => a.address));
    return assets.map((asset, i) => {
      const last = i === assets.length - 1;
      // A config address the register never had (hand-edited) is kept with the meter serving now.
      const extra = last ? point.keys.filter((k) => k !== point.id && !known.has(k)) : [];
      return {
        asset,
        predecessor: i > 0 ? assets[i - 1]! : null,
        from: i === 0 ? -Infinity : asset.installedAt,
        to: asset.removedAt ?? Infinity,
        keys: unique([point.id, asset.address, ...extra]),
      };
    });
  }

  /**
   * The span a ledger entry of the point belongs to: a card sale names its meter by number; anything else (remote,
   * allowance, transfer) by the point, so the meter serving when it was made.
   */
  spanOf(spans: readonly AssetSpan[], e: Pick<LedgerEntry, 'meterId' | 'createdAt'>): AssetSpan {
    const during = (s: AssetSpan) => e.createdAt >= s.from && e.createdAt < s.to;
    const number = normalizeNumber(e.meterId);
    const byNumber = spans.filter((s) => s.asset !== null && normalizeNumber(s.asset.address) === number && s.asset.pointId !== e.meterId);
    if (byNumber.length > 0) return byNumber.find(during) ?? byNumber.filter((s) => s.from <= e.createdAt).at(-1) ?? byNumber[0]!;
    return spans.find(during) ?? spans.at(-1)!;
  }
}

/** The readings of a span's meter: taken while it hung there, from its address (a read stamped at the swap is not the other meter's). */
export function counterScope(span: AssetSpan): CounterScope {
  return {
    ...(Number.isFinite(span.from) ? { notBefore: span.from } : {}),
    ...(span.asset !== null ? { address: span.asset.address } : {}),
  };
}

function unique(keys: readonly string[]): string[] {
  return [...new Set(keys)];
}

/** Meter numbers as DL/T 645 writes addresses: 12 digits, left-padded with zeros. */
export function normalizeNumber(text: string): string {
  const t = text.trim().toUpperCase();
  return /^\d{1,12}$/.test(t) ? t.padStart(12, '0') : t;
}
