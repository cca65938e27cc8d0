import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { BUILTIN_PROFILES_DIR } from '../../src/profiles/registry.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import type { StoredReading } from '../../src/store/index.js';
import { eventually, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';
import { stopGatewayRig, submitReplace } from '../helpers/replace-rig.js';

// A meter replaced by a model of another profile is polled with the new profile's groups at their intervals from the
// swap on, without a restart (issue 16): the gateway in-process on simulated DL/T 645 meters, a neighbour on the same
// bus keeps its own schedule, and the poll tasks of the old profile leave the schedule (a second swap back to the
// first model leaves exactly as many tasks as at the start).

const OLD = '000000000661';
const NEW = '000000000662';
const THIRD = '000000000663';
const QUIET = '000000000664';
const CUSTOMER = '660000000661';
const BASE = 'dlt645-2007-single-phase-prepaid-money';
const QUICK = 'test-money-quick';

let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
const gatewayId = uniqueId('gw-replace-profile');

// The model of the new meter: the same registers and wallet, other groups. `quick` and `slow` are not in the config's
// polling.intervals, so they run at the profile's own intervals.
const quickGroups = { quick: ['voltage.a', 'credit.purchase.count'], slow: ['energy.active.import', 'credit.balance.money'] };
// The base profile's energy group, polled every second by the config below.
const energyGroup = [
  'energy.active.import',
  'energy.active.import.t1',
  'energy.active.import.t2',
  'energy.active.import.t3',
  'energy.active.import.t4',
  'energy.active.export',
];

beforeAll(async () => {
  broker = await startTestBroker();
  const meter = (address: string, customerNumber = CUSTOMER) => ({
    address,
    kind: 'money' as const,
    balance: 0,
    purchaseCount: 0,
    customerNumber,
  });
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [meter(OLD), meter(NEW), meter(THIRD), meter(QUIET, '660000000664')] },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-replace-profile-'));
  mkdirSync(join(dir, 'profiles'));
  const base = readFileSync(join(BUILTIN_PROFILES_DIR, `${BASE}.yaml`), 'utf8');
  const groups = base.match(/^groups:\n(?: {2}.*\n)+/m);
  expect(groups).not.toBeNull();
  writeFileSync(
    join(dir, 'profiles', `${QUICK}.yaml`),
    base
      .replace(/^id: .*$/m, `id: ${QUICK}`)
      .replace(/^name: .*$/m, 'name: test money meter polled in two groups')
      .replace(
        groups![0],
        `groups:\n  quick: { interval: 1s, points: [${quickGroups.quick.join(', ')}] }\n  slow: { interval: 1h, points: [${quickGroups.slow.join(', ')}] }\n`,
      ),
  );
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
profiles: { dirs: [./profiles] }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 300ms, retries: 0 }
meters:
  - { id: room-a, bus: bus1, address: "${OLD}", customerNo: "${CUSTOMER}", profile: ${BASE} }
  - { id: room-q, bus: bus1, address: "${QUIET}", customerNo: "660000000664", profile: ${BASE} }
polling:
  intervals: { instant: 1h, energy: 1s, status: 1h, credit: 1h, daily: 1d }
`,
  );
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger });
}, 30_000);

afterAll(() => stopGatewayRig({ gw, sim, broker, gatewayId, meterIds: ['room-a', 'room-q'] }));

const readings = (meterId: string, since: number): StoredReading[] => gw.store.readings.since(meterId, since);
const pointsOf = (r: StoredReading) => Object.keys(r.values).sort().join(',');
const set = (points: readonly string[]) => [...points].sort().join(',');

async function replace(requestId: string, newAddress: string, newProfile: string): Promise<number> {
  expect(await submitReplace(gw, { requestId, meter: 'room-a', newAddress, newProfile, reason: 'rotation' })).toMatchObject({
    status: 'done',
  });
  return Date.now();
}

describe('a meter replaced by a model of another profile', { timeout: 90_000 }, () => {
  it("is polled with the new profile's groups at their intervals from the swap on, the neighbour undisturbed", async () => {
    const started = Date.now();
    await eventually(
      () => readings('room-a', started).some((r) => r.address === OLD && pointsOf(r) === set(energyGroup)),
      "the old meter's energy group read",
      15_000,
    );
    // Two meters, five groups each.
    expect(gw.poller.stats().tasks).toBe(10);

    const swapped = await replace('swap-quick', NEW, QUICK);
    await eventually(
      () => readings('room-a', swapped).filter((r) => r.address === NEW && pointsOf(r) === set(quickGroups.quick)).length >= 4,
      "four reads of the new profile's 1 s group",
      20_000,
    );
    const after = readings('room-a', swapped);
    // Every reading since the swap is one of the new profile's groups, from the new meter; the old profile's energy
    // group (every second before) is not read any more.
    expect(new Set(after.map((r) => r.address))).toEqual(new Set([NEW]));
    expect([...new Set(after.map(pointsOf))].sort()).toEqual([set(quickGroups.quick), set(quickGroups.slow)].sort());
    // The hourly group was read once, in its first slot, while the 1 s group was read again and again.
    expect(after.filter((r) => pointsOf(r) === set(quickGroups.slow))).toHaveLength(1);
    // The neighbour on the bus keeps its own schedule: its energy group every second.
    await eventually(
      () => readings('room-q', swapped).filter((r) => pointsOf(r) === set(energyGroup)).length >= 3,
      "the neighbour's energy group read on",
      15_000,
    );
    // The old profile's five tasks left the schedule; the new profile's two took their place.
    expect(gw.poller.stats().tasks).toBe(5 + 2);
  });

  it('replaced again by a meter of the first model: its groups come back, no task of the swaps is left over', async () => {
    const swapped = await replace('swap-back', THIRD, BASE);
    await eventually(
      () => readings('room-a', swapped).filter((r) => r.address === THIRD && pointsOf(r) === set(energyGroup)).length >= 3,
      "the third meter's energy group read every second",
      20_000,
    );
    const after = readings('room-a', swapped);
    expect(new Set(after.map((r) => r.address))).toEqual(new Set([THIRD]));
    expect(after.some((r) => pointsOf(r) === set(quickGroups.quick))).toBe(false);
    expect(gw.poller.stats().tasks).toBe(10);
  });
});
