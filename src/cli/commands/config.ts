import type { Command } from 'commander';
import { redactUrl } from '../../config/broker-url.js';
import { ConfigError, loadGatewayConfig } from '../../config/index.js';
import { formatIssue } from '../../config/yaml-source.js';
import { CliError } from '../errors.js';
import { registerDisagreements } from '../register-check.js';

export function registerConfigCommand(program: Command, io: { out: (line: string) => void }): void {
  const config = program.command('config').description('check a gateway configuration without starting anything');
  config
    .command('check')
    .description('validate a config file and the profiles it uses; every problem is listed as file:line: field: what was expected')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .addHelpText('after', '\nExample:\n  meterd config check -c /etc/meterd/meterd.yaml\n')
    .action((opts: { config: string }) => {
      try {
        const c = loadGatewayConfig(opts.config);
        for (const w of c.warnings) io.out(`warning: ${formatIssue(w)}`);
        for (const d of registerDisagreements(c)) io.out(`warning: ${c.source}:${d.line}: ${d.message}`);
        io.out(
          `${opts.config}: ok — gateway ${c.gateway.id}, ${c.buses.length} bus(es), ${c.meters.length} meter(s)${c.allowances.length > 0 ? `, ${c.allowances.length} allowance(s)` : ''}, broker ${redactUrl(c.mqtt.url)}, data in ${c.gateway.dataDir}`,
        );
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        for (const i of err.issues) io.out(formatIssue(i));
        throw new CliError('CONFIG_INVALID', `${err.issues.length} problem(s) in ${opts.config}`);
      }
    });
}
