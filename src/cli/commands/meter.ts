import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { parseDuration } from '../../config/duration.js';
import type { GatewayConfig } from '../../config/index.js';
import { addressText, assetView, verificationDue } from '../../services/lifecycle/register.js';
import { openStore, type Store } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { columns } from '../table.js';
import { CliError, usageError } from '../errors.js';
import { type Parsed, parseMeterAddress, parseRequestId } from '../../values/index.js';
import { resultOf, sendToDaemon } from '../daemon-client.js';
import { routeCommand } from '../daemon-route.js';

type Io = { out: (line: string) => void };

/** Adds `meterd meter`: the meter register (list, history) and the replacement of a faulty meter (docs/lifecycle.md). */
export function registerMeterCommand(program: Command, io: Io): void {
  const meter = program.command('meter').description('the meter register: what hangs where, since when, when it is due; replace a meter');
  meter
    .command('list')
    .description('each point with its installed meter, address, since when, and when it is due for periodic verification')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .option('--due <duration>', 'only meters due for verification within this time (e.g. 90d), overdue ones included')
    .option('--json', 'print JSON lines')
    .addHelpText(
      'after',
      '\nExamples:\n  meterd meter list -c /etc/meterd/meterd.yaml\n  meterd meter list -c /etc/meterd/meterd.yaml --due 90d\n',
    )
    .action((opts: { config?: string; due?: string; json?: boolean }) => {
      const dueMs = opts.due === undefined ? undefined : parseDuration(opts.due);
      if (opts.due !== undefined && (dueMs === undefined || /^\s*\d+(\.\d+)?\s*$/.test(opts.due)))
        throw usageError(`--due "${opts.due}" is not a duration (write e.g. 90d, 30d, 12h)`);
      withStore(opts.config, (config, store) => {
        const installed = store.register.installed();
        const now = systemClock.now();
        const rows = config.meters.map((m) => {
          const asset = installed.get(m.id);
          const dueAt = asset ? verificationDue(asset, m.verificationYears) : null;
          return { m, asset, dueAt };
        });
        const shown = dueMs === undefined ? rows : rows.filter((r) => r.dueAt !== null && r.dueAt <= now + dueMs);
        if (opts.json) {
          for (const r of shown)
            io.out(
              JSON.stringify({
                meter: r.m.id,
                ...(r.asset ? assetView(r.asset, r.m.verificationYears) : { address: addressText(r.m), registered: false }),
                ...(r.dueAt !== null ? { overdue: r.dueAt <= now } : {}),
              }),
            );
          return;
        }
        const table = [['point', 'asset', 'address', 'profile', 'since', 'verification due']];
        for (const r of shown)
          table.push([
            r.m.id,
            r.asset ? String(r.asset.assetNo ?? `#${r.asset.id}`) : '-',
            r.asset?.address ?? `${addressText(r.m)} (not registered yet: the daemon registers it at its next start)`,
            r.asset?.profile ?? r.m.profile.id,
            r.asset ? new Date(r.asset.installedAt).toISOString().slice(0, 10) : '-',
            r.dueAt === null ? '-' : `${new Date(r.dueAt).toISOString().slice(0, 10)}${r.dueAt <= now ? ' OVERDUE' : ''}`,
          ]);
        for (const line of columns(table, [])) io.out(line);
        io.out(`${shown.length} meter(s)${dueMs !== undefined ? ` due within ${opts.due}` : ''}`);
      });
    });
  meter
    .command('history')
    .description('every meter a point ever had: installed, replaced, why, by whom, final and initial readings (read or manual)')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--meter <id>', 'the point (meter id of the config)')
    .option('--json', 'print JSON lines')
    .addHelpText('after', '\nExample:\n  meterd meter history -c /etc/meterd/meterd.yaml --meter room-101\n')
    .action((opts: { config?: string; meter: string; json?: boolean }) => {
      withStore(opts.config, (config, store) => {
        const point = config.meters.find((m) => m.id === opts.meter);
        if (!point) throw usageError(`no meter "${opts.meter}" in the config`);
        const history = store.register.history(point.id);
        if (opts.json) {
          for (const a of history) io.out(JSON.stringify({ meter: point.id, ...assetView(a, point.verificationYears) }));
          return;
        }
        if (history.length === 0) io.out(`${point.id}: not registered yet (the daemon registers it at its next start)`);
        for (const a of history) {
          const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16);
          const reading = (r: typeof a.initial, source: string | null) =>
            r === null
              ? 'no reading'
              : `import ${r.importKwh ?? '?'} kWh, balance ${r.balance === null ? '?' : (r.balance / 100).toFixed(2)}, overdraft ${r.overdraft === null ? '?' : (r.overdraft / 100).toFixed(2)}, purchase count ${r.purchaseCount ?? '?'} (${source})`;
          io.out(
            `${when(a.installedAt)}  installed ${a.address}${a.assetNo ? ` (asset ${a.assetNo})` : ''}, ${a.profile}: ${a.initialSource === 'config' ? 'from the config' : reading(a.initial, a.initialSource)}`,
          );
          if (a.removedAt !== null)
            io.out(
              `${when(a.removedAt)}  removed ${a.address} by ${a.operator ?? '?'}: ${a.reason ?? ''}; final ${reading(a.final, a.finalSource)}`,
            );
        }
      });
    });
  registerReplace(meter, io);
}

function registerReplace(meter: Command, io: Io): void {
  meter
    .command('replace')
    .description(
      'replace a faulty meter (拆旧换新): final reading, pending loads settled, the new meter checked and read, the remaining credit moved onto it once',
    )
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--meter <id>', 'the point (meter id of the config) whose meter is replaced')
    .requiredOption('--new-address <addr>', 'the new meter\'s 12-digit address, or its unit id on a Modbus bus (7 or "unit 7")')
    .requiredOption('--operator <name>', 'the technician doing it')
    .requiredOption('--reason <text>', 'why (display dead, failed verification, rotation, …)')
    .option('--new-profile <id>', "the new meter's profile when it is another model (same wallet kind)")
    .option('--asset-no <text>', "the new meter's asset number")
    .option('--final-import <kWh>', "the old meter's forward energy off its display (when it does not answer)")
    .option('--final-balance <n>', 'its remaining balance off the display: yuan or kWh as the meter keeps it')
    .option('--final-overdraft <n>', 'its overdraft off the display, if any')
    .option('--final-count <n>', 'its purchase count off the display')
    .option('--request-id <id>', 'the request id; the same id again returns the first result and changes nothing')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  meterd meter replace -c /etc/meterd/meterd.yaml --meter room-101 --new-address 000012349999 --operator li --reason "display dead"
  meterd meter replace -c /etc/meterd/meterd.yaml --meter room-101 --new-address 000012349999 --operator li --reason "no answer" \\
      --final-import 5123.40 --final-balance 37.50 --final-count 5
  meterd meter replace -c /etc/meterd/meterd.yaml --meter dorm-3-12 --new-address 7 --operator li --reason "failed verification"   # Modbus: unit id 7

Runs inside the running daemon (it holds the bus) as one job that survives a restart; docs/lifecycle.md says what
each step does and what to do when one is refused.`,
    )
    .action(
      async (opts: {
        config?: string;
        meter: string;
        newAddress: string;
        operator: string;
        reason: string;
        newProfile?: string;
        assetNo?: string;
        finalImport?: string;
        finalBalance?: string;
        finalOverdraft?: string;
        finalCount?: string;
        requestId?: string;
        json?: boolean;
      }) => {
        const requestId =
          opts.requestId === undefined ? `cli-meter-replace-${randomUUID()}` : option('--request-id', parseRequestId(opts.requestId));
        const route = await routeCommand(opts);
        if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
        const point = route.config.meters.find((m) => m.id === opts.meter);
        if (!point) throw usageError(`no meter "${opts.meter}" in ${route.configPath}`);
        const final = finalOption(opts, point.profile.credit !== undefined);
        // The point's bus says what the address is: a DL/T 645 address, or a Modbus unit id.
        const newAddress = option(
          '--new-address',
          parseMeterAddress(opts.newAddress, point.profile.protocol.startsWith('dlt645') ? 'dlt645' : 'modbus'),
        );
        if (route.daemon === null)
          throw new CliError(
            'DAEMON_NOT_RUNNING',
            `no meterd daemon runs for ${route.configPath}: a replacement runs inside it (systemctl start meterd)`,
          );
        const reply = await sendToDaemon(
          route.config,
          'meter-replace',
          {
            requestId,
            meter: opts.meter,
            newAddress,
            operator: opts.operator,
            reason: opts.reason,
            ...(opts.newProfile !== undefined ? { newProfile: opts.newProfile } : {}),
            ...(opts.assetNo !== undefined ? { newAssetNo: opts.assetNo } : {}),
            ...(final ? { final } : {}),
          },
          { operator: opts.operator },
        );
        if (opts.json && reply.result) io.out(JSON.stringify(reply.result));
        const r = resultOf('meter-replace', reply) as unknown as ReplaceResult;
        if (!opts.json)
          io.out(
            `${r.meter}: ${r.old?.address ?? '?'} replaced by ${r.new?.address ?? '?'}; final reading ${r.final?.source ?? '?'}: import ${r.final?.importKwh ?? '?'} kWh, balance ${r.final?.balance ?? '?'}, count ${r.final?.purchaseCount ?? '?'}; ${r.moved.amount > 0 ? `${r.moved.amount.toFixed(2)} ${r.moved.unit} moved onto the new meter (purchase count ${r.moved.purchaseCount})` : r.moved.nothing === 'no-wallet' ? 'the meter keeps no wallet: no credit to move' : 'no credit to move'}${r.owed > 0 ? `; ${r.owed.toFixed(2)} owed (overdraft)` : ''}${r.account?.opened ? `; the new meter's account opened for customer ${r.account.customerNo}` : ''}`,
          );
      },
    );
}

interface ReplaceResult {
  meter: string;
  old: { address: string } | null;
  new: { address: string } | null;
  final: { importKwh: number | null; balance: number | null; purchaseCount: number | null; source: string } | null;
  moved: { amount: number; unit: string | null; purchaseCount: number | null; nothing?: string };
  owed: number;
  /** The new meter's account opening (absent from results of a daemon before it). */
  account?: { customerNo: string; opened: boolean } | null;
}

/**
 * --final-* all together, or none: a manual final reading needs the energy, and the balance and the count of a meter
 * that keeps a wallet; a meter without one (an energy meter, free-energy registers only) shows only its energy.
 */
function finalOption(opts: { finalImport?: string; finalBalance?: string; finalOverdraft?: string; finalCount?: string }, wallet: boolean) {
  const walletFigures = [opts.finalBalance, opts.finalCount, opts.finalOverdraft];
  if (opts.finalImport === undefined && walletFigures.every((v) => v === undefined)) return undefined;
  if (!wallet) {
    if (opts.finalImport === undefined || walletFigures.some((v) => v !== undefined))
      throw usageError('the meter keeps no wallet: a manual final reading is --final-import alone');
  } else if (opts.finalImport === undefined || opts.finalBalance === undefined || opts.finalCount === undefined)
    throw usageError(
      'a manual final reading needs --final-import, --final-balance and --final-count (and --final-overdraft if the display shows one)',
    );
  const num = (flag: string, text: string) => {
    if (!/^\d+(\.\d{1,2})?$/.test(text)) throw usageError(`${flag} "${text}" is not a number with at most two decimals`);
    return Number(text);
  };
  if (opts.finalCount !== undefined && !/^\d+$/.test(opts.finalCount))
    throw usageError(`--final-count "${opts.finalCount}" is not a whole number`);
  return {
    importKwh: num('--final-import', opts.finalImport),
    ...(opts.finalBalance !== undefined ? { balance: num('--final-balance', opts.finalBalance) } : {}),
    ...(opts.finalCount !== undefined ? { purchaseCount: Number(opts.finalCount) } : {}),
    ...(opts.finalOverdraft !== undefined ? { overdraft: num('--final-overdraft', opts.finalOverdraft) } : {}),
  };
}

function option<T>(flag: string, parsed: Parsed<T>): T {
  if (!parsed.ok) throw usageError(`${flag} ${parsed.reason}`);
  return parsed.value;
}

function withStore(configPath: string | undefined, fn: (config: GatewayConfig, store: Store) => void): void {
  const path = configPath ?? process.env.METERD_CONFIG;
  if (path === undefined || path === '') throw usageError('give the gateway config with -c FILE (or set METERD_CONFIG)');
  const config = loadConfigFile(path);
  ensureDataDir(config.gateway.dataDir);
  const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
  try {
    fn(config, store);
  } finally {
    store.close();
  }
}
