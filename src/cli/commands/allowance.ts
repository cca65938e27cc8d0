import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import type { GatewayConfig } from '../../config/index.js';
import { allowanceMeters } from '../../daemon/allowances.js';
import { AllowanceError, countsMessage, previewRound, type PlannedLoad } from '../../services/allowances/index.js';
import { localDateTime } from '../../services/books/periods.js';
import {
  allowanceCounts,
  allowanceRound,
  allowanceRounds,
  allowanceRows,
  openStore,
  type AllowanceRound,
  type AllowanceRoundKey,
  type AllowanceRow,
  type Store,
} from '../../store/index.js';
import { parseRequestId } from '../../values/index.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { routeCommand, type CommandRoute } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

interface RoundOptions {
  config?: string;
  allowance: string;
  term: string;
  round: string;
}

const ACTIONS = ['retry', 'carry-over', 'cancel'] as const;

/** `meterd allowance status|plan|run|resolve`: the allowance rounds of a gateway (docs/allowances.md). */
export function registerAllowanceCommand(program: Command, io: { out: (line: string) => void }): void {
  const allowance = program
    .command('allowance')
    .description('free electricity allowances: the state of each round, what a round would load, run a round, decide on a row');

  allowance
    .command('status')
    .description('counts per round and the rows that wait for a person, read from the database (also while the daemon runs)')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .option('--allowance <id>', 'only this allowance')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  meterd allowance status -c /etc/meterd/meterd.yaml --allowance dorm-free\n')
    .action(async (opts: { config?: string; allowance?: string; json?: boolean }) => {
      const route = await requireRoute(opts);
      const found = withStore(route.config, (store) =>
        store.transaction((tx) => ({
          rounds: allowanceRounds(tx, opts.allowance)
            .reverse()
            .map((r) => ({ round: r, counts: allowanceCounts(tx, r) })),
          attention: allowanceRows(tx, {
            ...(opts.allowance ? { allowance: opts.allowance } : {}),
            states: ['needs-attention', 'expired'],
          }),
        })),
      );
      const { rounds, attention } = found ?? { rounds: [], attention: [] };
      if (opts.json) {
        io.out(
          JSON.stringify({
            rounds: rounds.map(({ round, counts }) => ({
              ...roundJson(round),
              counts: countsMessage(counts),
              complete: counts.planned + counts.pending === 0,
            })),
            attention: attention.map(rowJson),
          }),
        );
        return;
      }
      if (rounds.length === 0) {
        io.out(
          route.config.allowances.length === 0
            ? `${route.configPath} has no allowances`
            : 'No round has been planned yet (a round is planned when its date and time have passed).',
        );
        return;
      }
      const tz = route.config.gateway.timeZone;
      for (const { round, counts } of rounds) {
        const c = countsMessage(counts);
        io.out(
          `${round.allowance} ${round.term}/${round.round}  due ${localDateTime(round.dueAt, tz)}  planned ${c.planned}  pending ${c.pending}  applied ${c.applied}  needs-attention ${c.needsAttention}  expired ${c.expired}  cancelled ${c.cancelled}  ${counts.planned + counts.pending === 0 ? 'complete' : 'running'}${round.lateOnPlan ? '  (first seen after its deadline)' : ''}`,
        );
        for (const r of attention.filter((x) => x.allowance === round.allowance && x.term === round.term && x.round === round.round))
          io.out(`  ${r.meterId}  ${r.state}  ${r.reasonCode ?? ''}  ${r.reason ?? ''}`.trimEnd());
      }
    });

  allowance
    .command('plan')
    .description('which meters a round would load, and with what, from the config as it is now; writes nothing')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--allowance <id>', 'allowance id')
    .requiredOption('--term <id>', 'term id')
    .requiredOption('--round <id>', 'round id')
    .requiredOption('--dry-run', 'only show the plan (the daemon writes plans on the date, or with `allowance run`)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExample:\n  meterd allowance plan -c /etc/meterd/meterd.yaml --allowance dorm-free --term 2026-autumn --round r2 --dry-run\n',
    )
    .action(async (opts: RoundOptions & { json?: boolean }) => {
      const route = await requireRoute(opts);
      const key = { allowance: opts.allowance, term: opts.term, round: opts.round };
      let loads: PlannedLoad[];
      try {
        loads = previewRound(route.config.allowances, allowanceMeters(route.config), key);
      } catch (err) {
        if (err instanceof AllowanceError) throw new CliError(err.code, err.message, 2);
        throw err;
      }
      const planned = withStore(route.config, (store) => store.transaction((tx) => allowanceRound(tx, key)));
      if (opts.json) {
        io.out(JSON.stringify({ ...key, planned: planned ? roundJson(planned) : null, meters: loads }));
        return;
      }
      if (planned)
        io.out(
          `${opts.allowance} ${opts.term}/${opts.round} was planned at ${localDateTime(planned.plannedAt, route.config.gateway.timeZone)}: its rows are fixed (see \`meterd allowance status\`); the config now gives:`,
        );
      for (const l of loads)
        io.out(
          `${l.meter}  ${l.bus}  ${l.address ?? '-'}  customer ${l.customerNo ?? '-'}  ${(l.amount / 100).toFixed(2)} ${l.unit === 'money' ? 'CNY' : 'kWh'}${l.unitMatches ? '' : '  (the meter takes another unit: its row would be parked)'}${l.freeEnergy ? `  into free energy: ${l.freeEnergy.map((f) => `${f.register} ${(f.amount / 100).toFixed(2)}`).join(', ')}` : ''}`,
        );
      const total = loads.reduce((sum, l) => sum + l.amount, 0);
      io.out(`${loads.length} meter(s), ${(total / 100).toFixed(2)} ${loads[0]?.unit === 'energy' ? 'kWh' : 'CNY'} in all`);
    });

  allowance
    .command('run')
    .description('start a round now through the running daemon: plan it if needed, run its planned and pending rows at once')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--allowance <id>', 'allowance id')
    .requiredOption('--term <id>', 'term id')
    .requiredOption('--round <id>', 'round id')
    .option('--force', 'also reopen the round’s expired rows with a fresh deadline (a round first seen after its deadline)')
    .option('--request-id <id>', 'request id; the same id again is answered from the record (default: a new id)')
    .option('--operator <name>', 'who decides, recorded with each row (default: your user name)')
    .option('--json', 'print the reply as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  meterd allowance run -c /etc/meterd/meterd.yaml --allowance dorm-free --term 2026-autumn --round r1\n  meterd allowance run -c /etc/meterd/meterd.yaml --allowance dorm-free --term 2026-autumn --round r1 --force\n',
    )
    .action(async (opts: RoundOptions & { force?: boolean; requestId?: string; operator?: string; json?: boolean }) => {
      const requestId = requestIdOf(opts.requestId);
      const route = await daemonRoute(opts);
      const reply = await sendToDaemon(
        route.config,
        'allowance-run',
        { requestId, allowance: opts.allowance, term: opts.term, round: opts.round, ...(opts.force ? { force: true } : {}) },
        { operator: opts.operator ?? defaultOperator() },
      );
      const result = resultOf('allowance-run', reply);
      if (opts.json) return io.out(JSON.stringify(result));
      const c = result.counts as Record<string, number>;
      io.out(
        `${opts.allowance} ${opts.term}/${opts.round}: planned ${c.planned}, pending ${c.pending}, applied ${c.applied}, needs-attention ${c.needsAttention}, expired ${c.expired}, cancelled ${c.cancelled}; ${result.complete ? 'complete' : 'running in the daemon (meterd allowance status)'}`,
      );
    });

  allowance
    .command('resolve')
    .description('decide on an expired or parked row through the running daemon: retry, carry-over to the next round, or cancel')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG')
    .requiredOption('--allowance <id>', 'allowance id')
    .requiredOption('--term <id>', 'term id')
    .requiredOption('--round <id>', 'round id')
    .requiredOption('--meter <id>', 'meter id of the row')
    .requiredOption('--action <action>', 'retry | carry-over | cancel')
    .option('--request-id <id>', 'request id (default: a new id)')
    .option('--operator <name>', 'who decides (default: your user name)')
    .option('--json', 'print the reply as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  meterd allowance resolve -c /etc/meterd/meterd.yaml --allowance dorm-free --term 2026-autumn --round r1 --meter room-317 --action carry-over\n',
    )
    .action(async (opts: RoundOptions & { meter: string; action: string; requestId?: string; operator?: string; json?: boolean }) => {
      if (!(ACTIONS as readonly string[]).includes(opts.action)) throw usageError(`--action is one of ${ACTIONS.join(', ')}`);
      const requestId = requestIdOf(opts.requestId);
      const route = await daemonRoute(opts);
      const reply = await sendToDaemon(
        route.config,
        'allowance-resolve',
        {
          requestId,
          allowance: opts.allowance,
          term: opts.term,
          round: opts.round,
          meter: opts.meter,
          action: opts.action as (typeof ACTIONS)[number],
        },
        { operator: opts.operator ?? defaultOperator() },
      );
      const result = resultOf('allowance-resolve', reply);
      if (opts.json) return io.out(JSON.stringify(result));
      io.out(`${opts.meter} in ${opts.allowance} ${opts.term}/${opts.round}: ${opts.action} → ${String(result.state)}`);
    });
}

function requestIdOf(text: string | undefined): string {
  if (text === undefined) return `cli-${randomUUID()}`;
  const parsed = parseRequestId(text);
  if (!parsed.ok) throw usageError(`--request-id ${parsed.reason}`);
  return parsed.value;
}

async function requireRoute(opts: { config?: string }): Promise<CommandRoute> {
  const route = await routeCommand(opts);
  if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
  return route;
}

/** run and resolve go through the daemon: the batch runs there, on the buses it holds. */
async function daemonRoute(opts: { config?: string }): Promise<CommandRoute & { daemon: NonNullable<CommandRoute['daemon']> }> {
  const route = await requireRoute(opts);
  if (route.daemon === null)
    throw new CliError(
      'DAEMON_NOT_RUNNING',
      `no meterd daemon runs for ${route.configPath}: allowances run inside it, on the buses it holds; start it (systemctl start meterd) and run this again`,
    );
  return route as CommandRoute & { daemon: NonNullable<CommandRoute['daemon']> };
}

/** The gateway's database, when it exists (a gateway that never ran has no rounds). */
function withStore<T>(config: GatewayConfig, fn: (store: Store) => T): T | undefined {
  const path = join(config.gateway.dataDir, 'meterd.db');
  if (!existsSync(path)) return undefined;
  const store = openStore({ path, clock: systemClock, checkAtOpen: false });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function roundJson(r: AllowanceRound): Record<string, unknown> {
  return {
    allowance: r.allowance,
    term: r.term,
    round: r.round,
    dueAt: new Date(r.dueAt).toISOString(),
    deadlineAt: new Date(r.deadlineAt).toISOString(),
    plannedAt: new Date(r.plannedAt).toISOString(),
    lateOnPlan: r.lateOnPlan,
    completedAt: r.completedAt === null ? null : new Date(r.completedAt).toISOString(),
  };
}

function rowJson(r: AllowanceRow & AllowanceRoundKey): Record<string, unknown> {
  return {
    allowance: r.allowance,
    term: r.term,
    round: r.round,
    meter: r.meterId,
    bus: r.busId,
    state: r.state,
    amount: r.amount,
    unit: r.unit,
    attempt: r.attempt,
    ...(r.reasonCode !== null ? { reason: { code: r.reasonCode, message: r.reason ?? '' } } : {}),
  };
}
