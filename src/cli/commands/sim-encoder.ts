import { Option, type Command } from 'commander';
import type { Logger } from '../../log.js';
import { ptyPairCommand } from '../../sim/cli-support.js';
import { runEncoderSimCommand } from '../../sim/encoder/cli.js';

/**
 * Adds `meterd sim encoder` under the `sim` command: a simulated counter card encoder (STAR or meterd's STX dialect)
 * with one virtual card in its slot, on a pty or a TCP port.
 */
export function registerSimEncoderCommand(
  simCommand: Command,
  io: { out?: (line: string) => void; logger?: Logger; signal?: AbortSignal } = {},
): Command {
  return simCommand
    .command('encoder')
    .description('a simulated IC-card encoder (STAR ASCII-hex or binary STX) with a virtual SLE4442 in its slot, on a pty or TCP port')
    .option('--pty <path>', 'serve on this pseudo-terminal (one end of a socat pair)')
    .option('--tcp <port>', 'serve on this TCP port')
    .option('--host <host>', 'TCP listen address', '127.0.0.1')
    .addOption(new Option('--framing <family>', 'which framing the encoder speaks').choices(['star', 'stx']).default('star'))
    .addOption(new Option('--card <kind>', 'the card in the slot').choices(['none', 'blank', 'ours', 'foreign', 'cpu']).default('ours'))
    .option('--layout <layout>', 'card layout of an "ours" card', 'sle4442-dorm')
    .option('--meter <id>', 'meter number on an "ours" card', '000012345678')
    .option('--count <n>', 'purchase count on an "ours" card (already loaded by the meter)', '0')
    .option('--no-eject', 'a desktop encoder without a motor: eject is refused')
    .addHelpText(
      'after',
      `
Examples:
  ${ptyPairCommand('/tmp/ttyGW', '/tmp/ttyENC')} &
  meterd sim encoder --pty /tmp/ttyENC --framing star --card ours --meter 000012345678 --count 3 &
  meterd card read --port /tmp/ttyGW
  meterd sim encoder --tcp 4001 --framing stx --card blank`,
    )
    .action(
      async (opts: {
        pty?: string;
        tcp?: string;
        host?: string;
        framing: string;
        card: string;
        layout: string;
        meter: string;
        count: string;
        eject: boolean;
      }) => {
        await runEncoderSimCommand(opts, {
          out: io.out ?? ((line) => void process.stdout.write(`${line}\n`)),
          ...(io.logger ? { logger: io.logger } : {}),
          ...(io.signal ? { signal: io.signal } : {}),
        });
      },
    );
}
