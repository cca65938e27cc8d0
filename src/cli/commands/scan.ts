import type { Command } from 'commander';
import { parseAddress, type Address } from '../../../protocols/dlt645/index.js';
import { readLoneAddress } from '../../devices/dlt645-meter.js';
import { addBusOptions, parseBusOptions } from '../bus-options.js';
import { meterOn, withDlt645Bus } from '../dlt645-session.js';
import { CliError, usageError } from '../errors.js';

export function registerScanCommand(program: Command, io: { out: (line: string) => void }): void {
  const cmd = program
    .command('scan')
    .description('find meters: the address of a lone meter (wildcard read), or which of several addresses answer')
    .option('--try <addresses>', 'comma-separated addresses to try, or a range FIRST-LAST (at most 1000)')
    .option('--json', 'print JSON');
  addBusOptions(cmd).addHelpText(
    'after',
    `
Examples:
  meterd scan --port /dev/ttyUSB0                                  # one meter on the line: read its address
  meterd scan --port /dev/ttyUSB0 --try 000000000001-000000000020 --timeout 300 --retries 0

The wildcard read makes every meter that hears it answer at once: use it with one meter connected.`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const bus = parseBusOptions(opts);
    if (opts.try === undefined) {
      const address = await withDlt645Bus(bus, undefined, (link, timeoutMs) => readLoneAddress(link, timeoutMs));
      io.out(opts.json ? JSON.stringify({ address }) : `meter found: ${address}`);
      return;
    }
    const candidates = parseTry(String(opts.try));
    const found: Address[] = await withDlt645Bus(bus, undefined, async (link, timeoutMs) => {
      const answered: Address[] = [];
      for (const a of candidates) {
        try {
          await meterOn(link, a, timeoutMs, bus.retries).read('04000401');
          answered.push(a);
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === 'DLT645_ABNORMAL')
            answered.push(a); // it answered, it just lacks that item
          else if (code !== 'BUS_TIMEOUT') throw err;
        }
      }
      return answered;
    });
    if (opts.json) io.out(JSON.stringify({ tried: candidates.length, found }));
    else {
      for (const a of found) io.out(`meter found: ${a}`);
      io.out(`${found.length} of ${candidates.length} address(es) answered`);
    }
    if (found.length === 0) throw new CliError('NO_METER', 'no meter answered');
  });
}

function parseTry(text: string): Address[] {
  const range = /^(\d{1,12})-(\d{1,12})$/.exec(text);
  if (range) {
    const first = Number(range[1]);
    const last = Number(range[2]);
    if (last < first || last - first >= 1000) throw usageError('--try FIRST-LAST covers 1 to 1000 addresses');
    return Array.from({ length: last - first + 1 }, (_, i) => String(first + i).padStart(12, '0'));
  }
  return text.split(',').map((t) => {
    const r = parseAddress(t);
    if (!r.ok) throw usageError(`--try: ${r.error.message}`);
    return r.value;
  });
}
