import { realTimers, type Timers } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { enqueue, type Store } from '../store/index.js';

export interface RecallOptions {
  readonly store: Store;
  readonly timers?: Timers;
  /** Recalled readings are queued this many at a time… */
  readonly chunk: number;
  /** …and only while fewer than this many messages wait in the outbox, so live telemetry is never held behind them. */
  readonly maxBacklog?: number;
  /** How often a recall in progress looks whether the outbox has room for its next chunk. */
  readonly tickMs?: number;
  readonly logger?: Logger;
  /** Wakes the uplink after a chunk was queued. */
  readonly onCommitted?: () => void;
}

/** What a recall of `fromSeq..toSeq` will send: how many readings are still stored, and the ranges that are gone. */
export interface RecallPlan {
  readonly found: number;
  /** Inclusive `[from, to]` ranges with no stored reading: pruned by retention or the disk cap, or never issued. */
  readonly missing: readonly (readonly [number, number])[];
}

interface Job {
  readonly requestId: string;
  next: number;
  readonly to: number;
  sent: number;
}

const DEFAULT_TICK_MS = 200;

/**
 * Republishes stored readings by their `seq` (补召: the station asks for what its broker lost), with their original
 * `ts`, `seq` and values and `"recalled": true`, on their usual topics, through the outbox. Paced: a chunk at a time,
 * only while the outbox is nearly empty, so live readings keep flowing and are never queued behind a recall.
 * A recall in progress does not survive a restart; the station asks again for what it still misses.
 */
export class RecallService {
  private readonly jobs: Job[] = [];
  private readonly timers: Timers;
  private readonly log: Logger;
  private timer: unknown;
  private stopped = false;

  constructor(private readonly opts: RecallOptions) {
    this.timers = opts.timers ?? realTimers;
    this.log = (opts.logger ?? silentLogger).child({ component: 'recall' });
  }

  /** Which readings of `fromSeq..toSeq` are still stored. */
  plan(fromSeq: number, toSeq: number): RecallPlan {
    const missing: [number, number][] = [];
    let expect = fromSeq;
    let found = 0;
    for (const seq of this.opts.store.readings.seqsBetween(fromSeq, toSeq)) {
      if (seq > expect) missing.push([expect, seq - 1]);
      expect = seq + 1;
      found++;
    }
    if (expect <= toSeq) missing.push([expect, toSeq]);
    return { found, missing };
  }

  /** Queues the stored readings of `fromSeq..toSeq` for republishing, paced; returns what will be sent. */
  recall(requestId: string, fromSeq: number, toSeq: number): RecallPlan {
    const plan = this.plan(fromSeq, toSeq);
    if (plan.found > 0) {
      this.jobs.push({ requestId, next: fromSeq, to: toSeq, sent: 0 });
      this.log.info({ requestId, fromSeq, toSeq, found: plan.found, missing: plan.missing.length }, 'recall of readings started');
      this.arm(0);
    }
    return plan;
  }

  /** Recalls still sending. */
  inProgress(): number {
    return this.jobs.length;
  }

  stop(): void {
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    if (this.stopped || this.timer !== undefined || this.jobs.length === 0) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.tick();
    }, ms);
  }

  private tick(): void {
    const job = this.jobs[0];
    if (!job || this.stopped) return;
    const { store, chunk } = this.opts;
    try {
      if (store.outbox.counts().total < (this.opts.maxBacklog ?? chunk)) {
        const rows = store.readings.bySeq(job.next, job.to, chunk);
        store.transaction((tx) => {
          for (const r of rows)
            enqueue(tx, {
              topic: `meters/${r.meterId}/readings`,
              class: 'telemetry',
              payload: {
                seq: r.seq,
                meter: r.meterId,
                ...(r.address !== undefined ? { address: r.address } : {}),
                ts: new Date(r.takenAt).toISOString(),
                values: r.values,
                ...(r.unsynced ? { unsynced: true } : {}),
                recalled: true,
              },
            });
        });
        job.sent += rows.length;
        job.next = rows.length < chunk ? job.to + 1 : rows.at(-1)!.seq! + 1;
        if (rows.length > 0) this.opts.onCommitted?.();
        if (job.next > job.to) {
          this.jobs.shift();
          this.log.info({ requestId: job.requestId, sent: job.sent }, 'recall of readings queued in full');
        }
      }
    } catch (err) {
      this.log.error({ err, requestId: job.requestId }, 'recall could not queue its next chunk; trying again');
    }
    this.arm(this.opts.tickMs ?? DEFAULT_TICK_MS);
  }
}
