/**
 * Modbus RTU through the real serialport path: ModbusLink opens one end of a pty pair with the profile's line
 * settings, the simulator (modbus-serial's ServerSerial) answers on the other. Also RTU frames through a
 * serial-to-Ethernet converter (a TCP socket carrying bare RTU frames to the same line), and a port that vanishes.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SerialPort } from 'serialport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BusState } from '../../src/bus/frame-bus.js';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

const sdm120 = loadProfiles().get('eastron-sdm120')!;
const VALUES = {
  'voltage.a': 231.4,
  'current.a': 5.12,
  'power.active': 1.132,
  'power.apparent': 1.155,
  'power.reactive': 0.231,
  'power.factor': 0.982,
  frequency: 49.98,
  'energy.active.import': 12345.67,
  'energy.active.export': 23.45,
  'energy.reactive.import': 812.4,
  'energy.reactive.export': 3.1,
  'energy.active.total': 12369.12,
};
const EXPECTED = {
  'voltage.a': { v: 231.4, unit: 'V' },
  'current.a': { v: 5.12, unit: 'A' },
  'power.active': { v: 1.132, unit: 'kW' },
  'power.apparent': { v: 1.155, unit: 'kVA' },
  'power.reactive': { v: 0.231, unit: 'kvar' },
  'power.factor': { v: 0.982, unit: '' },
  frequency: { v: 49.98, unit: 'Hz' },
  'energy.active.import': { v: 12345.67, unit: 'kWh' },
  'energy.active.export': { v: 23.45, unit: 'kWh' },
  'energy.reactive.import': { v: 812.4, unit: 'kvarh' },
  'energy.reactive.export': { v: 3.1, unit: 'kvarh' },
  'energy.active.total': { v: 12369.12, unit: 'kWh' },
};

function nextState(l: ModbusLink, state: BusState): Promise<string> {
  return new Promise((resolve) => {
    const listen = (e: { state: BusState; reason: string }): void => {
      if (e.state !== state) return;
      l.off('state', listen);
      resolve(e.reason);
    };
    l.on('state', listen);
  });
}

async function failureOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure, got a result');
}

describe('Modbus RTU on a serial port (pty pair)', () => {
  let pty: PtyPair;
  let sim: ModbusSimulator;
  let link: ModbusLink;

  beforeAll(async () => {
    pty = await createPtyPair();
    sim = await startModbusSimulator({ profile: sdm120, pty: pty.b, unit: 3, values: VALUES });
    link = new ModbusLink({ id: 'rs485-1', port: pty.a, protocol: 'modbus-rtu', line: sdm120.line, gapMs: 5 });
    await link.open();
  });
  afterAll(async () => {
    await link?.close();
    await sim?.close();
    await pty?.close();
  });

  it('eastron-sdm120 unit 3: every point reads back as set, in 8 planned requests', async () => {
    const meter = new ModbusMeter({ link, unit: 3, profile: sdm120, meterId: 'sdm120-3' });
    const before = sim.stats().requests;

    const read = await meter.read([...sdm120.points.keys()], { priority: 'poll' });

    expect(Object.fromEntries(read)).toEqual(EXPECTED);
    expect(sim.stats().requests - before).toBe(8);
    expect(link.stats()).toMatchObject({ port: `${pty.a} 2400 8N1 modbus-rtu`, state: 'up', timeouts: 0, exceptions: 0 });
  });

  it('an unmapped register is ILLEGAL_DATA_ADDRESS over RTU too; a request to another unit id is a timeout', async () => {
    await expect(link.readRegisters('operator', 3, 'input', 0x0300, 2)).rejects.toMatchObject({
      code: 'MODBUS_EXCEPTION',
      exception: 'ILLEGAL_DATA_ADDRESS',
    });
    await expect(link.readRegisters('operator', 4, 'input', 0x0000, 2, { timeoutMs: 150, retries: 0 })).rejects.toMatchObject({
      code: 'BUS_TIMEOUT',
    });
    // A timeout is not a lost port: the next request on the line is answered.
    expect(await link.readRegisters('operator', 3, 'input', 0x0000, 2)).toEqual([0x4367, 0x6666]);
  });
});

/** A serial-to-Ethernet converter in transparent mode: bytes from its TCP client go to the serial line and back. */
async function converter(path: string): Promise<{ port: number; close(): Promise<void> }> {
  const serial = new SerialPort({ path, baudRate: 2400, autoOpen: false });
  await new Promise<void>((resolve, reject) => serial.open((err) => (err ? reject(err) : resolve())));
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => serial.write(chunk));
    const back = (chunk: Buffer): void => void socket.write(chunk);
    serial.on('data', back);
    socket.on('close', () => {
      serial.off('data', back);
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => serial.close(() => resolve()));
    },
  };
}

describe('Modbus RTU through a serial-to-Ethernet converter (tcp:// with modbus-rtu)', () => {
  let pty: PtyPair;
  let sim: ModbusSimulator;
  let gateway: { port: number; close(): Promise<void> };
  let link: ModbusLink;

  beforeAll(async () => {
    pty = await createPtyPair();
    sim = await startModbusSimulator({ profile: sdm120, pty: pty.b, values: VALUES });
    gateway = await converter(pty.a);
    link = new ModbusLink({
      id: 'converter-1',
      port: `tcp://127.0.0.1:${gateway.port}`,
      protocol: 'modbus-rtu',
      line: sdm120.line,
      gapMs: 5,
    });
    await link.open();
  });
  afterAll(async () => {
    await link?.close();
    await gateway?.close();
    await sim?.close();
    await pty?.close();
  });

  it('sends bare RTU frames (CRC, no MBAP header) that the meter on the line answers', async () => {
    const meter = new ModbusMeter({ link, unit: 1, profile: sdm120 });

    const read = await meter.read([...sdm120.points.keys()], { priority: 'poll' });

    expect(Object.fromEntries(read)).toEqual(EXPECTED);
    expect(link.stats()).toMatchObject({ port: `tcp://127.0.0.1:${gateway.port} modbus-rtu`, requests: 8, timeouts: 0 });
  });
});

describe('a serial port that vanishes and comes back', () => {
  let pty: PtyPair;
  const sims: ModbusSimulator[] = [];
  let link: ModbusLink | undefined;

  beforeAll(async () => {
    pty = await createPtyPair();
  });
  afterEach(async () => {
    await link?.close();
    for (const s of sims.splice(0)) await s.close();
  });
  afterAll(async () => {
    await pty?.close();
  });

  it('fails the request on the wire with BUS_DOWN, refuses while down, reopens the port and reads again', async () => {
    sims.push(await startModbusSimulator({ profile: sdm120, pty: pty.b, faults: { silent: true } }));
    link = new ModbusLink({
      id: 'rs485-2',
      port: pty.a,
      protocol: 'modbus-rtu',
      line: sdm120.line,
      reconnectMinMs: 50,
      reconnectMaxMs: 200,
    });
    await link.open();

    const onWire = failureOf(link.readRegisters('credit', 1, 'input', 0, 2, { timeoutMs: 15_000 }));
    const queued = failureOf(link.readRegisters('poll', 1, 'input', 6, 2, { timeoutMs: 15_000 }));
    const down = nextState(link, 'down');
    await pty.stop();

    expect(await onWire).toMatchObject({
      code: 'BUS_DOWN',
      message: expect.stringMatching(new RegExp(`^rs485-2 lost ${pty.a} 2400 8N1 modbus-rtu .*check the USB adapter and cable$`)),
    });
    expect(await queued).toMatchObject({ code: 'BUS_DOWN' });
    await down;
    await expect(link.readRegisters('poll', 1, 'input', 0, 2)).rejects.toMatchObject({ code: 'BUS_DOWN' });

    for (const s of sims.splice(0)) await s.close();
    const up = nextState(link, 'up');
    await pty.start();
    sims.push(await startModbusSimulator({ profile: sdm120, pty: pty.b, values: { 'voltage.a': 231.4 } }));
    await up;
    const meter = new ModbusMeter({ link, unit: 1, profile: sdm120 });
    expect((await meter.read(['voltage.a'], { priority: 'poll' })).get('voltage.a')).toEqual({ v: 231.4, unit: 'V' });
    expect(link.stats()).toMatchObject({ state: 'up', reconnects: 1 });
  });
});
