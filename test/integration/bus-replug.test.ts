import { mkdtempSync, rmSync, symlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Dlt645Decoder, type Frame } from '../../protocols/dlt645/index.js';
import { FrameBus, SerialTransport, type BusStateEvent } from '../../src/bus/index.js';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';
import { createPtyPair, type PtyBridge, type PtyPair } from '../helpers/pty.js';

const LINE = { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 } as const;
const ADDRESS = '000000000201';
const VOLTAGE_A = '02010100';
const bridges: PtyBridge[] = ['socat', 'python'];

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function dltBus(path: string, id: string): FrameBus<Frame> {
  const bus = new FrameBus<Frame>({ id, transport: new SerialTransport({ path, line: LINE }), decoder: new Dlt645Decoder(), gapMs: 5 });
  cleanup.push(() => bus.close());
  return bus;
}

async function dltSim(path: string): Promise<Dlt645Simulator> {
  const sim = await startDlt645Simulator({
    port: path,
    spec: { meters: [{ address: ADDRESS, kind: 'energy', registers: { 'voltage.a': 229.7 } }] },
  });
  cleanup.push(() => sim.close());
  return sim;
}

function recordStates(bus: { on(e: 'state', l: (e: BusStateEvent) => void): unknown }): BusStateEvent[] {
  const events: BusStateEvent[] = [];
  bus.on('state', (e) => events.push(e));
  return events;
}

/** Polls like the daemon does (one read, a pause, the next), recording when each read succeeded or how it failed. */
function pollLoop(read: () => Promise<unknown>, everyMs = 100) {
  const ok: number[] = [];
  const failures: string[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        await read();
        ok.push(performance.now());
      } catch (err) {
        failures.push((err as { code?: string }).code ?? String(err));
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  cleanup.push(async () => {
    running = false;
    await done;
  });
  return {
    ok,
    failures,
    /** Resolves with the time of the first successful read after `t`. */
    nextOkAfter: async (t: number, withinMs: number): Promise<number> => {
      const deadline = performance.now() + withinMs;
      while (performance.now() < deadline) {
        const hit = ok.find((x) => x > t);
        if (hit !== undefined) return hit;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no successful read within ${withinMs} ms`);
    },
  };
}

function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

const resumeFigures: string[] = [];
afterAll(() => {
  if (resumeFigures.length) console.info(`bus replug, resume after the port came back:\n  ${resumeFigures.join('\n  ')}`);
});

describe.each(bridges)('a DL/T 645 bus whose pty pair is removed under polling and brought back (%s bridge)', (bridge) => {
  let pty: PtyPair;
  afterAll(async () => {
    await pty?.close();
  });

  it('notices the loss on an idle bus (a hangup is a 0-byte read), reopens, polls again within 5 s, and says lost → reopening → opened', async () => {
    pty = await createPtyPair(undefined, { bridge });
    let sim = await dltSim(pty.b);
    const bus = dltBus(pty.a, `replug-${bridge}`);
    const events = recordStates(bus);
    await bus.open();
    const meter = new Dlt645Meter({ link: bus, address: ADDRESS, timeoutMs: 500, readRetries: 0 });
    expect((await meter.read(VOLTAGE_A, { priority: 'poll' })).value).toMatchObject({ kind: 'number', value: 229.7 });

    // Idle: nothing on the wire when the adapter goes. The loss must still be noticed without a write.
    await pty.stop();
    await sim.close();
    await waitFor(() => bus.state === 'down', 'the bus to notice the hangup');
    expect(events.find((e) => e.change === 'lost')).toMatchObject({ state: 'down', attempt: 0, reconnects: 0 });

    const loop = pollLoop(() => meter.read(VOLTAGE_A, { priority: 'poll' }));
    await new Promise((r) => setTimeout(r, 1500));
    expect(loop.failures.length).toBeGreaterThan(0);
    expect(new Set(loop.failures)).toEqual(new Set(['BUS_DOWN']));

    const back = performance.now();
    await pty.start();
    sim = await dltSim(pty.b);
    const resumed = await loop.nextOkAfter(back, 5000);
    resumeFigures.push(`dlt645 over pty (${bridge}): ${Math.round(resumed - back)} ms`);
    expect(resumed - back).toBeLessThan(5000);

    const changes = events.map((e) => `${e.state}/${e.change}`);
    expect(changes[0]).toBe('up/opened');
    expect(changes[1]).toBe('down/lost');
    expect(changes.slice(2, -1).every((c) => c === 'down/reopening')).toBe(true);
    expect(changes.slice(2, -1).length).toBeGreaterThan(0);
    expect(changes.at(-1)).toBe('up/opened');
    expect(events.at(-1)).toMatchObject({ reconnects: 1, reason: expect.stringMatching(/^opened after \d+ failed attempts?$/) });
    expect(events.at(-1)!.downMs).toBeGreaterThan(1000);
    // While it was out, the attempts said why: the device was not there.
    expect(events.filter((e) => e.change === 'reopening').some((e) => e.errno === 'ENOENT')).toBe(true);
    expect(bus.stats()).toMatchObject({ state: 'up', reconnects: 1 });
  });
});

describe('a Modbus RTU link on the same lifecycle', () => {
  it('reopens after its pty pair is removed and brought back, and reads again within 5 s', async () => {
    const sdm120 = loadProfiles().get('eastron-sdm120')!;
    const pty = await createPtyPair(undefined, { bridge: 'socat' });
    cleanup.push(() => pty.close());
    let sim: ModbusSimulator = await startModbusSimulator({ profile: sdm120, pty: pty.b, values: { 'voltage.a': 231.4 } });
    const link = new ModbusLink({ id: 'replug-modbus', port: pty.a, protocol: 'modbus-rtu', line: sdm120.line });
    cleanup.push(() => link.close());
    const events = recordStates(link);
    await link.open();
    const meter = new ModbusMeter({ link, unit: 1, profile: sdm120 });
    const loop = pollLoop(() => meter.read(['voltage.a'], { priority: 'poll' }));
    await loop.nextOkAfter(0, 5000);

    await pty.stop();
    await sim.close();
    await waitFor(() => link.state === 'down', 'the link to notice the hangup');
    await new Promise((r) => setTimeout(r, 1000));

    const back = performance.now();
    await pty.start();
    sim = await startModbusSimulator({ profile: sdm120, pty: pty.b, values: { 'voltage.a': 231.4 } });
    cleanup.push(() => sim.close());
    const resumed = await loop.nextOkAfter(back, 5000);
    resumeFigures.push(`modbus-rtu over pty (socat): ${Math.round(resumed - back)} ms`);
    expect(resumed - back).toBeLessThan(5000);
    expect(events.map((e) => e.change)).toEqual(expect.arrayContaining(['opened', 'lost', 'reopening']));
    expect(events.at(-1)).toMatchObject({ state: 'up', change: 'opened', reconnects: 1 });
  });
});

describe('a port named by a by-id style symlink', () => {
  it('follows the link to another device after the adapter comes back in another socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-by-id-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const socket1 = await createPtyPair();
    cleanup.push(() => socket1.close());
    const byId = join(dir, 'usb-FTDI_FT232R_USB_UART_A10K4ZQ1-if00-port0');
    symlinkSync(socket1.a, byId);

    let sim = await dltSim(socket1.b);
    const transport = new SerialTransport({ path: byId, line: LINE });
    const bus = new FrameBus<Frame>({ id: 'by-id', transport, decoder: new Dlt645Decoder(), gapMs: 5 });
    cleanup.push(() => bus.close());
    const events = recordStates(bus);
    await bus.open();
    const first = transport.device;
    expect(first).toMatch(/^\/dev\/pts\/\d+$/);
    const meter = new Dlt645Meter({ link: bus, address: ADDRESS, timeoutMs: 500, readRetries: 0 });
    const loop = pollLoop(() => meter.read(VOLTAGE_A, { priority: 'poll' }));
    await loop.nextOkAfter(0, 5000);

    // The other socket's device exists before the unplug, so the kernel cannot hand out the same pts number again.
    const socket2 = await createPtyPair();
    cleanup.push(() => socket2.close());

    // Unplugged: udev removes the by-id link with the device.
    await socket1.stop();
    await sim.close();
    rmSync(byId);
    await waitFor(() => bus.state === 'down', 'the bus to notice the unplug');

    // Plugged into another socket: the same by-id name now points at the other device.
    sim = await dltSim(socket2.b);
    const back = performance.now();
    symlinkSync(socket2.a, `${byId}.new`);
    renameSync(`${byId}.new`, byId);
    const resumed = await loop.nextOkAfter(back, 5000);
    resumeFigures.push(`dlt645 via by-id link to a new device: ${Math.round(resumed - back)} ms`);
    expect(transport.device).toMatch(/^\/dev\/pts\/\d+$/);
    expect(transport.device).not.toBe(first);
    expect(events.at(-1)).toMatchObject({ state: 'up', change: 'opened', reconnects: 1 });
  });
});
