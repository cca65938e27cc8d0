import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startModbusSimulator } from '../../src/sim/modbus/index.js';

let dlt: Dlt645Simulator;
let modbus: Awaited<ReturnType<typeof startModbusSimulator>>;

beforeAll(async () => {
  dlt = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: '7', kind: 'money', balance: 12.34, registers: { 'voltage.a': 229.9 } }] },
  });
  modbus = await startModbusSimulator({
    profile: loadProfiles().get('chint-dtsu666')!,
    unit: 3,
    tcpPort: 0,
    values: { 'voltage.a': 231.4, 'power.active': 1.234 },
  });
});
afterAll(async () => {
  await dlt?.close();
  await modbus?.close();
});

async function read(args: string[]): Promise<unknown> {
  const lines: string[] = [];
  await (await buildProgram({ stdin: Readable.from([]), out: (l) => lines.push(l) })).parseAsync(['read', ...args, '--json'], {
    from: 'user',
  });
  return JSON.parse(lines[0]!);
}

describe('meterd read --profile: the same command for any meter model', () => {
  it('a Modbus meter by unit id, scaled as its profile says', async () => {
    expect(
      await read([
        '--port',
        `tcp://127.0.0.1:${modbus.port}`,
        '--modbus-tcp',
        '--profile',
        'chint-dtsu666',
        '--unit',
        '3',
        '--point',
        'voltage.a',
        '--point',
        'power.active',
      ]),
    ).toEqual([
      { address: 'unit 3', point: 'voltage.a', di: 'holding:0x2006', value: 231.4, unit: 'V' },
      { address: 'unit 3', point: 'power.active', di: 'holding:0x2012', value: 1.234, unit: 'kW' },
    ]);
  });

  it('--point all reads every point of the profile', async () => {
    const rows = (await read([
      '--port',
      `tcp://127.0.0.1:${modbus.port}`,
      '--modbus-tcp',
      '--profile',
      'chint-dtsu666',
      '--unit',
      '3',
      '--point',
      'all',
    ])) as { point: string; error?: string }[];
    expect(rows.map((r) => r.point)).toEqual([...loadProfiles().get('chint-dtsu666')!.points.keys()]);
    expect(rows.filter((r) => r.error)).toEqual([]);
  });

  it('a DL/T 645 meter by address, with derived points such as relay.state', async () => {
    expect(
      await read([
        '--port',
        `tcp://127.0.0.1:${dlt.address!.tcpPort}`,
        '--profile',
        'dlt645-2007-single-phase-prepaid-money',
        '--addr',
        '7',
        '--point',
        'voltage.a',
        '--point',
        'credit.balance.money',
        '--point',
        'relay.state',
      ]),
    ).toEqual([
      { address: '000000000007', point: 'voltage.a', di: '02010100', value: 229.9, unit: 'V' },
      { address: '000000000007', point: 'credit.balance.money', di: '00900200', value: 12.34, unit: 'CNY' },
      { address: '000000000007', point: 'relay.state', di: 'status.word3#4', value: 0, unit: '' },
    ]);
  });
});
