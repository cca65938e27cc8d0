/**
 * `meterd sim modbus`: the runner serves a profile until stopped and says where on one line; a technician then reads
 * it with any Modbus client. Bad flags are refused with what to type instead.
 */
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { registerSimModbusCommand } from '../../src/cli/commands/sim-modbus.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfileFile, loadProfiles } from '../../src/profiles/registry.js';
import { runModbusSimCommand } from '../../src/sim/modbus/cli.js';
import { freePort } from '../helpers/free-port.js';

function capture(): { stream: Writable; text: () => string; line: Promise<string> } {
  let text = '';
  let gotLine: (line: string) => void = () => undefined;
  const line = new Promise<string>((resolve) => (gotLine = resolve));
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      if (text.includes('\n')) gotLine(text.split('\n')[0]!);
      done();
    },
  });
  return { stream, text: () => text, line };
}

describe('meterd sim modbus', () => {
  it('serves the profile on the TCP port with the values given by --set, prints one line, and stops when told', async () => {
    const port = await freePort();
    const out = capture();
    const stop = new AbortController();
    const running = runModbusSimCommand(
      { profile: 'chint-dtsu666', tcp: String(port), unit: '4', set: ['voltage.a=231.4', 'ct.ratio=40'] },
      { stdout: out.stream, signal: stop.signal },
    );

    expect(await out.line).toBe(`modbus simulator chint-dtsu666 unit 4: Modbus TCP on 127.0.0.1:${port}, 23 points`);
    const profile = loadProfiles().get('chint-dtsu666')!;
    const link = new ModbusLink({ id: 'cli', port: `tcp://127.0.0.1:${port}`, protocol: 'modbus-tcp', line: profile.line });
    await link.open();
    try {
      const read = await new ModbusMeter({ link, unit: 4, profile }).read(['voltage.a', 'ct.ratio'], { priority: 'operator' });
      expect(Object.fromEntries(read)).toEqual({ 'voltage.a': { v: 231.4, unit: 'V' }, 'ct.ratio': { v: 40, unit: '' } });
    } finally {
      await link.close();
      stop.abort();
      await running;
    }
    expect(out.text().split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('--also-unit puts more meters of the profile on the line, each answering at its own unit id', async () => {
    const port = await freePort();
    const out = capture();
    const stop = new AbortController();
    const running = runModbusSimCommand(
      { profile: 'modbus-dorm-prepaid', tcp: String(port), unit: '1', alsoUnits: ['2'], set: ['credit.purchase.count=5'] },
      { stdout: out.stream, signal: stop.signal },
    );
    expect(await out.line).toMatch(/^modbus simulator modbus-dorm-prepaid units 1, 2: Modbus TCP/);
    const profile = loadProfiles().get('modbus-dorm-prepaid')!;
    const link = new ModbusLink({ id: 'cli', port: `tcp://127.0.0.1:${port}`, protocol: 'modbus-tcp', line: profile.line });
    await link.open();
    try {
      const count = async (unit: number) =>
        (await new ModbusMeter({ link, unit, profile }).read(['credit.purchase.count'], { priority: 'operator' })).get(
          'credit.purchase.count',
        );
      // --set is the first meter's; the spare starts at the profile's defaults.
      expect(await count(1)).toEqual({ v: 5, unit: '' });
      expect(await count(2)).toEqual({ v: 0, unit: '' });
    } finally {
      await link.close();
      stop.abort();
      await running;
    }
    await expect(runModbusSimCommand({ profile: 'modbus-dorm-prepaid', tcp: '0', unit: '1', alsoUnits: ['1'] })).rejects.toThrow(
      /its own unit id/,
    );
  });

  it('takes a profile file that exists only on disk', async () => {
    const file = fileURLToPath(new URL('../fixtures/profiles/acme-dds100.yaml', import.meta.url));
    const out = capture();
    const stop = new AbortController();
    const running = runModbusSimCommand({ profile: file, tcp: 0 }, { stdout: out.stream, signal: stop.signal });

    expect(await out.line).toMatch(/^modbus simulator acme-dds100 unit 1: Modbus TCP on 127\.0\.0\.1:\d+, 10 points$/);
    expect(loadProfileFile(file).id).toBe('acme-dds100');
    stop.abort();
    await running;
  });

  it.each([
    [{ profile: 'eastron-sdm120' }, 'give exactly one of --tcp PORT or --pty PATH'],
    [
      { profile: 'eastron-sdm999', tcp: 0 },
      /^no profile "eastron-sdm999"; Modbus profiles: chint-ddsu666, chint-dtsu666, eastron-sdm120, eastron-sdm630, modbus-dorm-prepaid/,
    ],
    [
      { profile: 'dlt645-2007-three-phase', tcp: 0 },
      'profile dlt645-2007-three-phase is dlt645-2007; use meterd sim dlt645 for DL/T 645 meters',
    ],
    [{ profile: 'eastron-sdm120', tcp: 0, unit: '0' }, '--unit 0 is not a whole number from 1 to 247'],
    [{ profile: 'eastron-sdm120', tcp: 0, set: ['voltage.a:231'] }, '--set voltage.a:231: write point=value, e.g. voltage.a=231.4'],
    [
      { profile: 'modbus-dorm-prepaid', tcp: 0, set: ['voltage.a=231.45'] },
      /^cannot set voltage\.a to 231\.45: 231\.45 is not a whole number of 0\.1 steps/,
    ],
  ])('refuses %j with a message saying what to do', async (options, message) => {
    await expect(runModbusSimCommand(options, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'SIM_USAGE', message });
  });

  it('registerSimModbusCommand adds `modbus` under an existing `sim` command with its flags', () => {
    const program = new Command('meterd');
    const sim = program.command('sim');
    registerSimModbusCommand(sim);

    const modbus = sim.commands.find((c) => c.name() === 'modbus')!;
    expect(modbus.options.map((o) => o.long)).toEqual([
      '--profile',
      '--tcp',
      '--pty',
      '--host',
      '--unit',
      '--also-unit',
      '--set',
      '--delay',
      '--profiles-dir',
    ]);
    expect(modbus.helpInformation()).toContain('meterd sim modbus [options]');
  });
});
