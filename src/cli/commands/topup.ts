import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { meterDrivers, openConfiguredBus } from '../../daemon/meters.js';
import { CreditService, creditMessage } from '../../services/credit.js';
import { openStore, type LedgerEntry } from '../../store/index.js';
import { type Parsed, parseCustomerNo, parseKwhText, parseRequestId, parseYuanText } from '../../values/index.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { DIRECT_HELP, routeCommand } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

export function registerTopupCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('topup')
    .description('load purchased energy or money onto one meter, exactly once, through the same ledger as remote top-ups')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--meter <id>', 'meter id from the config')
    .option('--kwh <n>', 'energy to load, at most two decimals (kWh-wallet meters)')
    .option('--amount <yuan>', 'money to load in yuan, at most two decimals (money-wallet meters)')
    .option('--request-id <id>', "the station's request id; running again with the same id never loads twice (default: a new id)")
    .option('--operator <name>', 'who loads, recorded in the ledger (default: your user name)')
    .option('--customer <number>', 'customer number, when the meter checks it')
    .option('--json', 'print the ledger entry as JSON')
    .option('--direct', DIRECT_HELP)
    .addHelpText(
      'after',
      `
Examples:
  meterd topup -c /etc/meterd/meterd.yaml --meter room-101 --kwh 50 --request-id counter-2026-11-27-0042
  meterd topup -c /etc/meterd/meterd.yaml --meter room-205 --amount 100.00

When a daemon runs for the config, the load goes through it (its bus arbiter, its ledger, the same checks as an
MQTT topup; recorded with --operator); polling goes on. Without one, meterd opens the port itself.
The result is decided by reading the meter's purchase counter back. Ctrl-C after the load was sent does not stop
it: it finishes in the daemon with its ledger row (see \`meterd ledger\`).
Exit code 0 when applied; 1 when rejected (the meter's reason), failed, or not settled yet.`,
    )
    .action(
      async (opts: {
        config?: string;
        meter: string;
        kwh?: string;
        amount?: string;
        requestId?: string;
        operator?: string;
        customer?: string;
        json?: boolean;
        direct?: boolean;
      }) => {
        // Every argument is checked before the config, the store or the bus is touched: a bad one leaves no ledger row.
        const credit = creditOption(opts);
        const requestId =
          opts.requestId === undefined ? `operator-${randomUUID()}` : option('--request-id', parseRequestId(opts.requestId));
        const customerNo = opts.customer === undefined ? undefined : option('--customer', parseCustomerNo(opts.customer));
        const operator = opts.operator ?? defaultOperator();
        const route = await routeCommand(opts);
        if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
        const { config, configPath } = route;
        const meter = config.meters.find((m) => m.id === opts.meter);
        if (!meter) throw usageError(`no meter "${opts.meter}" in ${configPath}`);
        if (route.daemon !== null) {
          const reply = await sendToDaemon(
            config,
            'topup',
            {
              requestId,
              meter: meter.id,
              ...(credit.unit === 'energy' ? { energyKwh: credit.hundredths / 100 } : { amountFen: credit.hundredths }),
              ...(customerNo === undefined ? {} : { customerNo }),
            },
            { operator },
          );
          const message = reply.result ?? {};
          if (opts.json) io.out(JSON.stringify(message));
          else io.out(daemonSummary(message, reply.status, requestId));
          resultOf('topup', reply);
          return;
        }
        ensureDataDir(config.gateway.dataDir);
        const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
        const opened = await openConfiguredBus(config.buses.find((b) => b.id === meter.busId)!, { waitForPort: false });
        try {
          const drivers = meterDrivers(meter, opened, config);
          if (!drivers.credit && meter.profile.credit?.method === 'dlt645-esam') {
            throw new CliError(
              'ESAM_NEEDS_STATION',
              `meter ${meter.id} (${meter.profile.id}) is an ESAM meter: its loads need the station's encryption machine, which only the running daemon reaches: start it (systemctl start meterd) and run this again, it goes through the daemon`,
            );
          }
          if (!drivers.credit)
            throw new CliError('METER_NOT_CREDITABLE', `meter ${meter.id} (${meter.profile.id}) has no credit method in its profile`);
          const service = new CreditService({ store, clock: systemClock, ports: new Map([[meter.id, drivers.credit]]) });
          const { entry, fresh } = await service.topUp({
            requestId,
            meterId: meter.id,
            channel: 'operator',
            ...(credit.unit === 'energy' ? { energyKwh: credit.hundredths / 100 } : { amountFen: credit.hundredths }),
            operator,
            customerNo: customerNo ?? meter.customerNo,
          });
          if (opts.json) io.out(JSON.stringify(creditMessage(entry, Date.now())));
          else io.out(summary(entry, fresh));
          if (entry.state !== 'applied')
            throw new CliError(entry.error?.code ?? entry.state.toUpperCase(), entry.error?.message ?? `the load is ${entry.state}`);
        } finally {
          await opened.bus.close();
          store.close();
        }
      },
    );
}

/** `--kwh` or `--amount`, exactly one, by the rules and caps every door uses (src/values). */
function creditOption(opts: { kwh?: string; amount?: string }): { unit: 'energy' | 'money'; hundredths: number } {
  if ((opts.kwh === undefined) === (opts.amount === undefined)) throw usageError('give exactly one of --kwh N or --amount YUAN');
  if (opts.kwh !== undefined) return { unit: 'energy', hundredths: option('--kwh', parseKwhText(opts.kwh)) };
  return { unit: 'money', hundredths: option('--amount', parseYuanText(opts.amount!)) };
}

function option<T>(flag: string, parsed: Parsed<T>): T {
  if (!parsed.ok) throw usageError(`${flag} ${parsed.reason}`);
  return parsed.value;
}

/** The daemon's reply (creditMessage of the ledger entry) in the words of `summary`. */
function daemonSummary(m: Record<string, unknown>, status: string, requestId: string): string {
  const amount = m.amount as { value: number; unit: string } | undefined;
  const after = m.after as { count: number; balance: number } | undefined;
  const error = (m.error as { code: string; message: string } | undefined) ?? undefined;
  const head = `meter ${String(m.meter ?? '?')}: ${amount ? `${amount.value.toFixed(2)} ${amount.unit} ` : ''}${String(m.state ?? status)}`;
  if (m.state === 'applied' && after)
    return `${head}: purchase count ${after.count}, balance ${after.balance.toFixed(2)} ${amount?.unit ?? ''} (request ${requestId}, through the daemon)`;
  return `${head}${error ? `: ${error.code}: ${error.message}` : ''} (request ${requestId}, through the daemon)`;
}

function summary(e: LedgerEntry, fresh: boolean): string {
  const unit = e.unit === 'money' ? 'CNY' : 'kWh';
  const head = `${fresh ? '' : '(request seen before, nothing written) '}meter ${e.meterId}: ${(e.amount / 100).toFixed(2)} ${unit} ${e.state}`;
  if (e.state === 'applied' && e.after)
    return `${head}: purchase count ${e.after.count}, balance ${(e.after.balance / 100).toFixed(2)} ${unit} (request ${e.requestId})`;
  return `${head}${e.error ? `: ${e.error.code}: ${e.error.message}` : ''} (request ${e.requestId})`;
}
