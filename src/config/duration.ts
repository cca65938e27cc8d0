/** Parse a duration as people write it in YAML: "500ms", "10s", "15m", "1h", "2d", or a bare number of seconds. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text * 1000 : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : unit === 'h' ? 3_600_000 : 86_400_000;
  return Math.round(n * factor);
}

/** Milliseconds back to the shortest exact text ("15m"), for help output and logs. */
export function formatDuration(ms: number): string {
  for (const [unit, f] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= f && ms % f === 0) return `${ms / f}${unit}`;
  }
  return `${ms}ms`;
}

const EXAMPLES = ['20ms', '500ms', '2s', '10s', '5m', '1h'];

/**
 * Why `text` is not a duration of at least `minMs`, with examples that would be accepted there ("100ms" for a field
 * whose minimum is 1 s is answered with "write e.g. 2s, 10s, 5m", never with a value it would refuse too).
 */
export function durationProblem(text: string | number, minMs: number): string {
  const valid = EXAMPLES.filter((e) => parseDuration(e)! >= minMs).slice(0, 3);
  const examples = valid.length > 0 ? valid : [formatDuration(minMs)];
  return `"${text}" is not a duration of at least ${formatDuration(minMs)} (write e.g. ${examples.join(', ')})`;
}
