import { dirname, isAbsolute, resolve } from 'node:path';
import { ProfileError } from '../profiles/load.js';
import { BUILTIN_PROFILES_DIR, loadProfiles } from '../profiles/registry.js';
import { ConfigError, parseConfigSource, readConfigText, type GatewayConfig } from './load.js';
import { YamlSource } from './yaml-source.js';

export * from './load.js';
export { allowanceTargets, isCalendarDate, type AllowanceConfig, type AllowanceRoundConfig } from './allowances.js';
export { parseDuration, formatDuration } from './duration.js';
export { thresholdsFor, DEFAULT_THRESHOLDS, type AlertsConfig, type AlertThresholds, type ClockConfig } from './alerts.js';
export { LIMITS, MAX_CONFIG_BYTES } from './limits.js';

/**
 * Load a config file the way `meterd run` does: read the profile folders it names, load the shipped and site
 * profiles, then validate everything, listing every problem with file and line. The file is refused before parsing
 * when it is not a regular file or over MAX_CONFIG_BYTES, and parsed as YAML once.
 */
export function loadGatewayConfig(path: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const src = new YamlSource(path, readConfigText(path));
  let dirs: string[] = [];
  // Syntax errors are reported, with lines, by parseConfigSource below; the value is undefined then.
  const listed = (src.toJS() as { profiles?: { dirs?: unknown } } | null | undefined)?.profiles?.dirs;
  if (Array.isArray(listed))
    dirs = listed.filter((d): d is string => typeof d === 'string').map((d) => (isAbsolute(d) ? d : resolve(dirname(resolve(path)), d)));
  let profiles: ReturnType<typeof loadProfiles>;
  try {
    profiles = loadProfiles([BUILTIN_PROFILES_DIR, ...dirs]);
  } catch (err) {
    if (err instanceof ProfileError) throw new ConfigError(err.issues);
    throw new ConfigError([{ file: path, line: src.lineOf(['profiles', 'dirs']), path: 'profiles.dirs', message: (err as Error).message }]);
  }
  const r = parseConfigSource(src, { env, profiles });
  if (!r.ok) throw new ConfigError(r.issues);
  return r.config;
}
export { parseBrokerUrl, redactUrl, BROKER_PROTOCOLS, type BrokerAddress } from './broker-url.js';
export { isLocalAddress, parseListen, type ListenAddress, type WebConfig } from './web.js';
export type { ProtectedWindow, SupplySettings } from './supply.js';
