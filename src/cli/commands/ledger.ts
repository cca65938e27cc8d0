import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { creditMessage } from '../../services/credit.js';
import { openStore } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { usageError } from '../errors.js';

/** Adds `meterd ledger`: the credit ledger read from the gateway's store, one line (or JSON line) per load. */
export function registerLedgerCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('ledger')
    .description('list credit loads from the ledger: remote top-ups, counter sales, technician loads')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--meter <id>', 'only this meter')
    .option('--since <date>', 'from this date or time (YYYY-MM-DD or ISO 8601)')
    .option('--json', 'print JSON lines')
    .addHelpText('after', '\nExample:\n  meterd ledger -c /etc/meterd/meterd.yaml --meter room-101 --since 2026-11-01\n')
    .action((opts: { config: string; meter?: string; since?: string; json?: boolean }) => {
      const config = loadConfigFile(opts.config);
      const since = opts.since === undefined ? 0 : Date.parse(opts.since);
      if (Number.isNaN(since)) throw usageError(`--since "${opts.since}" is not a date (YYYY-MM-DD or ISO 8601)`);
      ensureDataDir(config.gateway.dataDir);
      const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
      try {
        const entries = store.ledger.list({ meterId: opts.meter, since });
        if (opts.json) for (const e of entries) io.out(JSON.stringify(creditMessage(e, e.updatedAt)));
        else {
          io.out('time                      meter        channel   amount        count  state      request');
          for (const e of entries) {
            const amount = `${(e.amount / 100).toFixed(2)} ${e.unit === 'money' ? 'CNY' : 'kWh'}`;
            io.out(
              `${new Date(e.createdAt).toISOString().padEnd(25)} ${e.meterId.padEnd(12)} ${e.channel.padEnd(9)} ${amount.padEnd(13)} ${String(e.purchaseCount ?? '-').padEnd(6)} ${e.state.padEnd(10)} ${e.requestId}${e.error ? `  (${e.error.code})` : ''}`,
            );
          }
          io.out(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`);
        }
      } finally {
        store.close();
      }
    });
}
