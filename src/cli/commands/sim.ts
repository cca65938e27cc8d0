import type { Command } from 'commander';
import { ptyPairCommand } from '../../sim/cli-support.js';
import { runDlt645SimCommand } from '../../sim/dlt645/cli.js';
import { registerSimEncoderCommand } from './sim-encoder.js';
import { registerSimModbusCommand } from './sim-modbus.js';

export function registerSimCommand(program: Command): void {
  const sim = program.command('sim').description('simulated devices on a pseudo-terminal or TCP port, for tests, demos and training');
  sim
    .command('dlt645')
    .description('a bus of simulated DL/T 645 prepaid meters (addresses 000000000001…) answering on a pty or TCP port')
    .option('--pty <path>', 'serve on this pseudo-terminal (one end of a socat pair)')
    .option('--tcp <port>', 'serve on this TCP port (like a serial-over-Ethernet converter)')
    .option('--host <host>', 'TCP listen address', '127.0.0.1')
    .option('--meters <file>', 'YAML spec of the meters: addresses, kinds, registers, balances')
    .option('--count <n>', 'number of default meters (when no --meters)')
    .option('--delay <ms>', 'reply delay in ms')
    .option('--noise', 'inject line noise before replies')
    .addHelpText(
      'after',
      `
Examples:
  meterd sim dlt645 --tcp 8899 --count 5
  ${ptyPairCommand('/tmp/ttyA', '/tmp/ttyB')} &
  meterd sim dlt645 --pty /tmp/ttyB --delay 80 &
  meterd read --port /tmp/ttyA --addr 1 --point energy.active.import`,
    )
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      await runDlt645SimCommand({
        pty: opts.pty as string | undefined,
        tcp: opts.tcp as string | undefined,
        host: opts.host as string | undefined,
        meters: opts.meters as string | undefined,
        count: opts.count as string | undefined,
        delay: opts.delay as string | undefined,
        noise: Boolean(opts.noise),
      });
    });
  registerSimModbusCommand(sim);
  registerSimEncoderCommand(sim);
}
