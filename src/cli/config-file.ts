import { ConfigError, loadGatewayConfig, type GatewayConfig } from '../config/index.js';
import { formatIssue } from '../config/yaml-source.js';
import { CliError } from './errors.js';

/** The gateway config for a command that reads it (`-c FILE`); every problem in it is one CONFIG_INVALID error. */
export function loadConfigFile(path: string): GatewayConfig {
  try {
    return loadGatewayConfig(path);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError('CONFIG_INVALID', err.issues.map(formatIssue).join('\n'));
    throw err;
  }
}
