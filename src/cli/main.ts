import { Command, CommanderError } from 'commander';
import { registerConfigCommand } from './commands/config.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerFrameCommand } from './commands/frame.js';
import { registerProfileCommand } from './commands/profile.js';
import { registerReadCommand } from './commands/read.js';
import { registerRunCommand } from './commands/run.js';
import { registerRelayCommand } from './commands/relay.js';
import { registerScanCommand } from './commands/scan.js';
import { registerSimCommand } from './commands/sim.js';
import { registerTimeSyncCommand } from './commands/time-sync.js';
import { errorLine } from './errors.js';
import { VERSION } from '../daemon/version.js';


/** Build the `meterd` command tree. `out` receives stdout lines, so tests can run commands in-process. */
export function buildProgram(io: { stdin: NodeJS.ReadableStream; out: (line: string) => void } = defaultIo()): Command {
  const program = new Command('meterd')
    .description('Gateway for prepaid electricity meters: DL/T 645 and Modbus on RS-485, SQLite store-and-forward, MQTT uplink.')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage and examples)')
    .exitOverride();
  registerFrameCommand(program, io);
  registerProfileCommand(program, io);
  registerRunCommand(program, io);
  registerConfigCommand(program, io);
  registerDoctorCommand(program, io);
  registerReadCommand(program, io);
  registerRelayCommand(program, io);
  registerTimeSyncCommand(program, io);
  registerScanCommand(program, io);
  registerSimCommand(program);
  registerDemoCommand(program, io);
  return program;
}

function defaultIo() {
  return { stdin: process.stdin, out: (line: string) => void process.stdout.write(line + '\n') };
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(errorLine(err) + '\n');
    return typeof (err as { exitCode?: unknown }).exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1;
  }
}
