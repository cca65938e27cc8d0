import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import type { GatewayConfig, MeterConfig } from '../../config/index.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { meterDrivers, openConfiguredBus, type OpenedBus } from '../../daemon/meters.js';
import { walletOf } from '../../devices/credit-port.js';
import type { PointValue } from '../../devices/point-value.js';
import { type AdoptableMeter, type AdoptionLine, adoptMeters } from '../../services/provisioning/index.js';
import { type MeterWallet, openStore } from '../../store/index.js';
import { parseOperatorName } from '../../values/index.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { DIRECT_HELP, routeCommand } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

/**
 * Adds `meterd adopt`: going live on an installation whose meters are already in service. Each remote-readable meter's
 * purchase count and balance become its opening entry in the books (docs/provisioning.md § Adopting meters).
 */
export function registerAdoptCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('adopt')
    .description(
      "start the books where each meter stands: read every remote-readable meter's purchase count and balance, record an opening entry",
    )
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .option('--meter <id...>', 'only these meters (default: every meter whose profile has a credit read-back)')
    .option('--operator <name>', 'who adopts, recorded with each opening entry (default: your user name)')
    .option('--json', 'print one JSON line per meter')
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      `
Examples:
  meterd adopt -c /etc/meterd/meterd.yaml
  meterd adopt -c /etc/meterd/meterd.yaml --meter room-101 room-102 --operator zhang --json

When a daemon runs for the config, the meters are read through it (its bus arbiter); without one, meterd opens
the ports itself. Safe to run again: a meter already in the books at its count is left alone; a meter whose count
moved since is reported, not adopted again; a meter that did not answer is tried again at the next run.
Card meters that cannot be read remotely are adopted at their first visit to the counter (meterd card sell).
Exit code 0 when every meter is adopted or already was; 1 when one could not be read or had moved.`,
    )
    .action(async (opts: { config?: string; meter?: string[]; operator?: string; json?: boolean; direct?: boolean }) => {
      const op = parseOperatorName(opts.operator ?? defaultOperator());
      if (!op.ok) throw usageError(`--operator ${op.reason}`);
      const route = await routeCommand(opts);
      if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
      const { config, configPath } = route;
      for (const id of opts.meter ?? []) if (!config.meters.some((m) => m.id === id)) throw usageError(`no meter "${id}" in ${configPath}`);
      const chosen = config.meters.filter((m) => opts.meter === undefined || opts.meter.includes(m.id));
      const readable = chosen.filter((m) => m.profile.credit !== undefined);
      const skipped = chosen.filter((m) => m.profile.credit === undefined);

      ensureDataDir(config.gateway.dataDir);
      const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
      const direct = route.daemon === null ? await DirectReader.open(config, readable) : null;
      try {
        const lines = await adoptMeters({
          store,
          meters: readable.map(adoptable),
          operator: op.value,
          readWallet: (m) => {
            const meter = readable.find((r) => r.id === m.id)!;
            return direct ? direct.read(meter) : readThroughDaemon(config, meter, op.value);
          },
        });
        for (const l of lines) io.out(opts.json ? JSON.stringify(l) : `${l.outcome.padEnd(15)} ${l.message}`);
        for (const m of skipped) {
          const message = `meter ${m.id} (${m.profile.id}) has no credit read-back in its profile: it cannot be read remotely; a card meter is adopted at its first visit to the counter`;
          io.out(
            opts.json ? JSON.stringify({ meterId: m.id, outcome: 'not-readable', message }) : `${'not-readable'.padEnd(15)} ${message}`,
          );
        }
        if (!opts.json) io.out(summary(lines));
        const trouble = lines.filter((l) => l.outcome === 'unreadable' || l.outcome === 'moved');
        if (trouble.length > 0)
          throw new CliError(
            'ADOPT_INCOMPLETE',
            `${trouble.length} meter(s) not adopted (${trouble.map((l) => l.meterId).join(', ')}): see the lines above; run meterd adopt again once they are fixed`,
          );
      } finally {
        await direct?.close();
        store.close();
      }
    });
}

function adoptable(m: MeterConfig): AdoptableMeter {
  return {
    id: m.id,
    ...(m.address !== undefined ? { address: m.address } : {}),
    unit: m.profile.credit!.unit,
    ...(m.customerNo !== undefined ? { customerNo: m.customerNo } : {}),
  };
}

function summary(lines: readonly AdoptionLine[]): string {
  const n = (o: string) => lines.filter((l) => l.outcome === o).length;
  return `${n('adopted')} adopted, ${n('already-adopted')} already in the books, ${n('moved')} moved since, ${n('unreadable')} unreadable`;
}

/** The daemon's `read` command for the meter's read-back points: it holds the port, its arbiter orders the reads. */
async function readThroughDaemon(config: GatewayConfig, meter: MeterConfig, operator: string): Promise<MeterWallet> {
  const readBack = meter.profile.credit!.readBack;
  const points = [readBack.count, readBack.balance, ...(readBack.overdraft ? [readBack.overdraft] : [])];
  const reply = await sendToDaemon(config, 'read', { requestId: `adopt-read-${randomUUID()}`, meter: meter.id, points }, { operator });
  const values = (resultOf('read', reply).values ?? {}) as Record<string, PointValue>;
  return walletOf(new Map(Object.entries(values)), readBack, meter.id);
}

/** The buses of the chosen meters, opened by this command while no daemon runs. */
class DirectReader {
  private constructor(
    private readonly config: GatewayConfig,
    private readonly buses: Map<string, OpenedBus>,
  ) {}

  static async open(config: GatewayConfig, meters: readonly MeterConfig[]): Promise<DirectReader> {
    const buses = new Map<string, OpenedBus>();
    try {
      for (const busId of new Set(meters.map((m) => m.busId)))
        buses.set(busId, await openConfiguredBus(config.buses.find((b) => b.id === busId)!, { waitForPort: false }));
    } catch (err) {
      for (const b of buses.values()) await b.bus.close();
      throw err;
    }
    return new DirectReader(config, buses);
  }

  async read(meter: MeterConfig): Promise<MeterWallet> {
    const readBack = meter.profile.credit!.readBack;
    const points = [readBack.count, readBack.balance, ...(readBack.overdraft ? [readBack.overdraft] : [])];
    const drivers = meterDrivers(meter, this.buses.get(meter.busId)!, this.config);
    return walletOf(await drivers.reader.read(points, { priority: 'operator' }), readBack, meter.id);
  }

  async close(): Promise<void> {
    for (const b of this.buses.values()) await b.bus.close();
  }
}
