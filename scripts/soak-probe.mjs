// Loaded into the daemon under soak with `--import`: every SOAK_SAMPLE_MS it collects garbage (the daemon runs with
// --expose-gc) and appends one JSON line of memory and live-handle figures to SOAK_PROBE_FILE. Collecting first makes
// heapUsed the live heap, so a slope in it is a leak and not the collector's rhythm. It never touches the daemon.
import { appendFileSync } from 'node:fs';

const file = process.env.SOAK_PROBE_FILE;
const every = Number(process.env.SOAK_SAMPLE_MS ?? 60_000);
if (file) {
  const started = performance.now();
  const sample = () => {
    globalThis.gc?.();
    const m = process.memoryUsage();
    const resources = process.getActiveResourcesInfo();
    const timers = resources.filter((r) => r === 'Timeout').length;
    appendFileSync(
      file,
      `${JSON.stringify({
        t: Math.round(performance.now() - started),
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        handles: resources.length,
        timers,
      })}\n`,
    );
  };
  setInterval(sample, every).unref();
}
