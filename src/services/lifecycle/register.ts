import type { Clock } from '../../clock.js';
import type { MeterConfig } from '../../config/index.js';
import { silentLogger, type Logger } from '../../log.js';
import { enqueue, installAsset, type MeterAsset, type Store, type Tx } from '../../store/index.js';

// The meter register (计量装置台账, docs/lifecycle.md): a config entry is a service point; the physical meter serving
// it is an asset in the store. At first start each configured meter becomes its point's installed asset; after a
// replacement the register, not the config line, says which address is polled.

/** A point as the register sees it: its id, bus, the address the config gives, and its profile. */
export type RegisterPoint = Pick<MeterConfig, 'id' | 'busId' | 'address' | 'unit' | 'profile' | 'verificationYears' | 'line'>;

/** The register's text for where a meter answers: the DL/T 645 address, or `unit N` on a Modbus bus. */
export function addressText(m: { address?: string; unit?: number }): string {
  return m.address ?? `unit ${m.unit}`;
}

/** The Modbus unit id an address text names, or undefined for a DL/T 645 address. */
export function unitOf(address: string): number | undefined {
  const m = /^unit (\d{1,3})$/.exec(address);
  return m ? Number(m[1]) : undefined;
}

/** A point whose config line names another meter than the register: the register wins; the line should change. */
export interface AddressDisagreement {
  readonly meterId: string;
  readonly configAddress: string;
  readonly registerAddress: string;
  readonly line: number;
  /** A sentence for the person who keeps the config. */
  readonly message: string;
}

export function disagreements(store: Store, points: readonly RegisterPoint[], configFile: string): AddressDisagreement[] {
  const installed = store.register.installed();
  const out: AddressDisagreement[] = [];
  for (const p of points) {
    const asset = installed.get(p.id);
    const configAddress = addressText(p);
    if (!asset || asset.address === configAddress) continue;
    const key = p.address !== undefined ? `address: "${asset.address}"` : `unit: ${unitOf(asset.address) ?? asset.address}`;
    out.push({
      meterId: p.id,
      configAddress,
      registerAddress: asset.address,
      line: p.line,
      message: `meter ${p.id}: the config says ${configAddress}, the meter register says ${asset.address} (installed ${new Date(asset.installedAt).toISOString()}); the daemon polls ${asset.address}. Change ${configFile}:${p.line} to ${key}`,
    });
  }
  return out;
}

export interface RegisterStart {
  /** Each point with the address (and profile id) the register says it is polled at. */
  readonly points: ReadonlyMap<string, { address?: string; unit?: number; profile: string }>;
  readonly created: readonly MeterAsset[];
  readonly disagreements: readonly AddressDisagreement[];
}

/**
 * Registers every configured point that has no installed asset yet (its config address, reading source `config`)
 * and says where each point is polled. A point whose config address is installed at another point is left out of
 * the register (logged): no address is ever bound to two points at once.
 */
export function startRegister(
  store: Store,
  points: readonly RegisterPoint[],
  opts: { clock: Clock; logger?: Logger; configFile: string },
): RegisterStart {
  const log = (opts.logger ?? silentLogger).child({ component: 'register' });
  const created: MeterAsset[] = [];
  store.transaction(
    (tx) => {
      const installed = store.register.installed();
      for (const p of points) {
        if (installed.has(p.id)) continue;
        const address = addressText(p);
        const holder = store.register.atAddress(p.busId, address);
        if (holder) {
          log.error(
            { meter: p.id, address, heldBy: holder.pointId },
            `meter ${p.id}: address ${address} is installed at point ${holder.pointId} in the meter register; ${p.id} is not registered (change one of the two config lines)`,
          );
          continue;
        }
        const asset = installAsset(tx, {
          pointId: p.id,
          busId: p.busId,
          address,
          profile: p.profile.id,
          installedAt: opts.clock.now(),
          initialSource: 'config',
        });
        created.push(asset);
        enqueueAssetMessage(tx, asset, p.verificationYears, opts.clock.now());
      }
    },
    { durable: true },
  );
  const found = disagreements(store, points, opts.configFile);
  for (const d of found)
    log.warn({ meter: d.meterId, configAddress: d.configAddress, registerAddress: d.registerAddress, line: d.line }, d.message);
  const installed = store.register.installed();
  const where = new Map<string, { address?: string; unit?: number; profile: string }>();
  for (const p of points) {
    const asset = installed.get(p.id);
    if (!asset)
      where.set(p.id, p.address !== undefined ? { address: p.address, profile: p.profile.id } : { unit: p.unit, profile: p.profile.id });
    else if (p.address !== undefined) where.set(p.id, { address: asset.address, profile: asset.profile });
    else where.set(p.id, { unit: unitOf(asset.address) ?? p.unit, profile: asset.profile });
  }
  if (created.length > 0) log.info({ registered: created.length }, 'meters registered as installed assets of their points');
  return { points: where, created, disagreements: found };
}

/** When an asset is due for periodic verification or rotation (周检/轮换): its install time plus the period. */
export function verificationDue(asset: Pick<MeterAsset, 'installedAt'>, periodYears: number): number {
  const d = new Date(asset.installedAt);
  d.setUTCFullYear(d.getUTCFullYear() + periodYears);
  return d.getTime();
}

/** The register line of one asset, as the CLI, the asset topic and the replacement result show it. */
export function assetView(asset: MeterAsset, periodYears?: number): Record<string, unknown> {
  return {
    asset: asset.id,
    assetNo: asset.assetNo,
    address: asset.address,
    bus: asset.busId,
    profile: asset.profile,
    installedAt: new Date(asset.installedAt).toISOString(),
    initial: asset.initial && { ...readingView(asset.initial), source: asset.initialSource },
    ...(asset.removedAt !== null
      ? {
          removedAt: new Date(asset.removedAt).toISOString(),
          final: asset.final && { ...readingView(asset.final), source: asset.finalSource },
          reason: asset.reason,
        }
      : {}),
    operator: asset.operator,
    ...(periodYears !== undefined && asset.removedAt === null
      ? { verification: { periodYears, dueAt: new Date(verificationDue(asset, periodYears)).toISOString() } }
      : {}),
  };
}

/** Balances in display units (yuan or kWh) beside the exact integers. */
function readingView(r: NonNullable<MeterAsset['initial']>): Record<string, unknown> {
  return {
    importKwh: r.importKwh,
    exportKwh: r.exportKwh,
    balance: r.balance === null ? null : r.balance / 100,
    overdraft: r.overdraft === null ? null : r.overdraft / 100,
    purchaseCount: r.purchaseCount,
  };
}

/** Retained `meters/<id>/asset`: the physical meter serving the point now, through the outbox. */
export function enqueueAssetMessage(tx: Tx, asset: MeterAsset, periodYears: number, now: number, previous?: MeterAsset): void {
  enqueue(tx, {
    topic: `meters/${asset.pointId}/asset`,
    class: 'state',
    retain: true,
    payload: {
      meter: asset.pointId,
      ...assetView(asset, periodYears),
      ...(previous ? { previous: assetView(previous) } : {}),
      ts: new Date(now).toISOString(),
    },
  });
}
