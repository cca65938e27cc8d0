import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** How systemd starts the daemon from scripts/install/meterd.service: its Environment= lines and Node's own flags. */
export interface UnitLaunch {
  /** NODE_ENV, NODE_OPTIONS, MALLOC_ARENA_MAX, … as systemd passes them. */
  readonly env: Readonly<Record<string, string>>;
  /** Flags between the node binary and bin/meterd.js in ExecStart (those NODE_OPTIONS may not carry). */
  readonly nodeFlags: readonly string[];
}

/** Read the unit the installer ships, so benchmarks and tests run the daemon the way a gateway does. */
export function unitLaunch(root: string): UnitLaunch {
  const unit = readFileSync(join(root, 'scripts/install/meterd.service'), 'utf8');
  const env = Object.fromEntries([...unit.matchAll(/^Environment="?([A-Z_]+)=([^"\n]*)"?$/gm)].map((m) => [m[1]!, m[2]!] as const));
  const flags = /^ExecStart=\S*node((?:\s+--\S+)*)\s+\S*bin\/meterd\.js/m.exec(unit)?.[1] ?? '';
  return { env, nodeFlags: flags.trim().split(/\s+/).filter(Boolean) };
}
