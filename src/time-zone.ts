import { readFileSync, readlinkSync, statSync } from 'node:fs';

// Intl.DateTimeFormat loads ICU's locale and calendar data the first time it is built: about 8 MB of resident memory
// on Node 20 (measured: 40.5 → 48.7 MB for a bare process), a sixth of what a two-meter gateway needs. The daemon
// therefore keeps its one zone in process.env.TZ and reads offsets from Date, which uses only ICU's zone table
// (+0.6 MB); Intl stays the answer for any other zone (the CLI, tests, a second gateway in one process).

let processZone: string | undefined;

/** Makes `zone` the process's local zone, so offsets in it come from Date; only the daemon's composition root calls it. */
export function adoptProcessTimeZone(zone: string): void {
  process.env.TZ = zone;
  processZone = zone;
}

/** The zone adopted by adoptProcessTimeZone, while process.env.TZ still says so. */
export function processTimeZone(): string | undefined {
  return processZone !== undefined && process.env.TZ === processZone ? processZone : undefined;
}

let zones: Set<string> | undefined;

/** True for an IANA zone name this Node knows (canonical names from ICU's table, aliases such as Asia/Calcutta too). */
export function isTimeZone(zone: string): boolean {
  zones ??= new Set(Intl.supportedValuesOf('timeZone'));
  if (zones.has(zone)) return true;
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(zone) || zone.includes('..')) return false;
  // An alias the system's zone database holds as a file (Etc/UTC, Asia/Calcutta) is one ICU knows too.
  if (!/^(posix|right)\//.test(zone) && statSync(`/usr/share/zoneinfo/${zone}`, { throwIfNoEntry: false })?.isFile()) return true;
  try {
    // Aliases are not listed; building a formatter is the only test, and the costly one, so it runs only for them.
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The machine's zone: $TZ, the /etc/localtime link, /etc/timezone, or Intl's answer as the last resort. */
export function hostTimeZone(): string {
  const candidates = [process.env.TZ?.replace(/^:/, ''), linkedZone(), fileZone()];
  for (const c of candidates) if (c && isTimeZone(c)) return c;
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function linkedZone(): string | undefined {
  try {
    return /zoneinfo\/(.+)$/.exec(readlinkSync('/etc/localtime'))?.[1];
  } catch {
    return undefined;
  }
}

function fileZone(): string | undefined {
  try {
    return readFileSync('/etc/timezone', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
