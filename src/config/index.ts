import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse } from 'yaml';
import { ProfileError } from '../profiles/load.js';
import { BUILTIN_PROFILES_DIR, loadProfiles } from '../profiles/registry.js';
import { ConfigError, parseConfig, type GatewayConfig } from './load.js';

export * from './load.js';
export { parseDuration, formatDuration } from './duration.js';

/**
 * Load a config file the way `meterd run` does: read the profile folders it names, load the shipped and site
 * profiles, then validate everything, listing every problem with file and line.
 */
export function loadGatewayConfig(path: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file: path, line: 0, path: '', message: `cannot read the config file: ${(err as Error).message}` }]);
  }
  let dirs: string[] = [];
  try {
    const raw = parse(text) as { profiles?: { dirs?: unknown } } | null;
    const listed = raw?.profiles?.dirs;
    if (Array.isArray(listed))
      dirs = listed.filter((d): d is string => typeof d === 'string').map((d) => (isAbsolute(d) ? d : resolve(dirname(resolve(path)), d)));
  } catch {
    // Syntax errors are reported, with lines, by parseConfig below.
  }
  let profiles: ReturnType<typeof loadProfiles>;
  try {
    profiles = loadProfiles([BUILTIN_PROFILES_DIR, ...dirs]);
  } catch (err) {
    if (err instanceof ProfileError) throw new ConfigError(err.issues);
    throw new ConfigError([{ file: path, line: 0, path: 'profiles.dirs', message: (err as Error).message }]);
  }
  const r = parseConfig(text, path, { env, profiles });
  if (!r.ok) throw new ConfigError(r.issues);
  return r.config;
}
export { parseBrokerUrl, redactUrl, BROKER_PROTOCOLS, type BrokerAddress } from './broker-url.js';
