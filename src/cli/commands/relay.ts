import { Option, type Command } from 'commander';
import { meterTimeOf, parseOperatorCode, parsePassword, type RemoteAction } from '../../../protocols/dlt645/index.js';
import { randomUUID } from 'node:crypto';
import { addBusOptions, addressOption, parseBusOptions } from '../bus-options.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { busOptionsOf, configuredMeter, DIRECT_HELP, routeCommand } from '../daemon-route.js';
import { meterOn, withDlt645Bus } from '../dlt645-session.js';
import { CliError, usageError } from '../errors.js';

/** Status word 3 bits (DL/T 645-2007 Appendix A, 04000503): 4 relay actual state, 6 relay command, 12 keep-power. */
const RELAY_OPEN = 1 << 4;
const COMMAND_TRIP = 1 << 6;
const KEEP_POWER = 1 << 12;

export function registerRelayCommand(program: Command, io: { out: (line: string) => void }): void {
  const cmd = program
    .command('relay')
    .description("trip or close a meter's relay (DL/T 645 0x1C) and confirm it from status word 3")
    .option('--addr <address>', 'meter address, 12 digits')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): with --meter, or to go through its running daemon')
    .option('--meter <id>', 'a meter of the config (through the daemon when one runs)')
    .option('--direct', DIRECT_HELP)
    .addOption(new Option('--action <action>', 'what to do').choices(['trip', 'close']).makeOptionMandatory())
    .addOption(
      new Option('--close-mode <mode>', 'direct: close now (1C); allowed: the customer presses the button (1B)')
        .choices(['direct', 'allowed'])
        .default('direct'),
    )
    .option('--password <PPPPPPPP>', 'password level and password as 8 hex digits, e.g. 02000000 = level 02, password 000000', '02000000')
    .option(
      '--operator <CCCCCCCC>',
      "operator code recorded by the meter, 8 hex digits (through the daemon: the config's credentials, and the name recorded is your user name)",
      '00000000',
    )
    .option('--valid <minutes>', 'the command expires this many minutes from now, so a stale one never runs', '60')
    .option('--reason <text>', 'why: written into the 停(送)电 record with your name (through the daemon)');
  addBusOptions(cmd).addHelpText(
    'after',
    `
Examples:
  meterd relay -c /etc/meterd/meterd.yaml --meter room-101 --action trip --reason "burnt socket, customer away"
  meterd relay --port /dev/ttyUSB0 --addr 000012345678 --action trip
  meterd relay --port /dev/ttyUSB0 --addr 000012345678 --action close --password 02123456 --operator 00000001

With a config whose daemon runs, a configured meter (--meter, or the --port and --addr of one) is switched through
the daemon: its arbiter, its relay service (a trip never cuts a meter that a top-up is loading), its record.
Without a daemon the port is opened directly.
The command is sent once (never repeated blindly); the result is read back from status word 3.
Exit code 0 when the relay is confirmed in the asked state; 1 when the meter refused (its named error) or did not move.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const wantsConfig = opts.meter !== undefined || opts.config !== undefined || opts.direct === true;
    const route = wantsConfig || process.env.METERD_CONFIG ? await routeCommand(opts as { config?: string; direct?: boolean }) : undefined;
    const meter = configuredMeter(route, opts);
    if (route?.daemon != null && meter !== undefined) {
      if (opts.closeMode === 'allowed')
        throw usageError('--close-mode allowed is not a daemon command: the daemon closes directly (or stop it and use --direct)');
      const reply = await sendToDaemon(
        route.config,
        'relay',
        {
          requestId: `cli-relay-${randomUUID()}`,
          meter: meter.id,
          action: opts.action === 'trip' ? 'trip' : 'close',
          ...(typeof opts.reason === 'string' ? { reason: opts.reason } : {}),
        },
        { operator: defaultOperator() },
      );
      const result = resultOf('relay', reply);
      io.out(`meter ${meter.id}: relay ${String(result.relay)}, confirmed by the daemon${result.note ? ` (${String(result.note)})` : ''}`);
      return;
    }
    if (meter !== undefined && route !== undefined && meter.address === undefined)
      throw usageError(`meter ${meter.id} is not a DL/T 645 meter; without the daemon, relay works on DL/T 645 meters only`);
    const bus = meter !== undefined && route !== undefined ? busOptionsOf(route.config, meter) : parseBusOptions(opts);
    if (meter === undefined && opts.addr === undefined) throw usageError('give --addr ADDRESS, or -c FILE --meter ID');
    const address = meter?.address ?? addressOption(opts.addr);
    const pw = parsePassword(String(opts.password));
    if (!pw.ok) throw usageError(`--password: ${pw.error.message}`);
    const op = parseOperatorCode(String(opts.operator));
    if (!op.ok) throw usageError(`--operator: ${op.error.message}`);
    const minutes = Number(opts.valid);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw usageError('--valid is whole minutes, 1 to 1440');
    const action: RemoteAction = opts.action === 'trip' ? 'trip' : opts.closeMode === 'allowed' ? 'close-allowed' : 'close';
    const validUntil = meterTimeOf(new Date(Date.now() + minutes * 60_000));

    const word = await withDlt645Bus(bus, undefined, async (link, timeoutMs) => {
      const meter = meterOn(link, address, timeoutMs, bus.retries);
      await meter.remoteControl(action, { password: pw.value, operator: op.value, validUntil });
      const r = await meter.read('04000503');
      if (r.value.kind !== 'word')
        throw new CliError('RELAY_NOT_CONFIRMED', `the command was accepted but status word 3 could not be read (${r.value.kind})`);
      return r.value.value;
    });
    const open = (word & RELAY_OPEN) !== 0;
    const state = `status word 3 = 0x${word.toString(16).padStart(4, '0').toUpperCase()}: relay ${open ? 'open' : 'closed'}, command ${word & COMMAND_TRIP ? 'trip' : 'close'}${word & KEEP_POWER ? ', keep-power on' : ''}`;
    if (action === 'trip' && !open)
      throw new CliError('RELAY_NOT_CONFIRMED', `meter ${address} accepted the trip but its relay is still closed (${state})`);
    if (action === 'close' && open)
      throw new CliError('RELAY_NOT_CONFIRMED', `meter ${address} accepted the close but its relay is still open (${state})`);
    if (action === 'close-allowed' && open) {
      io.out(`meter ${address}: close allowed; the relay closes when the customer presses the button (${state})`);
      return;
    }
    io.out(`meter ${address}: relay ${open ? 'open (tripped)' : 'closed'}, confirmed (${state})`);
  });
}
