import type { Command } from 'commander';
import { checkReply, encodeTime, meterTimeOf, parseOperatorCode, parsePassword, writeData } from '../../../protocols/dlt645/index.js';
import { sendBroadcastTime } from '../../devices/dlt645-meter.js';
import { randomUUID } from 'node:crypto';
import { addBusOptions, addressOption, parseBusOptions } from '../bus-options.js';
import { defaultOperator, resultOf, sendToDaemon } from '../daemon-client.js';
import { busOptionsOf, configuredMeter, DIRECT_HELP, routeCommand } from '../daemon-route.js';
import { meterOn, withDlt645Bus } from '../dlt645-session.js';
import { CliError, usageError } from '../errors.js';

/** Meters accept a broadcast time only within 5 minutes of their own clock (docs/reference/dlt645.md § Broadcast time 0x08). */
const BROADCAST_LIMIT_MS = 5 * 60_000;

export function registerTimeSyncCommand(program: Command, io: { out: (line: string) => void }): void {
  const cmd = program
    .command('time-sync')
    .description('set meter clocks to the gateway time: a broadcast to every meter on the line, or one meter checked before and after')
    .option('--broadcast', 'send the time to 999999999999 (no meter answers; all on the line adjust)')
    .option('--addr <address>', "read this meter's clock, correct it, and read it back")
    .option(
      '--write',
      'with --addr: when the skew is beyond the 5-minute broadcast limit, write date and time with 0x14 (needs --password)',
    )
    .option('--password <PPPPPPPP>', 'password for --write, 8 hex digits', '02000000')
    .option('--operator <CCCCCCCC>', 'operator code for --write', '00000000')
    .option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG): with --meter, or to go through its running daemon')
    .option('--meter <id>', 'a meter of the config: check its clock and correct it (through the daemon when one runs)')
    .option('--direct', DIRECT_HELP);
  addBusOptions(cmd).addHelpText(
    'after',
    `
Examples:
  meterd time-sync -c /etc/meterd/meterd.yaml --meter room-101
  meterd time-sync -c /etc/meterd/meterd.yaml --broadcast      # every DL/T 645 bus of the config
  meterd time-sync --port /dev/ttyUSB0 --broadcast
  meterd time-sync --port /dev/ttyUSB0 --addr 000012345678

Meters accept a broadcast only within 5 minutes of their own clock, once a day, away from midnight;
a larger skew needs --write with the meter's password (on the port: stop the daemon, --direct).
With a config whose daemon runs, the broadcast and the check go through the daemon's arbiter.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const wantsConfig = opts.meter !== undefined || opts.config !== undefined || opts.direct === true;
    const route = wantsConfig || process.env.METERD_CONFIG ? await routeCommand(opts as { config?: string; direct?: boolean }) : undefined;
    const meter = configuredMeter(route, opts);
    const allOfConfig = opts.broadcast === true && opts.port === undefined && route?.daemon != null;
    if (route?.daemon != null && (meter !== undefined || allOfConfig) && !opts.write) {
      const reply = await sendToDaemon(
        route.config,
        'time-sync',
        { requestId: `cli-time-${randomUUID()}`, meter: meter?.id ?? 'all' },
        { operator: defaultOperator() },
      );
      const result = resultOf('time-sync', reply);
      const buses = (result.broadcastOn as string[] | undefined)?.join(', ') ?? '';
      io.out(
        meter === undefined
          ? `broadcast time ${String(result.at)} sent on ${buses} through the daemon`
          : `meter ${meter.id}: clock set through the daemon, now ${fmtSkew(Number(result.skewSeconds ?? 0) * 1000)} the gateway`,
      );
      return;
    }
    const bus = meter !== undefined && route !== undefined ? busOptionsOf(route.config, meter) : parseBusOptions(opts);
    if (meter !== undefined) opts.addr = meter.address;
    if (Boolean(opts.broadcast) === (opts.addr !== undefined)) throw usageError('give exactly one of --broadcast or --addr ADDRESS');
    if (opts.broadcast) {
      await withDlt645Bus(bus, undefined, (link) => sendBroadcastTime(link, meterTimeOf(new Date())));
      io.out(`broadcast time ${new Date().toISOString()} sent on ${bus.port} (meters do not reply; check one with --addr)`);
      return;
    }
    const address = addressOption(opts.addr);
    const pw = parsePassword(String(opts.password));
    const op = parseOperatorCode(String(opts.operator));
    if (!pw.ok || !op.ok) throw usageError('--password and --operator are 8 hex digits each');
    await withDlt645Bus(bus, undefined, async (link, timeoutMs) => {
      const meter = meterOn(link, address, timeoutMs, bus.retries);
      const before = (await meter.clockSkewMs()).skewMs;
      io.out(`meter ${address}: clock is ${fmtSkew(before)} the gateway`);
      if (Math.abs(before) < 2000) return;
      if (Math.abs(before) <= BROADCAST_LIMIT_MS) {
        await sendBroadcastTime(link, meterTimeOf(new Date()));
      } else {
        if (!opts.write)
          throw new CliError(
            'SKEW_TOO_LARGE',
            `skew ${fmtSkew(before)} is beyond the 5-minute broadcast limit; run again with --write --password PPPPPPPP to set the clock`,
          );
        const now = meterTimeOf(new Date());
        for (const [di, layout] of [
          ['04000101', 'YYMMDDWW'],
          ['04000102', 'hhmmss'],
        ] as const) {
          const frame = writeData(address, di, pw.value, op.value, encodeTime(layout, now));
          const reply = await meter.command(frame, { label: `write ${di}` });
          const r = checkReply(reply, frame.control);
          if (!r.ok) throw new CliError(r.error.code, r.error.message);
        }
      }
      const after = (await meter.clockSkewMs()).skewMs;
      if (Math.abs(after) > 5000)
        throw new CliError(
          'TIME_NOT_SET',
          `meter ${address} did not take the time: still ${fmtSkew(after)} the gateway (a meter takes one broadcast a day, not near midnight)`,
        );
      io.out(`meter ${address}: clock set, now ${fmtSkew(after)} the gateway`);
    });
  });
}

function fmtSkew(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 2) return 'in step with';
  return `${s} s ${ms > 0 ? 'ahead of' : 'behind'}`;
}
