import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.js';
import { MeterdError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  addAlertNote,
  clearAlert,
  enqueue,
  insertAlert,
  saveDetectorMemory,
  updateAlert,
  type AlertNote,
  type AlertRecord,
  type PointValue,
  type Store,
  type Tx,
} from '../../store/index.js';
import { detect, type DetectorMemory, type DetectorSettings, type MeterModel, type Observation } from './detectors.js';
import { CLEARED_BY, type AlertKind, type Severity } from './kinds.js';

/** A meter as the alert service sees it: its model (from the profile and tags) and its thresholds. */
export interface AlertMeter {
  readonly meterId: string;
  readonly model: MeterModel;
  readonly settings: DetectorSettings;
}

/** Whether the gateway's own wall clock is known to be right (NTP synchronised, or at least past a sane floor). */
export interface ClockTrust {
  synced(): boolean;
}

export const TRUSTED_CLOCK: ClockTrust = { synced: () => true };

export interface AlertServiceOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly meters: readonly AlertMeter[];
  readonly clockTrust?: ClockTrust;
  readonly logger?: Logger;
  /** Called after the service committed something of its own (an acknowledgement, a clock verdict), to wake the uplink. */
  readonly onCommitted?: () => void;
}

export type AlertsErrorCode = 'ALERT_NOT_FOUND' | 'ALERT_NOT_ACKNOWLEDGEABLE';

export class AlertsError extends MeterdError<AlertsErrorCode> {
  override readonly name = 'AlertsError';
}

/** What a raise or clear looks like on `meters/<id>/alerts` (docs/mqtt-api.md § Alerts). */
export interface AlertMessage {
  readonly alertId: string;
  readonly meter: string;
  readonly kind: string;
  readonly severity: string;
  readonly state: 'raised' | 'cleared';
  readonly ts: string;
  readonly evidence: Readonly<Record<string, unknown>>;
  readonly unsynced?: true;
  readonly clearedBy?: string;
}

export const ACTIVE_ALERTS_TOPIC = 'alerts/active';

/** One source's run of verdicts: whether it is bad now, and how many bad or good verdicts in a row it has had. */
interface SourceState {
  bad: boolean;
  badRun: number;
  goodRun: number;
}

interface MeterMemory extends DetectorMemory {
  sources?: Record<string, SourceState>;
  /** When the point's meter was last replaced: readings taken before it belong to the old meter. */
  replacedAt?: number;
}

const SEVERITY_RANK: Record<string, number> = { info: 0, warning: 1, critical: 2 };

/**
 * Turns detector verdicts into alert episodes: one raise per episode however many polls see it, a clear after
 * `clearAfter` good polls in a row (or a person's acknowledgement for the kinds that need one), each written to
 * SQLite with its outbox message in the poll's own transaction, so a restart neither re-raises nor forgets.
 */
export class AlertService {
  private readonly meters = new Map<string, AlertMeter>();
  private readonly memories = new Map<string, MeterMemory>();
  private readonly savedMemory = new Map<string, string>();
  private readonly active = new Map<string, AlertRecord>();
  private activeChanged = false;
  /** A raise or clear was written with NORMAL sync in the poll's transaction: sync it before the uplink sends it. */
  private needsSync = false;
  private readonly log: Logger;
  private readonly trust: ClockTrust;

  constructor(private readonly opts: AlertServiceOptions) {
    for (const m of opts.meters) this.meters.set(m.meterId, m);
    this.log = (opts.logger ?? silentLogger).child({ component: 'alerts' });
    this.trust = opts.clockTrust ?? TRUSTED_CLOCK;
    this.load();
  }

  /** Active alerts, oldest first. */
  list(): AlertRecord[] {
    return [...this.active.values()].sort((a, b) => a.raisedAt - b.raisedAt);
  }

  activeCount(): number {
    return this.active.size;
  }

  /** An answered reading of a meter, inside the poll's transaction. */
  reading(tx: Tx, meterId: string, at: number, values: Readonly<Record<string, PointValue>>): void {
    const meter = this.meters.get(meterId);
    if (!meter) return;
    const memory = this.memoryOf(meterId);
    // The old meter's last reading, stored after the swap: not compared with the new meter's registers.
    if (memory.replacedAt !== undefined && at < memory.replacedAt) return;
    const obs = detect(meter.model, meter.settings, memory, at, values);
    obs.push({ kind: 'comm-loss', source: 'poll', bad: false });
    this.apply(tx, meter, memory, at, obs);
    this.saveMemory(tx, meterId, memory);
  }

  /** A failed poll of a meter (it did not answer), inside the poll's transaction. */
  failure(tx: Tx, meterId: string, at: number, info: { failures: number; offline: boolean; code: string }): void {
    const meter = this.meters.get(meterId);
    if (!meter || !info.offline) return;
    const memory = this.memoryOf(meterId);
    this.apply(tx, meter, memory, at, [
      { kind: 'comm-loss', source: 'poll', bad: true, evidence: { consecutiveFailures: info.failures, lastError: info.code } },
    ]);
    this.saveMemory(tx, meterId, memory);
  }

  /** A verdict from outside the poll (the clock keeper, the books, line loss), in its own transaction or the caller's. */
  observe(meterId: string, obs: readonly Observation[], tx?: Tx): void {
    const meter = this.meters.get(meterId);
    if (!meter) return;
    const run = (t: Tx) => {
      const memory = this.memoryOf(meterId);
      this.apply(t, meter, memory, this.opts.clock.now(), [...obs]);
      this.saveMemory(t, meterId, memory);
      this.batchEnd(t);
    };
    if (tx) {
      run(tx);
      return;
    }
    try {
      this.opts.store.transaction(run, { durable: true });
    } catch (err) {
      this.rolledBack();
      throw err;
    }
    this.needsSync = false;
    this.opts.onCommitted?.();
  }

  /** After a batch of readings: the retained active set, when it changed. */
  batchEnd(tx: Tx): void {
    if (!this.activeChanged) return;
    this.activeChanged = false;
    enqueue(tx, {
      topic: ACTIVE_ALERTS_TOPIC,
      class: 'state',
      retain: true,
      payload: {
        ts: new Date(this.opts.clock.now()).toISOString(),
        alerts: this.list().map((a) => ({
          alertId: a.alertId,
          meter: a.meterId,
          kind: a.kind,
          severity: a.severity,
          raisedAt: new Date(a.raisedAt).toISOString(),
        })),
      },
    });
  }

  /** The poll's transaction failed: what this service changed in memory is reloaded from the store. */
  rolledBack(): void {
    this.needsSync = false;
    this.load();
  }

  /**
   * The poll's transaction committed. An alert is a FULL-sync message (docs/durability.md): were a raise lost to a
   * power cut after the station got it, the next poll would raise it again under a new id and the first would never clear.
   */
  committed(): void {
    if (!this.needsSync) return;
    this.needsSync = false;
    this.opts.store.sync();
  }

  /**
   * A technician acknowledges an alert and leaves a note. Kinds that clear by acknowledgement (cover-open,
   * purchase-mismatch, malignant-load) are cleared; others keep running until their cause is gone, with the note kept.
   */
  acknowledge(req: { alertId: string; operator: string; note?: string }): { alert: AlertRecord; cleared: boolean; notes: AlertNote[] } {
    const now = this.opts.clock.now();
    let cleared = false;
    try {
      this.opts.store.transaction(
        (tx) => {
          const alert = this.opts.store.alerts.get(req.alertId);
          if (!alert) throw new AlertsError('ALERT_NOT_FOUND', `no alert ${req.alertId}; list them with meterd alerts -c FILE --all`);
          addAlertNote(tx, { alertId: alert.alertId, at: now, operator: req.operator, action: 'ack', note: req.note ?? null });
          if (alert.clearedAt === null && CLEARED_BY[alert.kind as AlertKind] === 'ack') {
            this.clear(tx, alert, now, req.operator);
            cleared = true;
          }
          this.batchEnd(tx);
        },
        { durable: true },
      );
    } catch (err) {
      if (!(err instanceof AlertsError)) this.rolledBack();
      throw err;
    }
    this.needsSync = false;
    this.opts.onCommitted?.();
    const alert = this.opts.store.alerts.get(req.alertId)!;
    this.log.info({ alert: alert.alertId, meter: alert.meterId, kind: alert.kind, operator: req.operator, cleared }, 'alert acknowledged');
    return { alert, cleared, notes: this.opts.store.alerts.notes(req.alertId) };
  }

  private apply(tx: Tx, meter: AlertMeter, memory: MeterMemory, at: number, observations: readonly Observation[]): void {
    memory.sources ??= {};
    const sources = memory.sources;
    const clearAfter = meter.settings.clearAfter;
    const touched = new Set<AlertKind>();
    for (const o of observations) {
      const key = `${o.kind}|${o.source}`;
      sources[key] ??= { bad: false, badRun: 0, goodRun: 0 };
      const s = sources[key];
      touched.add(o.kind);
      if (o.bad) {
        const wasBad = s.bad;
        s.badRun++;
        s.goodRun = 0;
        if (s.badRun < (o.raiseAfter ?? 1)) continue;
        s.bad = true;
        const current = this.active.get(activeKey(meter.meterId, o.kind));
        if (current) {
          this.escalate(tx, current, o, meter.settings);
          continue;
        }
        // A kind a person clears is raised on a new event (a counter rose, a bit came on), not again while it lasts.
        if (CLEARED_BY[o.kind] === 'ack' && wasBad && !o.pulse) continue;
        this.raise(tx, meter, o, at);
      } else {
        s.badRun = 0;
        if (!s.bad) continue;
        if (++s.goodRun >= (o.clearAfter ?? clearAfter)) {
          s.bad = false;
          s.goodRun = 0;
        }
      }
    }
    // A source back to "good, nothing counted" holds nothing worth keeping: dropped, it costs no memory per meter
    // (eleven sources of a healthy meter were 1 KB of objects and 600 bytes of stored JSON each).
    for (const o of observations) {
      const key = `${o.kind}|${o.source}`;
      const s = sources[key];
      if (s && !s.bad && s.badRun === 0 && s.goodRun === 0) delete sources[key];
    }
    if (Object.keys(sources).length === 0) delete memory.sources;
    for (const kind of touched) {
      if (CLEARED_BY[kind] !== 'auto') continue;
      const current = this.active.get(activeKey(meter.meterId, kind));
      if (!current) continue;
      const stillBad = Object.entries(sources).some(([key, s]) => s.bad && key.startsWith(`${kind}|`));
      if (!stillBad) this.clear(tx, current, at, 'detector');
    }
  }

  private raise(tx: Tx, meter: AlertMeter, o: Observation, at: number): void {
    const severity = o.severity ?? meter.settings.severity[o.kind];
    const unsynced = !this.trust.synced();
    const record: AlertRecord = {
      alertId: `${meter.meterId}:${o.kind}:${at}`,
      meterId: meter.meterId,
      kind: o.kind,
      severity,
      raisedAt: at,
      clearedAt: null,
      clearedBy: null,
      evidence: { ...(o.evidence ?? {}), source: o.source },
      unsynced,
    };
    insertAlert(tx, record);
    this.active.set(activeKey(meter.meterId, o.kind), record);
    this.activeChanged = true;
    this.publish(tx, record, 'raised', at);
    this.log.warn({ meter: meter.meterId, alert: record.alertId, kind: o.kind, severity, evidence: record.evidence }, 'alert raised');
  }

  /** An active alert seen worse than when it was raised takes the higher severity, once. */
  private escalate(tx: Tx, current: AlertRecord, o: Observation, settings: DetectorSettings): void {
    const severity: Severity = o.severity ?? settings.severity[o.kind];
    if ((SEVERITY_RANK[severity] ?? 0) <= (SEVERITY_RANK[current.severity] ?? 0)) return;
    const evidence = { ...(o.evidence ?? {}), source: o.source };
    updateAlert(tx, current.alertId, severity, evidence);
    const next: AlertRecord = { ...current, severity, evidence };
    this.active.set(activeKey(current.meterId, current.kind), next);
    this.activeChanged = true;
    this.publish(tx, next, 'raised', this.opts.clock.now());
  }

  private clear(tx: Tx, alert: AlertRecord, at: number, by: string): void {
    clearAlert(tx, alert.alertId, at, by);
    this.active.delete(activeKey(alert.meterId, alert.kind));
    this.activeChanged = true;
    this.publish(tx, { ...alert, clearedAt: at, clearedBy: by }, 'cleared', at);
    this.log.info({ meter: alert.meterId, alert: alert.alertId, kind: alert.kind, by }, 'alert cleared');
  }

  private publish(tx: Tx, a: AlertRecord, state: 'raised' | 'cleared', at: number): void {
    const message: AlertMessage = {
      alertId: a.alertId,
      meter: a.meterId,
      kind: a.kind,
      severity: a.severity,
      state,
      ts: new Date(at).toISOString(),
      evidence: a.evidence,
      ...(a.unsynced ? { unsynced: true as const } : {}),
      ...(state === 'cleared' && a.clearedBy ? { clearedBy: a.clearedBy } : {}),
    };
    enqueue(tx, { topic: `meters/${a.meterId}/alerts`, class: 'alert', payload: message });
    this.needsSync = true;
  }

  /**
   * A new physical meter serves the point from `at` (docs/lifecycle.md): its registers start afresh, so the detectors
   * forget the old meter's (energy-backwards and energy-stuck must not compare the two), and a reading taken before
   * the swap that is committed after it is not judged. The state of open episodes is kept, so they still clear.
   */
  meterReplaced(tx: Tx, meterId: string, at: number): void {
    const old = this.memoryOf(meterId);
    const fresh: MeterMemory = { replacedAt: at, ...(old.sources ? { sources: old.sources } : {}) };
    this.memories.set(meterId, fresh);
    this.saveMemory(tx, meterId, fresh);
  }

  /**
   * The point is served by a meter of another model from now on (a replacement's rebind, docs/lifecycle.md): its
   * readings are judged by the new profile's status bits, counters and relay bits. What the old model reported that
   * the new one cannot (a status bit it does not name, a counter it does not have) will never be seen good again, so
   * it is let go now, and a self-clearing alert left with nothing bad is cleared `by: replacement`; an alert a person
   * clears stays for them. The old model is not kept (models are shared per profile).
   */
  meterRebound(meter: AlertMeter): void {
    const old = this.meters.get(meter.meterId);
    if (!old) return;
    this.meters.set(meter.meterId, meter);
    if (old.model === meter.model) return;
    const memory = this.memories.get(meter.meterId);
    const kept = modelSources(meter.model);
    const gone = [...modelSources(old.model)].filter((key) => !kept.has(key) && memory?.sources?.[key] !== undefined);
    if (gone.length === 0) return;
    try {
      this.opts.store.transaction(
        (tx) => {
          const sources = memory!.sources!;
          for (const key of gone) delete sources[key];
          if (Object.keys(sources).length === 0) delete memory!.sources;
          for (const kind of new Set(gone.map((key) => key.slice(0, key.indexOf('|')) as AlertKind))) {
            const current = this.active.get(activeKey(meter.meterId, kind));
            if (!current || CLEARED_BY[kind] !== 'auto') continue;
            if (!Object.entries(sources).some(([key, s]) => s.bad && key.startsWith(`${kind}|`)))
              this.clear(tx, current, this.opts.clock.now(), 'replacement');
          }
          this.saveMemory(tx, meter.meterId, memory!);
          this.batchEnd(tx);
        },
        { durable: true },
      );
    } catch (err) {
      this.rolledBack();
      this.log.error({ err, meter: meter.meterId }, "the old model's alert sources could not be let go");
      return;
    }
    this.needsSync = false;
    this.opts.onCommitted?.();
  }

  private memoryOf(meterId: string): MeterMemory {
    let m = this.memories.get(meterId);
    if (!m) {
      m = {};
      this.memories.set(meterId, m);
    }
    return m;
  }

  private saveMemory(tx: Tx, meterId: string, memory: MeterMemory): void {
    const json = JSON.stringify(memory);
    // What was stored is remembered by its digest, not its text: 28 bytes a meter instead of a few hundred.
    const digest = digestOf(json);
    if (this.savedMemory.get(meterId) === digest) return;
    saveDetectorMemory(tx, meterId, json);
    this.savedMemory.set(meterId, digest);
  }

  private load(): void {
    this.active.clear();
    this.memories.clear();
    this.savedMemory.clear();
    for (const a of this.opts.store.alerts.active()) this.active.set(activeKey(a.meterId, a.kind), a);
    for (const [meterId, json] of this.opts.store.alerts.detectorMemories()) {
      try {
        this.memories.set(meterId, JSON.parse(json) as MeterMemory);
        this.savedMemory.set(meterId, digestOf(json));
      } catch (err) {
        this.log.warn({ meter: meterId, err }, 'detector memory unreadable: starting afresh for this meter');
      }
    }
  }
}

/** The `kind|source` keys of the verdicts only a model's profile gives: its status bits, counters and relay bits. */
function modelSources(model: MeterModel): Set<string> {
  const keys = new Set<string>();
  for (const s of model.statusBits) keys.add(`${s.kind}|${s.point}.${s.bit}`);
  for (const c of model.counters) keys.add(`${c.kind}|${c.point}`);
  if (model.relay) keys.add('relay-mismatch|relay-bits');
  return keys;
}

function digestOf(json: string): string {
  return createHash('sha1').update(json).digest('base64');
}

function activeKey(meterId: string, kind: string): string {
  return `${meterId}|${kind}`;
}
