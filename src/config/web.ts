import { z } from 'zod';
import { parseDuration } from './duration.js';

/** `web:` in the gateway config: the local console (docs/web-console.md). */
export const webSchema = z.strictObject({
  /** host:port the console listens on, or `off`. Default 127.0.0.1:8080; any other host needs a user first. */
  listen: z.union([z.string().min(1), z.number()]).default('127.0.0.1:8080'),
  /** HTTPS: PEM certificate and key files. */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** A session ends after this long without a request (default 30m): a counter PC left open signs itself out. */
  sessionIdle: z.union([z.string(), z.number()]).default('30m'),
  /** `/metrics` in the Prometheus text format on its own listener, no sign-in (default off). */
  metrics: z.strictObject({ listen: z.union([z.string().min(1), z.number()]).optional() }).optional(),
});

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface WebConfig {
  /** null: `listen: off`. */
  readonly listen: ListenAddress | null;
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly sessionIdleMs: number;
  /** null: no metrics listener. */
  readonly metrics: ListenAddress | null;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);

/** True for an address only this machine can reach. */
export function isLocalAddress(a: ListenAddress): boolean {
  return LOCAL_HOSTS.has(a.host);
}

/** `host:port`, `[v6]:port`, or a bare port (on 127.0.0.1). */
export function parseListen(v: string | number): ListenAddress | string {
  if (typeof v === 'number' || /^\d+$/.test(v)) return portOf('127.0.0.1', String(v));
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d+)$/.exec(v.trim());
  if (!m) return `"${v}" is not host:port (write e.g. 127.0.0.1:8080, 0.0.0.0:8443 or [::1]:8080)`;
  return portOf(m[1] ?? m[2]!, m[3]!);
}

function portOf(host: string, port: string): ListenAddress | string {
  const n = Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) return `port ${port} is not 0 to 65535`;
  return { host, port: n };
}

/** The `web:` section resolved; problems go to `at` with their path. */
export function resolveWeb(
  raw: z.output<typeof webSchema> | undefined,
  at: (path: PropertyKey[], message: string) => void,
  abs: (p: string) => string,
): WebConfig {
  const r = raw ?? webSchema.parse({});
  const listenOf = (v: string | number, path: PropertyKey[]): ListenAddress | null => {
    if (v === 'off') return null;
    const a = parseListen(v);
    if (typeof a === 'string') {
      at(path, a);
      return null;
    }
    return a;
  };
  const idle = parseDuration(r.sessionIdle);
  if (idle === undefined || idle < 60_000 || idle > 7 * 86_400_000)
    at(['web', 'sessionIdle'], `"${r.sessionIdle}" is not a duration from 1m to 7d (write e.g. 30m, 8h)`);
  const metrics = r.metrics?.listen === undefined ? null : listenOf(r.metrics.listen, ['web', 'metrics', 'listen']);
  if (metrics !== null && !isLocalAddress(metrics))
    at(['web', 'metrics', 'listen'], `/metrics has no sign-in: it listens on this machine only (127.0.0.1:PORT or [::1]:PORT)`);
  return {
    listen: listenOf(r.listen, ['web', 'listen']),
    ...(r.tls ? { tls: { cert: abs(r.tls.cert), key: abs(r.tls.key) } } : {}),
    sessionIdleMs: idle ?? 30 * 60_000,
    metrics,
  };
}
