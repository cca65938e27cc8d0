import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { startModbusSimulator, type ModbusSimulator } from '../../src/sim/modbus/index.js';
import { allowanceRows, openStore, type AllowanceRow, type Store } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, type TestBroker } from '../helpers/broker.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// Dormitory meters that keep free energy apart, per circuit (device-profiles/modbus-dorm-subsidy.yaml), driven through
// the real `meterd` process: an allowance round writes each circuit's free-energy register once with its share and
// verifies it, leaving the paid wallet and its purchase counter alone; a SIGKILL between the write and the read-back
// and a restart do not grant twice; a meter without free-energy registers gets an ordinary purchase; a money
// allowance on a kWh register is parked. The simulated meters' registers and write logs prove it.

const profiles = loadProfiles();
const subsidyProfile = profiles.get('modbus-dorm-subsidy')!;
const prepaidProfile = profiles.get('modbus-dorm-prepaid')!;
const AC = 0x0110;
const LIGHTING = 0x0112;
const KEY = { allowance: 'dorm-free', term: 'term-1', round: 'r1' };

interface Room {
  readonly id: string;
  readonly profile: 'modbus-dorm-subsidy' | 'modbus-dorm-prepaid';
  readonly tag: string;
  sim?: ModbusSimulator;
}
// room-a is killed between its write and its read-back; room-c's allowance is in yuan, its registers hold kWh.
const rooms: Room[] = [
  { id: 'room-a', profile: 'modbus-dorm-subsidy', tag: 'dorm' },
  { id: 'room-b', profile: 'modbus-dorm-subsidy', tag: 'dorm' },
  { id: 'room-p', profile: 'modbus-dorm-prepaid', tag: 'dorm' },
  { id: 'room-c', profile: 'modbus-dorm-subsidy', tag: 'yuan' },
];
const [roomA, roomB, roomP, roomC] = rooms as [Room, Room, Room, Room];
const START = { 'credit.purchase.count': 4, 'credit.balance.energy': 12.5, 'energy.active.import': 321.09 };
const FREE = { 'credit.free.energy.ac': 1.5, 'credit.free.energy.lighting': 0.25 };

let broker: TestBroker;
let daemon: DaemonProcess | undefined;
let dir: string | undefined;
const gw = uniqueId('gw-subsidy');

function config(): string {
  return `gateway: { id: ${gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${rooms.map((r, i) => `  - { id: bus${i}, port: "tcp://127.0.0.1:${r.sim!.port}", protocol: modbus-tcp, gap: 2ms, timeout: 4s, retries: 0 }`).join('\n')}
meters:
${rooms.map((r, i) => `  - { id: ${r.id}, bus: bus${i}, unit: 1, profile: ${r.profile}, tags: [${r.tag}] }`).join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    energyKwh: 30
    at: "00:00"
    deadline: 1d
    retry: 1s
    terms:
      - id: term-1
        rounds:
          - { id: r1, date: "${new Date().toISOString().slice(0, 10)}" }
  - id: yuan-free
    meters: { tags: [yuan] }
    amountFen: 1500
    at: "00:00"
    deadline: 1d
    terms:
      - id: term-1
        rounds:
          - { id: r1, date: "${new Date().toISOString().slice(0, 10)}" }
`;
}

function withStore<T>(fn: (store: Store) => T): T {
  const store = openStore({ path: join(dir!, 'data', 'meterd.db'), clock: systemClock, checkAtOpen: false });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}
const rowsOf = (allowance: string): AllowanceRow[] => {
  try {
    return withStore((s) => s.transaction((tx) => allowanceRows(tx, { ...KEY, allowance })));
  } catch {
    return [];
  }
};
/** The FC16 writes a room's meter took at one address. */
const writesAt = (r: Room, address: number) => r.sim!.meter.writes().filter((w) => w.start === address);

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`gave up waiting for ${what}; daemon log:\n${daemon?.stderr().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  broker = await startTestBroker();
  for (const r of rooms)
    r.sim = await startModbusSimulator({
      profile: r.profile === 'modbus-dorm-subsidy' ? subsidyProfile : prepaidProfile,
      tcpPort: 0,
      values: r.profile === 'modbus-dorm-subsidy' ? { ...START, ...FREE } : START,
    });
  // Slow answers from room-a, so the daemon can be killed after the meter took the write and before it read it back.
  roomA.sim!.setFaults({ delayMs: 1500 });
});

afterAll(async () => {
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await clearRetained(broker.url, [`meterd/${gw}/status`, `meterd/${gw}/allowances/dorm-free`, `meterd/${gw}/allowances/yuan-free`]);
  await Promise.all(rooms.map((r) => r.sim?.close()));
  await broker?.close();
});

describe('allowances on meters with free-energy registers, with the meterd process', { timeout: 120_000 }, () => {
  it('writes each circuit its share once, survives a SIGKILL between write and read-back, and parks a unit mismatch', async () => {
    daemon = startDaemon(config(), { logLevel: 'warn' });
    dir = daemon.dir;

    // The meter took the first register's write; its answer (and the read-back) are still 1.5 s away.
    await until(() => writesAt(roomA, AC).length === 1, "room-a's air-conditioning register written", 60_000);
    daemon.child.kill('SIGKILL');
    await daemon.exited();
    expect(withStore((s) => s.ledger.open().map((e) => [e.meterId, e.state]))).toEqual([['room-a', 'writing']]);
    expect(writesAt(roomA, LIGHTING)).toEqual([]);
    roomA.sim!.setFaults({ delayMs: 0 });

    daemon = startDaemon(config(), { dir, logLevel: 'warn' });
    await until(
      () => {
        const dorm = rowsOf('dorm-free');
        const yuan = rowsOf('yuan-free');
        return dorm.length === 3 && dorm.every((r) => r.state === 'applied') && yuan.length === 1 && yuan[0]!.state === 'needs-attention';
      },
      'the dorm round applied and the yuan row parked',
      60_000,
    );

    // 30 kWh: two thirds to air conditioning, one third to lighting, each register written exactly once, with the
    // absolute value (its value before + its share); the paid wallet and the purchase counter are untouched.
    for (const r of [roomA, roomB]) {
      const m = r.sim!.meter;
      expect([r.id, m.getValue('credit.free.energy.ac'), m.getValue('credit.free.energy.lighting')]).toEqual([r.id, 21.5, 10.25]);
      expect([r.id, m.getValue('credit.purchase.count'), m.getValue('credit.balance.energy')]).toEqual([r.id, 4, 12.5]);
      expect([r.id, writesAt(r, AC).map((w) => w.words), writesAt(r, LIGHTING).map((w) => w.words)]).toEqual([
        r.id,
        [[0, 2150]],
        [[0, 1025]],
      ]);
      expect(m.writes()).toHaveLength(2);
      expect(m.credits).toEqual({ applied: 0, repeat: 0, refused: 0 });
    }
    // The meter without free-energy registers got an ordinary purchase: its counter one up, its balance 30 kWh up.
    expect([roomP.sim!.meter.getValue('credit.purchase.count'), roomP.sim!.meter.getValue('credit.balance.energy')]).toEqual([5, 42.5]);
    expect(roomP.sim!.meter.credits).toEqual({ applied: 1, repeat: 0, refused: 0 });
    // The yuan allowance on kWh registers: parked, nothing written.
    expect(rowsOf('yuan-free')[0]!.reasonCode).toBe('UNIT_MISMATCH');
    expect(roomC.sim!.meter.writes()).toEqual([]);

    // The ledger: one applied allowance load per room, channel allowance; the free-energy ones carry no purchase count
    // and keep each register's committed values.
    const loads = withStore((s) => s.ledger.list()).filter((e) => e.channel === 'allowance');
    expect(loads.map((e) => [e.meterId, e.state, e.purchaseCount, e.amount]).sort()).toEqual([
      ['room-a', 'applied', null, 3000],
      ['room-b', 'applied', null, 3000],
      ['room-p', 'applied', 5, 3000],
    ]);
    const a = loads.find((e) => e.meterId === 'room-a')!;
    expect(a.request.wallet).toBe('subsidy');
    expect(a.request.subsidy).toMatchObject({
      registers: [
        { name: 'credit.free.energy.ac', before: 150, target: 2150, after: 2150 },
        { name: 'credit.free.energy.lighting', before: 25, target: 1025, after: 1025 },
      ],
    });
  });
});
