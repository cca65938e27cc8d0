import type { GatewayConfig, MeterConfig } from '../config/index.js';
import { addressOption, type BusCliOptions } from './bus-options.js';
import { loadConfigFile } from './config-file.js';
import { findDaemon, type DaemonHandle } from './daemon-client.js';
import { CliError } from './errors.js';

/** Where a CLI command that touches a meter, an encoder or the books runs: through the daemon, or directly. */
export interface CommandRoute {
  readonly configPath: string;
  readonly config: GatewayConfig;
  /** The daemon running for this config; null: none runs, the command works directly (as without a daemon). */
  readonly daemon: DaemonHandle | null;
}

/**
 * The config of `-c FILE` (else METERD_CONFIG) and the daemon running for it. `--direct` forces the direct path and
 * is refused while a daemon runs: it holds the ports, and two programs on one RS-485 line garble each other.
 * Undefined when no config is named (the command's own port options apply).
 */
export async function routeCommand(opts: { config?: string; direct?: boolean }): Promise<CommandRoute | undefined> {
  const configPath = opts.config ?? process.env.METERD_CONFIG;
  if (configPath === undefined || configPath === '') return undefined;
  const config = loadConfigFile(configPath);
  const daemon = await findDaemon(config);
  if (opts.direct && daemon !== null)
    throw new CliError(
      'DAEMON_RUNNING',
      `a meterd daemon runs for ${configPath} (${daemon.socketPath}) and holds its ports: leave out --direct to go through it, or stop it first (systemctl stop meterd)`,
    );
  return { configPath, config, daemon };
}

/**
 * The configured meter a port command names: `--meter ID`, or the `--port` of a configured bus with the `--addr`
 * (DL/T 645) or `--unit` (Modbus) of one of its meters. Undefined when the command names no configured meter;
 * PORT_HELD_BY_DAEMON when it names the port of a bus the running daemon holds but no meter of it.
 */
export function configuredMeter(route: CommandRoute | undefined, opts: Record<string, unknown>): MeterConfig | undefined {
  if (opts.meter !== undefined) {
    if (route === undefined) throw new CliError('USAGE', '--meter names a meter of a config: give -c FILE (or set METERD_CONFIG)', 2);
    const meter = route.config.meters.find((m) => m.id === opts.meter);
    if (meter === undefined) throw new CliError('USAGE', `no meter "${String(opts.meter)}" in ${route.configPath}`, 2);
    return meter;
  }
  if (route?.daemon == null || typeof opts.port !== 'string') return undefined;
  const bus = route.config.buses.find((b) => b.port === opts.port);
  if (bus === undefined) return undefined;
  const onBus = route.config.meters.filter((m) => m.busId === bus.id);
  const meter =
    opts.addr !== undefined
      ? onBus.find((m) => m.address === addressOption(opts.addr))
      : opts.unit !== undefined
        ? onBus.find((m) => m.unit === Number(opts.unit))
        : undefined;
  if (meter === undefined)
    throw new CliError(
      'PORT_HELD_BY_DAEMON',
      `the daemon of ${route.configPath} holds ${bus.port} (bus ${bus.id}) and this is not one of its configured meters; add it to the config, or stop the daemon and use --direct`,
    );
  return meter;
}

/** The line options of a configured meter's bus, for the direct path of a port command. */
export function busOptionsOf(config: GatewayConfig, meter: MeterConfig): BusCliOptions {
  const bus = config.buses.find((b) => b.id === meter.busId)!;
  return {
    port: bus.port,
    baudRate: bus.line.baudRate,
    parity: bus.line.parity,
    dataBits: bus.line.dataBits,
    stopBits: bus.line.stopBits,
    ...(bus.timeoutMs === undefined ? {} : { timeoutMs: bus.timeoutMs }),
    retries: bus.retries,
  };
}

/** The help text of `--direct`. */
export const DIRECT_HELP =
  'work directly on the port even if a config is named; refused while a daemon runs for that config (it holds the port)';
