import { Command, CommanderError } from 'commander';
import { VERSION } from '../daemon/version.js';
import { errorLine } from './errors.js';

export interface CliIo {
  stdin: NodeJS.ReadableStream;
  out: (line: string) => void;
}

type Register = (program: Command, io: CliIo) => void;

/**
 * Each command's module, loaded only when that command runs: `meterd run` on a gateway should not carry the
 * embedded broker, the simulators or the card tools in its memory.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  run: async () => (await import('./commands/run.js')).registerRunCommand,
  demo: async () => (await import('./commands/demo.js')).registerDemoCommand,
  config: async () => (await import('./commands/config.js')).registerConfigCommand,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctorCommand,
  read: async () => (await import('./commands/read.js')).registerReadCommand,
  relay: async () => (await import('./commands/relay.js')).registerRelayCommand,
  'time-sync': async () => (await import('./commands/time-sync.js')).registerTimeSyncCommand,
  scan: async () => (await import('./commands/scan.js')).registerScanCommand,
  frame: async () => (await import('./commands/frame.js')).registerFrameCommand,
  profile: async () => (await import('./commands/profile.js')).registerProfileCommand,
  sim: async () => (await import('./commands/sim.js')).registerSimCommand,
  card: async () => {
    const [{ registerCardCommand }, { LedgerCardSales, CardProvisioning }, { openStore }, { systemClock }, { join }] = await Promise.all([
      import('./commands/card.js'),
      import('../cards/index.js'),
      import('../store/index.js'),
      import('../clock.js'),
      import('node:path'),
    ]);
    // The counter shares the gateway's books: the dataDir of the config in METERD_CONFIG (as the daemon uses it),
    // else METERD_DATA_DIR, else ./data.
    const dataDir = async () => {
      if (process.env.METERD_CONFIG)
        return (await import('../config/index.js')).loadGatewayConfig(process.env.METERD_CONFIG).gateway.dataDir;
      return process.env.METERD_DATA_DIR ?? './data';
    };
    const dir = await dataDir();
    let store: ReturnType<typeof openStore> | undefined;
    const storeOf = () => (store ??= openStore({ path: join(dir, 'meterd.db'), clock: systemClock }));
    const books = new LedgerCardSales(storeOf);
    return (program, io) => registerCardCommand(program, io, { recorder: books, books, provisioning: new CardProvisioning(storeOf) });
  },
  topup: async () => (await import('./commands/topup.js')).registerTopupCommand,
  report: async () => (await import('./commands/report.js')).registerReportCommand,
  lineloss: async () => (await import('./commands/lineloss.js')).registerLinelossCommand,
  ledger: async () => (await import('./commands/ledger.js')).registerLedgerCommand,
  status: async () => (await import('./commands/status.js')).registerStatusCommand,
  alerts: async () => (await import('./commands/alerts.js')).registerAlertsCommand,
  supply: async () => (await import('./commands/supply.js')).registerSupplyCommand,
  archive: async () => (await import('./commands/archive.js')).registerArchiveCommand,
  adopt: async () => (await import('./commands/adopt.js')).registerAdoptCommand,
  account: async () => (await import('./commands/account.js')).registerAccountCommand,
  allowance: async () => (await import('./commands/allowance.js')).registerAllowanceCommand,
  user: async () => (await import('./commands/user.js')).registerUserCommand,
  meter: async () => (await import('./commands/meter.js')).registerMeterCommand,
};

/**
 * Build the `meterd` command tree; with `only`, just that command (the others are not even loaded).
 * `io.out` receives stdout lines, so tests can run commands in-process.
 */
export async function buildProgram(io: CliIo = defaultIo(), only?: string): Promise<Command> {
  const program = new Command('meterd')
    .description('Gateway for prepaid electricity meters: DL/T 645 and Modbus on RS-485, SQLite store-and-forward, MQTT uplink.')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage and examples)')
    .addHelpText(
      'after',
      '\nStart here:\n  npm start                          # the whole gateway on simulated meters (meterd demo)\n  meterd <command> --help            # every command has examples\n',
    )
    .exitOverride();
  const names = only !== undefined && only in COMMANDS ? [only] : Object.keys(COMMANDS);
  for (const name of names) (await COMMANDS[name]!())(program, io);
  return program;
}

function defaultIo(): CliIo {
  return { stdin: process.stdin, out: (line: string) => void process.stdout.write(`${line}\n`) };
}

export async function main(argv: string[]): Promise<number> {
  // `meterd profile list | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const program = await buildProgram(defaultIo(), argv[0]);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`${errorLine(err)}\n`);
    return typeof (err as { exitCode?: unknown }).exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1;
  }
}
