import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { systemClock } from '../../src/clock.js';
import { enqueue, openStore } from '../../src/store/index.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';

let sim: Dlt645Simulator;
let broker: TestBroker;
let configPath: string;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [{ address: '1', registers: { 'energy.active.import': 12.5 } }, { address: '2' }] },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-doctor-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-doctor, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses: [{ id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", timeout: 300ms, retries: 0 }]
meters:
  - { id: room-1, bus: bus1, address: "1", profile: dlt645-2007-single-phase-prepaid-money }
  - { id: room-2, bus: bus1, address: "2", profile: dlt645-2007-single-phase-prepaid-money }
`,
  );
});
afterAll(async () => {
  await sim?.close();
  await broker?.close();
});

async function doctor(path = configPath): Promise<{ lines: string[]; error?: { code?: string } }> {
  const lines: string[] = [];
  try {
    await (await buildProgram({ stdin: Readable.from([]), out: (l) => lines.push(l) })).parseAsync(['doctor', '-c', path], {
      from: 'user',
    });
    return { lines };
  } catch (err) {
    return { lines, error: err as { code?: string } };
  }
}

describe('meterd doctor', () => {
  it('passes every check on a healthy installation, one line per check', async () => {
    const r = await doctor();
    expect(r.error).toBeUndefined();
    expect(r.lines).toContain('PASS  meter room-1 (000000000001) answers: energy.active.import = 12.5 kWh');
    expect(r.lines.some((l) => /^PASS {2}broker .* accepts the credentials$/.test(l))).toBe(true);
    expect(r.lines.at(-1)).toMatch(/^all \d+ checks passed$/);
    expect(r.lines).toContain(
      'PASS  station commands that move money or cut power are refused: no commands.hmacKey is set, so only read and card-read run; set a key to allow top-ups and relay commands',
    );
  });

  it('warns, without failing, when the store holds messages the broker refused for good', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-doctor-dead-'));
    const path = join(dir, 'meterd.yaml');
    writeFileSync(path, `gateway: { id: gw-doctor-dead, dataDir: ./data }\nmqtt: { url: "${broker.url}", protocolVersion: 4 }\n`);
    const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
    const { id } = store.transaction((tx) => enqueue(tx, { topic: 'alerts/x', class: 'alert', payload: {} }));
    store.outbox.refused(id, 'Not authorized (reason code 135)', { deadAfter: 1 });
    store.close();
    const r = await doctor(path);
    expect(r.error).toBeUndefined();
    expect(r.lines).toContain(
      'WARN  messages the broker refused for good: 1 dead letter(s) kept in the store: check the broker ACL for this gateway and its message size limit',
    );
  });

  it('warns, without failing, when unsigned commands may move money (commands.allowUnsigned)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-doctor-unsigned-'));
    const path = join(dir, 'meterd.yaml');
    writeFileSync(
      path,
      `gateway: { id: gw-doctor-unsigned, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
`,
    );
    const r = await doctor(path);
    expect(r.error).toBeUndefined();
    const warning = r.lines.find((l) => l.startsWith('WARN'));
    expect(warning).toMatch(/^WARN {2}station commands are not authenticated: commands\.allowUnsigned is on .* top up meters/);
    expect(r.lines.at(-1)).toMatch(/^all \d+ checks passed, 1 with a warning$/);
  });

  it('names the meter that does not answer, with the reason, and exits non-zero', async () => {
    sim.bus.setFaults({ silent: true }, '000000000002');
    const r = await doctor();
    expect(r.error).toMatchObject({ code: 'DOCTOR_FAILED' });
    expect(r.lines.find((l) => l.includes('room-2'))).toMatch(/^FAIL {2}meter room-2 \(000000000002\) answers: BUS_TIMEOUT: /);
    expect(r.lines.find((l) => l.includes('room-1'))).toMatch(/^PASS/);
  });
});
