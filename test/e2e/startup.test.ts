import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestBroker, uniqueId, type TestBroker } from '../helpers/broker.js';
import { startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker.close();
});

const running: DaemonProcess[] = [];
afterEach(async () => {
  for (const d of running.splice(0)) {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      d.child.kill('SIGTERM');
      await d.exited();
    }
  }
});

function logLines(d: DaemonProcess): Record<string, unknown>[] {
  return d
    .stderr()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('meterd run at start', () => {
  it('logs a warning naming the risk when commands.allowUnsigned is on', async () => {
    const d = startDaemon(`gateway: { id: ${uniqueId('gw-unsigned')}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
`);
    running.push(d);
    await eventually(() => logLines(d).some((l) => l.allowUnsigned === true), 'the allowUnsigned warning', 20_000);
    const warning = logLines(d).find((l) => l.allowUnsigned === true);
    expect(warning).toMatchObject({ level: 40 });
    expect(warning?.msg).toMatch(/anyone who can publish .* top up meters/);
  });

  it('logs no such warning by default', async () => {
    const d = startDaemon(
      `gateway: { id: ${uniqueId('gw-signed')}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
`,
      { logLevel: 'info' },
    );
    running.push(d);
    await eventually(() => logLines(d).some((l) => l.msg === 'gateway started'), 'gateway started', 20_000);
    expect(logLines(d).filter((l) => l.allowUnsigned !== undefined)).toEqual([]);
  });
});

/** Exit code, or a failure when the process is still alive after `ms` (a deadline, not a measurement). */
async function exitWithin(d: DaemonProcess, ms: number): Promise<number | NodeJS.Signals | null> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'alive'>((resolve) => (timer = setTimeout(() => resolve('alive'), ms)));
  const result = await Promise.race([d.exited(), deadline]);
  clearTimeout(timer);
  if (result === 'alive') throw new Error(`meterd run was still running ${ms} ms after a failed start:\n${d.stderr()}`);
  return result;
}

describe('meterd run with a start that cannot succeed', () => {
  it('a broker port out of range is a config error: exits non-zero at once, naming mqtt.url, nothing opened', async () => {
    const d = startDaemon(`gateway: { id: ${uniqueId('gw-badport')}, dataDir: ./data }
mqtt: { url: "mqtt://127.0.0.1:99999", protocolVersion: 4 }
`);
    running.push(d);
    const code = await exitWithin(d, 10_000);
    expect(code).not.toBe(0);
    expect(typeof code).toBe('number');
    expect(d.stderr()).toMatch(/meterd\.yaml:2: mqtt\.url: the broker url's port 99999 is not a number from 1 to 65535/);
  });

  it('a failure after a bus has opened closes the bus and the store and exits non-zero, with no stack trace', async () => {
    const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [{ address: '000000000101' }] } });
    try {
      const d = startDaemon(`gateway: { id: ${uniqueId('gw-badbus')}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}" }
  - { id: bus2, port: "tcp://127.0.0.1:99999" }
meters:
  - { id: room-101, bus: bus1, address: "000000000101", profile: dlt645-2007-single-phase-prepaid-money }
`);
      running.push(d);
      const code = await exitWithin(d, 10_000);
      expect(code).toBe(1);
      expect(d.stderr()).toMatch(/PORT_SPEC_INVALID/);
      expect(d.stderr()).not.toMatch(/\n\s+at /);
    } finally {
      await sim.close();
    }
  });
});

describe('meterd demo', () => {
  it('says in its start-up lines that it accepts unsigned commands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-demo-'));
    const child = spawn(process.execPath, [BIN, 'demo', '--meters', '1', '--broker-port', '0', '--data', join(dir, 'data')], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => out.includes('Ctrl-C stops everything.'), `the demo's start-up lines (so far: ${out})`, 30_000);
      expect(out).toMatch(/UNSIGNED commands are accepted \(commands\.allowUnsigned: true\)/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
