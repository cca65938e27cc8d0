import type { Command } from 'commander';
import { ptyPairCommand } from '../../sim/cli-support.js';
import { runModbusSimCommand } from '../../sim/modbus/cli.js';

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * Adds `meterd sim modbus` to the existing `sim` command: one simulated Modbus meter, driven by a device profile,
 * answering Modbus TCP on a port or Modbus RTU on a pseudo-terminal.
 *
 * @example
 * const sim = program.command('sim');   // as registerSimCommand makes it
 * registerSimModbusCommand(sim);
 */
export function registerSimModbusCommand(simCommand: Command): Command {
  return simCommand
    .command('modbus')
    .description('a simulated Modbus meter for a device profile, answering Modbus TCP on a port or RTU on a pty')
    .requiredOption('--profile <id|file>', 'profile id (eastron-sdm630, chint-dtsu666, modbus-dorm-prepaid, …) or a profile .yaml file')
    .option('--tcp <port>', 'serve Modbus TCP on this port (0 = any free port; never 502 by accident)')
    .option('--pty <path>', 'serve Modbus RTU on this pseudo-terminal (one end of a socat pair)')
    .option('--host <host>', 'TCP listen address', '127.0.0.1')
    .option('--unit <n>', 'unit id (slave address) it answers to', '1')
    .option(
      '--also-unit <n>',
      'another meter of the profile on the same line at this unit id, e.g. a new meter to replace onto (repeatable)',
      collect,
    )
    .option('--set <point=value>', 'start a point at this engineering value, e.g. voltage.a=231.4 (repeatable)', collect)
    .option('--delay <ms>', 'reply delay in ms')
    .option('--profiles-dir <dir>', 'also load site profiles from this folder (repeatable)', collect)
    .addHelpText(
      'after',
      `
Unmapped registers answer exception 02 (ILLEGAL_DATA_ADDRESS); register writes are taken as FC16 only.
A modbus-write prepaid profile applies a credit load when its purchase count is the meter's + 1, ignores a
repeat, and refuses any other count with exception 03 (ILLEGAL_DATA_VALUE).

Examples:
  meterd sim modbus --profile eastron-sdm630 --tcp 1502 --set voltage.a=231.4
  ${ptyPairCommand('/tmp/ttyA', '/tmp/ttyB')} &
  meterd sim modbus --profile modbus-dorm-prepaid --pty /tmp/ttyB --unit 3 --set credit.balance.energy=50
  meterd sim modbus --profile modbus-dorm-prepaid --tcp 1502 --unit 1 --also-unit 2   # a spare at unit 2 to replace onto`,
    )
    .action(async (opts: Record<string, unknown>) => {
      await runModbusSimCommand({
        profile: opts.profile as string | undefined,
        tcp: opts.tcp as string | undefined,
        pty: opts.pty as string | undefined,
        host: opts.host as string | undefined,
        unit: opts.unit as string | undefined,
        alsoUnits: opts.alsoUnit as string[] | undefined,
        set: opts.set as string[] | undefined,
        delay: opts.delay as string | undefined,
        profilesDirs: opts.profilesDir as string[] | undefined,
      });
    });
}
