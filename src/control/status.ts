/**
 * What `meterd status` shows of a running daemon, as the control socket sends it. Fields other features fill
 * (`alerts.active`, `batches.inProgress`) are 0 until the gateway composes them in (src/daemon/gateway.ts).
 */
export interface DaemonStatus {
  readonly version: string;
  /** `bundle`: the production build (what a gateway should run); `sources`: TypeScript through tsx, ~100 MB more. */
  readonly build: 'bundle' | 'sources';
  readonly gatewayId: string;
  readonly pid: number;
  /** ISO time the gateway started. */
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly broker: { readonly url: string; readonly connected: boolean };
  readonly buses: readonly {
    readonly id: string;
    readonly state: string;
    /** Share of the wall time the bus was busy, 0..1. */
    readonly utilisation: number;
    readonly queued: number;
    readonly skippedPolls: number;
  }[];
  readonly meters: { readonly total: number; readonly online: number; readonly offline: number; readonly unreachable: number };
  readonly outbox: { readonly depth: number; readonly oldestAgeSeconds: number | null; readonly deadLetters: number };
  readonly commands: { readonly running: number };
  readonly alerts: { readonly active: number };
  readonly batches: { readonly inProgress: number };
  /** process.memoryUsage() in MiB, rounded to 0.1. */
  readonly memoryMiB: { readonly rss: number; readonly heapUsed: number; readonly external: number };
}
