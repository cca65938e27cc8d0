import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Dlt645Decoder, freeze, encodeFrame, isReplyTo, type Frame } from '../../protocols/dlt645/index.js';
import { openBus, type FrameBus } from '../../src/bus/index.js';
import { buildProgram } from '../../src/cli/main.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../src/devices/dlt645-points.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;
const M1 = '000012345678';
const M2 = '000012345679';

let pty: PtyPair;
let sim: Dlt645Simulator;

beforeAll(async () => {
  pty = await createPtyPair();
  sim = await startDlt645Simulator({
    port: pty.b,
    spec: {
      meters: [
        {
          address: M1,
          kind: 'energy',
          balance: 88.5,
          purchaseCount: 3,
          registers: { 'energy.active.import': 1234.56, 'voltage.a': 229.7 },
        },
        {
          address: M2,
          kind: 'money',
          balance: 40.25,
          registers: { 'energy.active.import': 2222.22, 'voltage.a': 231.4 },
          clockOffsetSeconds: 90,
          maxBroadcastSkewSeconds: 300,
        },
      ],
    },
  });
});
afterAll(async () => {
  await sim?.close();
  await pty?.close();
});

async function cli(args: string[]): Promise<{ lines: string[]; error?: { code?: string; message: string } }> {
  const lines: string[] = [];
  const program = await buildProgram({ stdin: Readable.from([]), out: (l) => lines.push(l) });
  try {
    await program.parseAsync([...args, '--port', pty.a], { from: 'user' });
    return { lines };
  } catch (err) {
    return { lines, error: err as { code?: string; message: string } };
  }
}

describe('technician commands over a real pty pair (serialport) against the simulator', () => {
  afterEach(() => {
    // Fields passed as undefined are cleared; an empty object would keep them.
    const none = { silent: undefined, noise: undefined, delayMs: undefined, echo: undefined };
    sim.bus.setFaults(none);
    for (const a of [M1, M2]) sim.bus.setFaults(none, a);
  });

  it("meterd read prints the meter's values with units", async () => {
    const r = await cli([
      'read',
      '--addr',
      '12345678',
      '--point',
      'energy.active.import',
      '--point',
      'voltage.a',
      '--point',
      'credit.balance.energy',
      '--json',
    ]);
    expect(r.error).toBeUndefined();
    expect(JSON.parse(r.lines[0]!)).toEqual([
      { address: M1, point: 'energy.active.import', di: '00010000', value: 1234.56, unit: 'kWh' },
      { address: M1, point: 'voltage.a', di: '02010100', value: 229.7, unit: 'V' },
      { address: M1, point: 'credit.balance.energy', di: '00900100', value: 88.5, unit: 'kWh' },
    ]);
  });

  it('two meters on one bus each answer for themselves', async () => {
    const r = await cli(['read', '--addr', M2, '--point', 'energy.active.import', '--json']);
    expect(JSON.parse(r.lines[0]!)[0]).toMatchObject({ address: M2, value: 2222.22 });
  });

  it('meterd relay trips, then closes, each confirmed by status word 3 and by the meter itself', async () => {
    const trip = await cli(['relay', '--addr', M1, '--action', 'trip']);
    expect(trip.error).toBeUndefined();
    expect(trip.lines[0]).toMatch(/relay open \(tripped\), confirmed/);
    expect(sim.meters.get(M1)!.snapshot().relay.open).toBe(true);
    const close = await cli(['relay', '--addr', M1, '--action', 'close']);
    expect(close.lines[0]).toMatch(/relay closed, confirmed/);
    expect(sim.meters.get(M1)!.snapshot().relay.open).toBe(false);
  });

  it("a wrong password fails with the meter's named error and the relay does not move", async () => {
    const r = await cli(['relay', '--addr', M1, '--action', 'trip', '--password', '02999999']);
    expect(r.error).toMatchObject({ code: 'DLT645_ABNORMAL' });
    expect(r.error!.message).toMatch(/password-error/);
    expect(sim.meters.get(M1)!.snapshot().relay.open).toBe(false);
  });

  it('meterd time-sync corrects a meter 90 s ahead and confirms by reading its clock back', async () => {
    const r = await cli(['time-sync', '--addr', M2]);
    expect(r.error).toBeUndefined();
    expect(r.lines[0]).toMatch(/ahead of the gateway/);
    expect(r.lines[1]).toMatch(/clock set/);
    expect(Math.abs(sim.meters.get(M2)!.snapshot().clockMs - Date.now())).toBeLessThan(5000);
  });

  it('a silent meter gives BUS_TIMEOUT with the attempts counted', async () => {
    sim.bus.setFaults({ silent: true }, M1);
    const r = await cli(['read', '--addr', M1, '--point', 'voltage.a', '--timeout', '200', '--retries', '1']);
    expect(r.error).toMatchObject({ code: 'BUS_TIMEOUT' });
    expect(r.error!.message).toMatch(/after 2 attempts/);
  });

  it('meterd scan finds which addresses answer', async () => {
    const r = await cli(['scan', '--try', `${M1},${M2},000000000003`, '--timeout', '200', '--retries', '0']);
    expect(r.lines).toEqual([`meter found: ${M1}`, `meter found: ${M2}`, '2 of 3 address(es) answered']);
  });
});

describe('the DL/T 645 driver over a real pty', () => {
  let bus: FrameBus<Frame>;
  beforeAll(async () => {
    bus = await openBus({ id: 'bus1', port: pty.a, line: LINE, decoder: new Dlt645Decoder() });
  });
  afterAll(async () => bus?.close());
  afterEach(() => {
    // Fields passed as undefined are cleared; an empty object would keep them.
    const none = { silent: undefined, noise: undefined, delayMs: undefined, echo: undefined };
    sim.bus.setFaults(none);
    for (const a of [M1, M2]) sim.bus.setFaults(none, a);
  });
  const meter = (address = M1) => new Dlt645Meter({ link: bus, address, timeoutMs: 400, readRetries: 2 });

  it('a dropped reply is retried and the read succeeds', async () => {
    const before = bus.stats().retries;
    sim.bus.dropNext(1, M1);
    const r = await meter().read('02010100');
    expect(r.value).toMatchObject({ kind: 'number', value: 229.7 });
    expect(bus.stats().retries).toBe(before + 1);
  });

  it('a noisy line: garbage before every reply is discarded and counted, the values are right', async () => {
    const before = bus.stats().discardedBytes;
    sim.bus.setFaults({ noise: 6 });
    for (let i = 0; i < 5; i++) expect((await meter().read('00010000')).value).toMatchObject({ value: 1234.56 });
    expect(bus.stats().discardedBytes).toBeGreaterThan(before);
  });

  it('a corrupted reply (bad checksum) is never delivered; the retry gets the good one', async () => {
    sim.bus.corruptNext(1, M1);
    expect((await meter().read('02010100')).value).toMatchObject({ value: 229.7 });
  });

  it('a meter that refuses block identifiers is read item by item, and the refusal is remembered', async () => {
    const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid')!;
    const refusing = await startDlt645Simulator({
      tcpPort: 0,
      spec: {
        meters: [
          {
            address: '1',
            kind: 'energy',
            blockReads: false,
            registers: {
              'energy.active.import': 10,
              'energy.active.import.t1': 1,
              'energy.active.import.t2': 2,
              'energy.active.import.t3': 3,
              'energy.active.import.t4': 4,
            },
          },
        ],
      },
    });
    const tcpBus = await openBus({
      id: 'tcp',
      port: `tcp://127.0.0.1:${refusing.address!.tcpPort}`,
      line: LINE,
      decoder: new Dlt645Decoder(),
    });
    try {
      const reader = new Dlt645PointReader(new Dlt645Meter({ link: tcpBus, address: '000000000001', timeoutMs: 400 }), profile);
      const names = [
        'energy.active.import',
        'energy.active.import.t1',
        'energy.active.import.t2',
        'energy.active.import.t3',
        'energy.active.import.t4',
      ];
      const first = await reader.read(names, { priority: 'poll' });
      expect([...first.values()].map((v) => ('v' in v ? v.v : v.error))).toEqual([10, 1, 2, 3, 4]);
      expect(reader.refusedBlocks).toEqual(['0001FF00']);
      const requests = refusing.bus.stats().requests;
      await reader.read(names, { priority: 'poll' });
      expect(refusing.bus.stats().requests - requests).toBe(5); // no second block attempt
    } finally {
      await tcpBus.close();
      await refusing.close();
    }
  });

  it('a port that vanishes fails requests with BUS_DOWN, and works again when it returns', async () => {
    await pty.stop();
    await expect(meter().read('02010100')).rejects.toMatchObject({ code: 'BUS_DOWN' });
    await pty.start();
    await sim.bus.attach(pty.b);
    const deadline = Date.now() + 10_000;
    while (bus.state !== 'up' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(bus.state).toBe('up');
    expect((await meter().read('02010100')).value).toMatchObject({ value: 229.7 });
  });

  it('a freeze command is acknowledged and the daily-freeze identifiers then hold the energy', async () => {
    const frame = freeze(M1, 'now');
    const reply = await bus.request('operator', {
      bytes: encodeFrame(frame, { preamble: 4 }),
      match: (f) => isReplyTo(frame, f),
      timeoutMs: 400,
      retries: 0,
    });
    expect(reply?.control).toBe(0x96);
    expect((await meter().read('05060101')).value).toMatchObject({ kind: 'list' });
  });
});
