import type { Command } from 'commander';
import { ConfigError, loadGatewayConfig } from '../../config/index.js';
import { formatIssue } from '../../config/yaml-source.js';
import { realTimers, systemClock } from '../../clock.js';
import { serveConsole } from '../../daemon/console.js';
import { startGateway } from '../../daemon/gateway.js';
import { SUPPLY_HOLDS, type SupplyHold } from '../../services/supply/service.js';
import { adoptProcessTimeZone } from '../../time-zone.js';
import { installLastResort } from '../../daemon/last-resort.js';
import { createLogger } from '../../log.js';
import { CliError } from '../errors.js';

export function registerRunCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('run')
    .description('run the gateway daemon: poll every meter, keep every reading in SQLite, deliver it over MQTT')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML), e.g. /etc/meterd/meterd.yaml')
    .option('--log-level <level>', "fatal, error, warn, info, debug or trace (default: the config's log.level, else info)")
    .addHelpText(
      'after',
      `
Example:
  meterd run -c /etc/meterd/meterd.yaml --log-level debug

Logs are JSON lines on stderr, one event per line with the bus and meter id.
SIGTERM or Ctrl-C: finish the bus exchange in flight, stop polling, flush, close the database.
A second signal exits at once.`,
    )
    .action(async (opts: { config: string; logLevel?: string }) => {
      let config: ReturnType<typeof loadGatewayConfig>;
      try {
        config = loadGatewayConfig(opts.config);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        for (const i of err.issues) io.out(formatIssue(i));
        throw new CliError('CONFIG_INVALID', `${err.issues.length} problem(s) in ${opts.config}; nothing was started`);
      }
      // The daemon lives in its gateway's zone: offsets come from Date, not Intl (src/time-zone.ts says why).
      adoptProcessTimeZone(config.gateway.timeZone);
      const logger = createLogger((opts.logLevel ?? config.logLevel) as 'info');
      installLastResort(logger);
      let gateway: Awaited<ReturnType<typeof startGateway>>;
      try {
        gateway = await startGateway(config, {
          logger,
          // Crash tests only (test/e2e/meter-replace.test.ts): the replacement job waits after this step until killed.
          ...(process.env.METERD_TEST_HOLD_REPLACEMENT ? { replacementHoldAfter: process.env.METERD_TEST_HOLD_REPLACEMENT } : {}),
          // Crash tests only (test/e2e/supply-kill.test.ts): a supply notice's trip waits there until killed.
          ...testSupplyHold(process.env.METERD_TEST_HOLD_SUPPLY),
        });
      } catch (err) {
        // startGateway has closed what it opened. Should a handle it did not know of still hold the event loop, exit
        // anyway: a half-started daemon that stays alive is never restarted by systemd.
        setTimeout(() => process.exit(1), 3000).unref();
        throw err;
      }
      let web: Awaited<ReturnType<typeof serveConsole>>;
      try {
        web = await serveConsole(gateway, { logger, clock: systemClock, timers: realTimers });
      } catch (err) {
        await gateway.stop();
        throw err;
      }
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (sig: NodeJS.Signals) => {
          signals++;
          if (signals > 1) {
            logger.warn({ signal: sig }, 'second signal: exiting now');
            logger.flush();
            process.exit(130);
          }
          logger.info({ signal: sig }, 'stopping (send the signal again to exit at once)');
          Promise.resolve(web?.close())
            .catch((err: unknown) => logger.warn({ err }, 'web console did not close cleanly'))
            .then(() => gateway.stop())
            .then(resolve, (err: unknown) => {
              logger.error({ err }, 'error while stopping');
              resolve();
            });
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      logger.flush();
    });
}

/** METERD_TEST_HOLD_SUPPLY (crash tests only): `trip-sent` or `trip-reached`; anything else is a mistake in the test. */
function testSupplyHold(value: string | undefined): { supplyHoldAt?: SupplyHold } {
  if (!value) return {};
  const hold = SUPPLY_HOLDS.find((h) => h === value);
  if (hold === undefined) throw new Error(`METERD_TEST_HOLD_SUPPLY is ${SUPPLY_HOLDS.join(' or ')}, not ${value}`);
  return { supplyHoldAt: hold };
}
