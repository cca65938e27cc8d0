import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { archiveCsv, importArchive, parseArchiveCsv, setCustomerState } from '../../services/provisioning/index.js';
import { CUSTOMER_STATES, type Customer, type CustomerState, openStore, type Store } from '../../store/index.js';
import { parseCustomerNo, parseOperatorName } from '../../values/index.js';
import { loadConfigFile } from '../config-file.js';
import { defaultOperator } from '../daemon-client.js';
import { CliError, usageError } from '../errors.js';

type Out = { out: (line: string) => void };

/** Adds `meterd archive`: the customer archive (客户档案) in the gateway's store, imported, listed, shown, exported. */
export function registerArchiveCommand(program: Command, io: Out): void {
  const archive = program
    .command('archive')
    .description('the customer archive: customers, their rooms, meters and cards, with the history of every change');

  archive
    .command('import <file>')
    .description("load a station's existing archive from CSV: nothing is imported while a line is bad (or --skip-bad)")
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--skip-bad', 'import the good lines and report the bad ones')
    .option('--operator <name>', 'who imports, recorded in the history (default: your user name)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The first line names the columns: customer,name,room,meter,tags (meter and tags may be left out; tags are
separated by ";"). meter is the meter address from its nameplate. Fields with a comma are quoted.

Examples:
  meterd archive import -c /etc/meterd/meterd.yaml archive.csv
  meterd archive import -c /etc/meterd/meterd.yaml archive.csv --skip-bad --json

Importing the same file again changes nothing. Exit code 0 when imported; 1 when bad lines stopped the import.`,
    )
    .action((file: string, opts: { config: string; skipBad?: boolean; operator?: string; json?: boolean }) => {
      const operator = operatorOf(opts.operator);
      let source: string;
      try {
        source = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`, 2);
      }
      const parsed = parseArchiveCsv(source);
      withStore(opts.config, (store) => {
        const r = importArchive(store, parsed.rows, parsed.bad, { operator, skipBad: opts.skipBad === true });
        if (opts.json) io.out(JSON.stringify(r));
        else {
          for (const b of r.bad) io.out(`${file}:${b.line}: ${b.message}`);
          if (r.imported)
            io.out(
              `imported: ${r.created.length} new, ${r.updated.length} changed, ${r.unchanged.length} unchanged${r.bad.length > 0 ? `; ${r.bad.length} bad line(s) skipped` : ''}`,
            );
        }
        if (!r.imported)
          throw new CliError(
            'ARCHIVE_BAD_LINES',
            `${r.bad.length} bad line(s) in ${file}, nothing imported: correct them and import again, or give --skip-bad to import the good lines`,
          );
      });
    });

  archive
    .command('list')
    .description('list the customers')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--state <state>', `only customers in this state (${CUSTOMER_STATES.join(', ')})`)
    .option('--json', 'print JSON lines')
    .addHelpText('after', '\nExample:\n  meterd archive list -c /etc/meterd/meterd.yaml --state active\n')
    .action((opts: { config: string; state?: string; json?: boolean }) => {
      if (opts.state !== undefined && !(CUSTOMER_STATES as readonly string[]).includes(opts.state))
        throw usageError(`--state must be one of ${CUSTOMER_STATES.join(', ')}`);
      withStore(opts.config, (store) => {
        const customers = store.archive.list(opts.state === undefined ? {} : { state: opts.state as CustomerState });
        if (opts.json) for (const c of customers) io.out(JSON.stringify(c));
        else {
          io.out('customer      state      meter         card          room          name');
          for (const c of customers) io.out(line(c));
          io.out(`${customers.length} customer${customers.length === 1 ? '' : 's'}`);
        }
      });
    });

  archive
    .command('show <customer>')
    .description('one customer with the history of every change')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  meterd archive show -c /etc/meterd/meterd.yaml 880000000011\n')
    .action((customer: string, opts: { config: string; json?: boolean }) => {
      const customerNo = customerOf(customer);
      withStore(opts.config, (store) => {
        const c = found(store, customerNo);
        const history = store.archive.history(customerNo);
        if (opts.json) return io.out(JSON.stringify({ ...c, history }));
        io.out(`customer ${c.customerNo}: ${c.name}, room ${c.room}, ${c.state}`);
        io.out(
          `  meter ${c.meterAddress ?? '(none)'}, card ${c.cardSerial ?? '(none)'}${c.tags.length ? `, tags ${c.tags.join(';')}` : ''}`,
        );
        for (const h of history) {
          const what = Object.entries(h.changes)
            .map(([k, [a, b]]) => `${k}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`)
            .join(', ');
          io.out(`  ${new Date(h.at).toISOString()}  ${h.operator}  ${h.action}  ${what}`);
        }
      });
    });

  archive
    .command('export')
    .description('write the archive as CSV (the format archive import reads)')
    .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--state <state>', `only customers in this state (${CUSTOMER_STATES.join(', ')})`)
    .option('--json', 'print JSON lines instead of CSV')
    .addHelpText('after', '\nExample:\n  meterd archive export -c /etc/meterd/meterd.yaml --out archive-2026-12.csv\n')
    .action((opts: { config: string; out?: string; state?: string; json?: boolean }) => {
      if (opts.state !== undefined && !(CUSTOMER_STATES as readonly string[]).includes(opts.state))
        throw usageError(`--state must be one of ${CUSTOMER_STATES.join(', ')}`);
      withStore(opts.config, (store) => {
        const customers = store.archive.list(opts.state === undefined ? {} : { state: opts.state as CustomerState });
        const text = opts.json ? customers.map((c) => `${JSON.stringify(c)}\n`).join('') : archiveCsv(customers);
        if (opts.out) writeFileSync(opts.out, text);
        else for (const l of text.trimEnd().split('\n')) io.out(l);
      });
    });

  for (const [name, state, what] of [
    ['move-out', 'moved-out', 'the customer moved out: the meter is free for the next one'],
    ['close', 'closed', 'the account is closed'],
    ['reactivate', 'active', 'the customer is active again'],
  ] as const) {
    archive
      .command(`${name} <customer>`)
      .description(what)
      .requiredOption('-c, --config <file>', 'the gateway config (YAML)')
      .option('--operator <name>', 'who, recorded in the history (default: your user name)')
      .option('--json', 'print the customer as JSON')
      .action((customer: string, opts: { config: string; operator?: string; json?: boolean }) => {
        const customerNo = customerOf(customer);
        const operator = operatorOf(opts.operator);
        withStore(opts.config, (store) => {
          const c = setCustomerState(store, customerNo, state, operator);
          io.out(opts.json ? JSON.stringify(c) : line(c));
        });
      });
  }
}

function line(c: Customer): string {
  return `${c.customerNo.padEnd(13)} ${c.state.padEnd(10)} ${(c.meterAddress ?? '-').padEnd(13)} ${(c.cardSerial ?? '-').padEnd(13)} ${c.room.padEnd(13)} ${c.name}`;
}

function found(store: Store, customerNo: string): Customer {
  const c = store.archive.get(customerNo);
  if (!c) throw new CliError('UNKNOWN_CUSTOMER', `no customer ${customerNo} in the archive; see meterd archive list, or import it first`);
  return c;
}

function customerOf(text: string): string {
  const p = parseCustomerNo(text);
  if (!p.ok) throw usageError(`customer number ${p.reason}`);
  return p.value;
}

function operatorOf(text: string | undefined): string {
  const p = parseOperatorName(text ?? defaultOperator());
  if (!p.ok) throw usageError(`--operator ${p.reason}`);
  return p.value;
}

function withStore(configPath: string, fn: (store: Store) => void): void {
  const config = loadConfigFile(configPath);
  ensureDataDir(config.gateway.dataDir);
  const store = openStore({ path: join(config.gateway.dataDir, 'meterd.db'), clock: systemClock });
  try {
    fn(store);
  } finally {
    store.close();
  }
}
