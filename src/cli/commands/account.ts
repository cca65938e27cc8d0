import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { parseCustomerNo, parseKwhText, parseOperatorName, parseYuanText } from '../../values/index.js';
import { resultOf, sendToDaemon } from '../daemon-client.js';
import { routeCommand } from '../daemon-route.js';
import { CliError, usageError } from '../errors.js';

/**
 * Adds `meterd account open` (docs/provisioning.md § Opening an account on a remote meter), through the running
 * daemon (command account-open): it holds the bus and, for ESAM meters, the station's encryption machine.
 */
export function registerAccountCommand(program: Command, io: { out: (line: string) => void }): void {
  const account = program
    .command('account')
    .description("a remote meter's account: open it (its customer number, or ESAM account opening)");
  account
    .command('open')
    .description('open an account on a remote meter: set its customer number (plain meters) or run ESAM account opening 070101FF')
    .option('-c, --config <file>', 'the gateway config (YAML); default $METERD_CONFIG; its daemon must run')
    .requiredOption('--meter <id>', "the meter's id in the config")
    .requiredOption('--customer <number>', 'customer number, up to 12 digits')
    .option('--name <name>', 'the customer name, when the customer is not in the archive yet')
    .option('--room <room>', 'the room or address, when the customer is not in the archive yet')
    .option('--amount <yuan>', 'an opening purchase of money (money meters): a sale, recorded')
    .option('--kwh <kWh>', 'an opening purchase of energy (energy meters): a sale, recorded')
    .requiredOption('--operator <name>', 'who opens the account (and takes the money of an opening purchase)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Examples:
  meterd account open -c /etc/meterd/meterd.yaml --meter room-101 --customer 880000000101 --operator alice
  meterd account open -c /etc/meterd/meterd.yaml --meter esam-7 --customer 880000000107 --name "Wang Li" --room 7-101 --amount 50 --operator alice

The meter's profile says how (its account method): a plain meter gets the customer number written (0x14) and read
back; an ESAM meter runs account opening 0x03 070101FF with the station's encryption machine, the opening purchase
(or none) inside it. The archive binds the customer to the meter (history line open-account); the books get an
opening entry, and a sale only when money was taken.`,
    )
    .action(
      async (opts: {
        config?: string;
        meter: string;
        customer: string;
        name?: string;
        room?: string;
        amount?: string;
        kwh?: string;
        operator: string;
        json?: boolean;
      }) => {
        const customer = parseCustomerNo(opts.customer);
        if (!customer.ok) throw usageError(`--customer ${customer.reason}`);
        const operator = parseOperatorName(opts.operator);
        if (!operator.ok) throw usageError(`--operator ${operator.reason}`);
        if (opts.amount !== undefined && opts.kwh !== undefined) throw usageError('give at most one of --amount Y or --kwh K');
        let money: { amountFen?: number; energyKwh?: number } = {};
        if (opts.amount !== undefined) {
          const p = parseYuanText(opts.amount);
          if (!p.ok) throw usageError(`--amount ${p.reason}`);
          money = { amountFen: p.value };
        }
        if (opts.kwh !== undefined) {
          const p = parseKwhText(opts.kwh);
          if (!p.ok) throw usageError(`--kwh ${p.reason}`);
          money = { energyKwh: p.value / 100 };
        }
        const route = await routeCommand(opts);
        if (route === undefined) throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
        if (!route.config.meters.some((m) => m.id === opts.meter)) throw usageError(`no meter "${opts.meter}" in ${route.configPath}`);
        if (route.daemon === null)
          throw new CliError(
            'NO_DAEMON',
            `no meterd daemon runs for ${route.configPath}: an account is opened through it (it holds the bus and the encryption machine); start it (meterd run -c ${route.configPath}) and try again`,
          );
        const reply = await sendToDaemon(
          route.config,
          'account-open',
          {
            requestId: `cli-account-open-${randomUUID()}`,
            meter: opts.meter,
            customerNo: customer.value,
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            ...(opts.room !== undefined ? { room: opts.room } : {}),
            ...money,
            operator: operator.value,
          },
          { operator: operator.value },
        );
        const r = resultOf('account-open', reply);
        if (opts.json) return io.out(JSON.stringify(r));
        const sale = r.sale as { state: string; purchaseCount: number } | undefined;
        io.out(
          `account opened on meter ${String(r.meterId)} for customer ${String(r.customerNo)} (${r.method === 'dlt645-esam-opening' ? 'ESAM account opening' : 'customer number written and read back'}): purchase count ${String(r.purchaseCount ?? '-')}${sale ? `, opening purchase ${sale.state} as purchase ${sale.purchaseCount}` : ', no money taken'}`,
        );
      },
    );
}
