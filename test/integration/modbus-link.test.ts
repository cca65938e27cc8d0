/**
 * ModbusLink against the profile-driven simulator over real Modbus TCP: what a technician sees when a register is
 * not mapped (a named exception, sent once), when a meter is silent (BUS_TIMEOUT after the retries, never an
 * exception), which job gets the bus first, and what happens when the connection goes away and comes back.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isBusError } from '../../src/bus/errors.js';
import { ModbusError, ModbusLink, openModbusLink, type ModbusLinkOptions } from '../../src/bus/modbus-link.js';
import type { BusState } from '../../src/bus/frame-bus.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';
import { freePort } from '../helpers/free-port.js';

const profiles = loadProfiles();
const sdm120 = profiles.get('eastron-sdm120')!;
const sdm630 = profiles.get('eastron-sdm630')!;

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function simulator(opts: Partial<Parameters<typeof startModbusSimulator>[0]> = {}): Promise<ModbusSimulator> {
  const sim = await startModbusSimulator({ profile: sdm120, tcpPort: 0, ...opts });
  cleanup.push(() => sim.close());
  return sim;
}

function link(port: number, opts: Partial<ModbusLinkOptions> = {}): ModbusLink {
  const l = new ModbusLink({ id: 'bus7', port: `tcp://127.0.0.1:${port}`, protocol: 'modbus-tcp', line: sdm120.line, gapMs: 0, ...opts });
  cleanup.push(() => l.close());
  return l;
}

async function failureOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure, got a result');
}

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

describe('exceptions and timeouts', () => {
  it('a read of an unmapped register is MODBUS_EXCEPTION ILLEGAL_DATA_ADDRESS with what to check, sent once and never retried', async () => {
    const sim = await simulator();
    const l = link(sim.port!, { readRetries: 2 });
    await l.open();

    const err = await failureOf(l.readRegisters('operator', 1, 'input', 0x0300, 2));

    expect(err).toBeInstanceOf(ModbusError);
    expect(err).toMatchObject({ code: 'MODBUS_EXCEPTION', exception: 'ILLEGAL_DATA_ADDRESS', exceptionCode: 2 });
    expect((err as Error).message).toBe(
      'unit 1 answered "unit 1 FC04 input 0x0300+2" on bus7 with exception 02 ILLEGAL_DATA_ADDRESS: the meter has no register at this address, or the request runs into an unmapped register (check 0- vs 1-based addresses and the bridged gaps)',
    );
    expect(isBusError(err)).toBe(false);
    expect(sim.stats()).toMatchObject({ requests: 1, exceptions: 1 });
    expect(l.stats()).toMatchObject({ requests: 1, retries: 0, exceptions: 1, timeouts: 0 });
  });

  it('an exception on one block is that error on each of its points; the other blocks are still read', async () => {
    const sim = await simulator({ profile: sdm630 });
    const l = link(sim.port!);
    await l.open();
    // A profile that puts THD at a register this meter does not have (a typo in a site's own profile).
    const points = new Map(sdm630.points);
    points.set('thd.voltage', {
      kind: 'modbus',
      name: 'thd.voltage',
      table: 'input',
      address: 0x0300,
      type: 'float32',
      order: 'ABCD',
      scale: 1,
      offset: 0,
      unit: '%',
    });
    const meter = new ModbusMeter({ link: l, unit: 1, profile: { ...sdm630, points } });

    const read = await meter.read(['thd.voltage', 'voltage.a', 'voltage.b'], { priority: 'poll' });

    expect(read.get('thd.voltage')).toMatchObject({
      error: 'MODBUS_EXCEPTION',
      message: expect.stringContaining('exception 02 ILLEGAL_DATA_ADDRESS'),
    });
    expect(read.get('voltage.a')).toEqual({ v: 230.1, unit: 'V' });
    expect(read.get('voltage.b')).toEqual({ v: 229.8, unit: 'V' });
  });

  it('a silent meter is BUS_TIMEOUT after every retry (3 requests on the wire), never an exception', async () => {
    const sim = await simulator({ faults: { silent: true } });
    const l = link(sim.port!, { readRetries: 2 });
    await l.open();

    const err = await failureOf(l.readRegisters('poll', 1, 'input', 0x0000, 2, { timeoutMs: 100 }));

    expect(isBusError(err, 'BUS_TIMEOUT')).toBe(true);
    expect(err).not.toBeInstanceOf(ModbusError);
    expect((err as Error).message).toBe(
      `no reply from unit 1 to "unit 1 FC04 input 0x0000+2" within 100 ms on bus7 (tcp://127.0.0.1:${sim.port} modbus-tcp) after 3 attempts; check the unit id, the meter's power, the A/B wiring, baud rate and parity`,
    );
    expect(sim.stats()).toMatchObject({ requests: 3, unanswered: 3, exceptions: 0 });
    expect(l.stats()).toMatchObject({ requests: 1, retries: 2, timeouts: 1, exceptions: 0 });
  });

  it('a write that gets no reply is sent once and says to read back before sending it again', async () => {
    const sim = await simulator({ profile: profiles.get('modbus-dorm-prepaid')!, faults: { silent: true } });
    const l = link(sim.port!, { readRetries: 5 });
    await l.open();

    const err = await failureOf(l.writeRegisters('credit', 1, 0x0200, [8, 0, 1000], { timeoutMs: 100 }));

    expect(isBusError(err, 'BUS_TIMEOUT')).toBe(true);
    expect((err as Error).message).toMatch(/the write was sent once and may have executed: read the meter back before sending it again$/);
    expect(sim.stats()).toMatchObject({ requests: 1, byFunction: { '16': 1 } });
  });

  it('a meter that answers to another unit id times out for ours; a meter ModbusMeter reads passes its timeouts to the caller', async () => {
    const sim = await simulator({ unit: 5 });
    const l = link(sim.port!, { readRetries: 0 });
    await l.open();
    const meter = new ModbusMeter({ link: l, unit: 1, profile: sdm120, timeoutMs: 100 });

    await expect(meter.read(['voltage.a'], { priority: 'poll' })).rejects.toMatchObject({ code: 'BUS_TIMEOUT' });
    const five = new ModbusMeter({ link: l, unit: 5, profile: sdm120 });
    expect((await five.read(['voltage.a'], { priority: 'poll' })).get('voltage.a')).toEqual({ v: 230.1, unit: 'V' });
  });

  it('a caller that gives up gets ABORTED (the request may have reached the meter); the link stays usable', async () => {
    const sim = await simulator({ faults: { delayMs: 200 } });
    const l = link(sim.port!);
    await l.open();
    const stop = new AbortController();

    const pending = failureOf(l.readRegisters('operator', 1, 'input', 0, 2, { signal: stop.signal, label: 'voltage for the technician' }));
    const queued = failureOf(l.readRegisters('poll', 1, 'input', 6, 2, { signal: stop.signal }));
    await vi.waitFor(() => expect(sim.stats().requests).toBe(1));
    stop.abort();

    expect(await pending).toMatchObject({
      code: 'ABORTED',
      message: '"voltage for the technician" on bus7 was cancelled while on the wire; the meter may or may not have received it',
    });
    expect(await queued).toMatchObject({ code: 'ABORTED', message: expect.stringContaining('was cancelled before it got the bus') });
    sim.setFaults({ delayMs: undefined });
    expect(l.state).toBe('up');
    await expect(l.readRegisters('poll', 1, 'input', 0x46, 2)).resolves.toEqual([0x4248, 0x0000]);
  });

  it('bad arguments are refused at once, before they wait for the bus', async () => {
    const sim = await simulator();
    const l = link(sim.port!);
    await l.open();

    await expect(l.readRegisters('poll', 1, 'input', 0, 126)).rejects.toThrow(
      'count is not a whole number of registers from 1 to 125: 126',
    );
    await expect(l.writeRegisters('credit', 1, 0, [70000])).rejects.toThrow(/word 0 is not a 16-bit register value/);
    await expect(
      new ModbusLink({ id: 'b', port: '/dev/ttyUSB9', protocol: 'modbus-rtu', line: sdm120.line }).readRegisters('poll', 0, 'input', 0, 1),
    ).rejects.toMatchObject({ code: 'BUS_DOWN' });
    expect(() => new ModbusLink({ id: 'b', port: '/dev/ttyUSB9', protocol: 'modbus-tcp', line: sdm120.line })).toThrow(
      /is a serial device but the protocol is modbus-tcp/,
    );
    expect(sim.stats().requests).toBe(0);
  });
});

describe('the arbiter decides who has the bus', () => {
  it('an operator read queued behind several polls goes right after the poll on the wire', async () => {
    const sim = await simulator({ faults: { delayMs: 20 } });
    const l = link(sim.port!, { gapMs: 5 });
    await l.open();
    const order: string[] = [];
    const job = (priority: 'poll' | 'operator', name: string, start: number) =>
      l.readRegisters(priority, 1, 'input', start, 2, { label: name }).then(() => order.push(name));

    await Promise.all([
      job('poll', 'poll 1', 0x00),
      job('poll', 'poll 2', 0x06),
      job('poll', 'poll 3', 0x0c),
      job('poll', 'poll 4', 0x12),
      job('operator', 'operator', 0x46),
    ]);

    expect(order).toEqual(['poll 1', 'operator', 'poll 2', 'poll 3', 'poll 4']);
  });

  it('a poll beyond the bounded poll queue is refused with BUS_BUSY_SKIPPED; higher priorities still queue', async () => {
    const sim = await simulator({ faults: { delayMs: 20 } });
    const l = link(sim.port!, { maxQueuedPolls: 2 });
    await l.open();

    const running = l.readRegisters('poll', 1, 'input', 0, 2);
    const queued = [l.readRegisters('poll', 1, 'input', 0, 2), l.readRegisters('poll', 1, 'input', 0, 2)];
    const skipped = failureOf(l.readRegisters('poll', 1, 'input', 0, 2));
    const credit = l.readRegisters('credit', 1, 'input', 0, 2);

    expect(await skipped).toMatchObject({ code: 'BUS_BUSY_SKIPPED' });
    await Promise.all([running, ...queued, credit]);
    expect(l.stats()).toMatchObject({ skipped: 1, completed: 4, requests: 4 });
  });

  it('a session holds the bus: a write and its read-back go out with nothing between them', async () => {
    const dorm = profiles.get('modbus-dorm-prepaid')!;
    const sim = await simulator({ profile: dorm, values: { 'credit.purchase.count': 3 }, faults: { delayMs: 10 } });
    const l = link(sim.port!);
    await l.open();
    const order: string[] = [];

    const session = l.session('credit', async (tx) => {
      await tx.writeCoil(1, 0x0000, true);
      order.push('session write');
      const words = await tx.readRegisters(1, 'holding', 0x0103, 1);
      order.push('session read-back');
      return words;
    });
    const operator = l.readRegisters('operator', 1, 'holding', 0x0102, 1).then(() => order.push('operator'));

    expect(await session).toEqual([1]);
    await operator;
    expect(order).toEqual(['session write', 'session read-back', 'operator']);
  });
});

describe('losing the connection', () => {
  it('fails the request in flight and the queued ones with BUS_DOWN, refuses while down, and reconnects by itself', async () => {
    const port = await freePort();
    let sim = await startModbusSimulator({ profile: sdm120, tcpPort: port, faults: { silent: true } });
    const l = link(port, { reconnectMinMs: 50, reconnectMaxMs: 200 });
    await l.open();

    const onWire = failureOf(l.readRegisters('credit', 1, 'input', 0, 2, { timeoutMs: 15_000 }));
    const queued = failureOf(l.readRegisters('poll', 1, 'input', 6, 2, { timeoutMs: 15_000 }));
    const down = nextState(l, 'down');
    await sim.close();

    expect(await onWire).toMatchObject({
      code: 'BUS_DOWN',
      message: expect.stringMatching(/^bus7 lost tcp:\/\/127\.0\.0\.1:\d+ modbus-tcp .*may or may not have reached the meter/),
    });
    expect(await queued).toMatchObject({ code: 'BUS_DOWN' });
    await down;
    expect(l.state).toBe('down');
    await expect(l.readRegisters('poll', 1, 'input', 0, 2)).rejects.toMatchObject({ code: 'BUS_DOWN' });

    const up = nextState(l, 'up');
    sim = await startModbusSimulator({ profile: sdm120, tcpPort: port, values: { 'voltage.a': 231.4 } });
    cleanup.push(() => sim.close());
    await up;
    const meter = new ModbusMeter({ link: l, unit: 1, profile: sdm120 });
    expect((await meter.read(['voltage.a'], { priority: 'poll' })).get('voltage.a')).toEqual({ v: 231.4, unit: 'V' });
    expect(l.stats()).toMatchObject({ state: 'up', reconnects: 1 });
  });

  it('open() rejects with PORT_OPEN_FAILED and what to check when nothing listens', async () => {
    const port = await freePort();
    const err = await failureOf(openModbusLink({ id: 'bus8', port: `tcp://127.0.0.1:${port}`, protocol: 'modbus-tcp', line: sdm120.line }));

    expect(err).toMatchObject({ code: 'PORT_OPEN_FAILED' });
    expect((err as Error).message).toBe(
      `cannot open tcp://127.0.0.1:${port} modbus-tcp: nothing accepts Modbus TCP on this port: check the meter or gateway address and port (often 502) (connect ECONNREFUSED 127.0.0.1:${port})`,
    );
  });

  it('start() keeps trying until the meter is there (the daemon), then close() refuses everything with BUS_CLOSED', async () => {
    const port = await freePort();
    const l = await openModbusLink({
      id: 'bus9',
      port: `tcp://127.0.0.1:${port}`,
      protocol: 'modbus-tcp',
      line: sdm120.line,
      waitForPort: true,
      reconnectMinMs: 50,
      reconnectMaxMs: 100,
    });
    cleanup.push(() => l.close());
    expect(l.state).toBe('down');

    const up = nextState(l, 'up');
    const sim = await startModbusSimulator({ profile: sdm120, tcpPort: port });
    cleanup.push(() => sim.close());
    await up;
    await expect(l.readRegisters('poll', 1, 'input', 0, 2)).resolves.toHaveLength(2);

    await l.close();
    expect(l.state).toBe('closed');
    await expect(l.readRegisters('poll', 1, 'input', 0, 2)).rejects.toMatchObject({ code: 'BUS_CLOSED' });
  });
});
