import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { BUILTIN_PROFILES_DIR } from '../../src/profiles/registry.js';
import { TRUSTED_CLOCK } from '../../src/services/alerts/service.js';
import { type Dlt645Simulator, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { eventually, startTestBroker, type TestBroker, uniqueId } from '../helpers/broker.js';
import { stopGatewayRig, submitReplace } from '../helpers/replace-rig.js';

// A meter replaced by a model of another profile is judged and clock-kept by the new profile from the swap on, and the
// same after a restart (issue 16): the alert detectors map the new model's status bits (a condition only the new
// profile defines raises, one only the old defines does not), and the clock keeper reads the new meter's clock at the
// new profile's clock group interval, or not at all when the new model has no clock. The gateway in-process on
// simulated DL/T 645 meters; what the clock keeper read is seen in its log lines (each check of a drifting clock logs).
// An alert the old model raised from a bit the new model does not name is cleared at the swap (`by: replacement`).

const OLD = '000000000671';
const NEW = '000000000672';
const THIRD = '000000000673';
const CUSTOMER = '660000000671';
const BASE = 'dlt645-2007-single-phase-prepaid-money';
const ALARMS = 'test-money-alarms';
const NOCLOCK = 'test-money-noclock';
/** Each meter's clock is off by its own amount, so a clock read names the meter it came from. */
const SKEW = { [OLD]: 600, [NEW]: 1200, [THIRD]: 1800 } as const;
/** status.word1: bit 2 is clock-battery-low in the base profile (battery-low); bits 5 and 7 mean nothing there. */
const BIT2 = 1 << 2;
const BIT5 = 1 << 5;
const BIT7 = 1 << 7;

let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
let file: string;
const gatewayId = uniqueId('gw-replace-rebind');
const lines: { time: number; msg: string; component?: string; meter?: string; skewSeconds?: number }[] = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      done();
    },
  }),
);

const start = () => startGateway(loadGatewayConfig(file, {}), { logger, clockTrust: TRUSTED_CLOCK });

beforeAll(async () => {
  broker = await startTestBroker();
  const meter = (address: string) => ({
    address,
    kind: 'money' as const,
    balance: 0,
    purchaseCount: 0,
    customerNumber: CUSTOMER,
    clockOffsetSeconds: SKEW[address as keyof typeof SKEW],
  });
  sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [meter(OLD), meter(NEW), meter(THIRD)] } });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-replace-rebind-'));
  mkdirSync(join(dir, 'profiles'));
  const base = readFileSync(join(BUILTIN_PROFILES_DIR, `${BASE}.yaml`), 'utf8');
  const groups = base.match(/^groups:\n(?: {2}.*\n)+/m);
  const status = base.match(/^status:\n(?: {2}.*\n)+/m);
  expect(groups).not.toBeNull();
  expect(status).not.toBeNull();
  const money = 'money: { interval: 1h, points: [energy.active.import, credit.balance.money, credit.overdraft, credit.purchase.count] }';
  // The new model: its own status bits and alert conditions (bit 5 a kettle, bit 7 the lid; bit 2 nothing), its
  // status word and its clock each read every second.
  writeFileSync(
    join(dir, 'profiles', `${ALARMS}.yaml`),
    base
      .replace(/^id: .*$/m, `id: ${ALARMS}`)
      .replace(/^name: .*$/m, 'name: test money meter with its own alarm bits')
      .replace(
        groups![0],
        `groups:\n  watch: { interval: 1s, points: [status.word1] }\n  tick: { interval: 1s, points: [clock] }\n  ${money}\n`,
      )
      .replace(status![0], 'status:\n  status.word1:\n    5: kettle\n    7: lid\n')
      .concat('\nalerts:\n  conditions: { kettle: malignant-load, lid: cover-open }\n'),
  );
  // A model without a clock register.
  writeFileSync(
    join(dir, 'profiles', `${NOCLOCK}.yaml`),
    base
      .replace(/^id: .*$/m, `id: ${NOCLOCK}`)
      .replace(/^name: .*$/m, 'name: test money meter without a clock')
      .replace(/^ {2}clock: .*\n/m, '')
      .replace(groups![0], `groups:\n  watch: { interval: 1s, points: [status.word1, voltage.a] }\n  ${money}\n`),
  );
  file = join(dir, 'meterd.yaml');
  // The clock keeper neither checks nor sets a clock within 5 minutes of local midnight: a run near 00:00 UTC keeps the
  // gateway's day 12 hours away, so the clock checks this test waits for are not skipped.
  const hour = new Date().getUTCHours();
  const timeZone = hour === 23 || hour === 0 ? 'Etc/GMT-12' : 'UTC';
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: ${timeZone} }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
profiles: { dirs: [./profiles] }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 2ms, timeout: 300ms, retries: 0 }
meters:
  - { id: room-a, bus: bus1, address: "${OLD}", customerNo: "${CUSTOMER}", profile: ${BASE} }
polling:
  intervals: { instant: 1h, energy: 1h, status: 1s, credit: 1h, daily: 1d }
`,
  );
  gw = await start();
}, 30_000);

afterAll(() => stopGatewayRig({ gw, sim, broker, gatewayId, meterIds: ['room-a'], extra: ['alerts/active'] }));

/** The clock keeper's checks of room-a since `since`, by the skew it saw (which says whose clock it read). */
function clockChecks(since: number, skew?: number) {
  return lines.filter(
    (l) =>
      l.component === 'clock-keeper' &&
      l.meter === 'room-a' &&
      l.time >= since &&
      l.skewSeconds !== undefined &&
      (skew === undefined || Math.abs(l.skewSeconds - skew) <= 5),
  );
}
const active = (kind: string) => gw.alerts.list().filter((a) => a.meterId === 'room-a' && a.kind === kind);
const seed = (address: string, word: number) => sim.meters.get(address)!.seed('status.word1', word, Date.now());
const readsOf = (address: string, since: number) => gw.store.readings.since('room-a', since).filter((r) => r.address === address);

async function replace(requestId: string, newAddress: string, newProfile: string): Promise<number> {
  expect(await submitReplace(gw, { requestId, meter: 'room-a', newAddress, newProfile, reason: 'rotation' })).toMatchObject({
    status: 'done',
  });
  return Date.now();
}

describe('a meter replaced by a model of another profile: alerts and clock keeping follow', { timeout: 120_000 }, () => {
  it("judges the new meter's status bits by the new profile and reads its clock at the new clock group's interval", async () => {
    const started = Date.now();
    // The old meter's status word (read every second) with bits 2, 5 and 7: battery-low in its model, 5 and 7
    // nothing; its clock read once.
    seed(OLD, BIT2 | BIT5 | BIT7);
    await eventually(() => clockChecks(started, SKEW[OLD]).length >= 1, "the old meter's clock checked", 15_000);
    await eventually(() => active('battery-low').length === 1, "battery-low raised from the old profile's bit 2", 15_000);
    const [oldBattery] = active('battery-low');
    expect(active('malignant-load')).toEqual([]);
    expect(active('cover-open')).toEqual([]);

    // The new meter shows bit 2 (the old model's battery-low) and bit 5 (the new model's kettle) from the start.
    seed(NEW, BIT2 | BIT5);
    const swapped = await replace('swap-alarms', NEW, ALARMS);
    await eventually(() => active('malignant-load').length === 1, 'malignant-load raised from the new profile bit 5', 20_000);
    const [kettle] = active('malignant-load');
    expect(kettle!.raisedAt).toBeGreaterThanOrEqual(swapped - 1000);
    expect(kettle!.evidence).toMatchObject({ 'status.word1': BIT2 | BIT5, bit: 5 });
    // Bit 2 is only the old model's battery-low: the old meter's alert was cleared at the swap (the new model can never
    // see it good again), and the new meter's status word, judged without it, raised none.
    expect(active('battery-low')).toEqual([]);
    expect(gw.store.alerts.get(oldBattery!.alertId)).toMatchObject({ clearedBy: 'replacement' });
    expect(gw.store.alerts.get(oldBattery!.alertId)!.clearedAt).toBeLessThanOrEqual(swapped);
    expect(gw.store.alerts.history({ meterId: 'room-a' }).filter((a) => a.kind === 'battery-low')).toHaveLength(1);

    // The clock keeper reads the new meter's clock, every second (the new profile's tick group), not the old one's.
    await eventually(() => clockChecks(swapped, SKEW[NEW]).length >= 3, "the new meter's clock checked three times", 20_000);
    expect(clockChecks(swapped, SKEW[OLD])).toEqual([]);
    // Its old-profile interval was a day: three checks since the swap come from the new profile's 1 s group.
    const checks = clockChecks(swapped, SKEW[NEW]).map((l) => l.time);
    expect(checks[2]! - checks[0]!).toBeLessThan(60_000);
  });

  it('does the same after a restart', async () => {
    await gw.stop();
    const restarted = Date.now();
    gw = await start();
    // A condition only the new profile defines (bit 7, the lid) raises on the restarted gateway; bit 2 still nothing.
    seed(NEW, BIT2 | BIT5 | BIT7);
    await eventually(() => active('cover-open').length === 1, 'cover-open raised from the new profile bit 7', 20_000);
    expect(active('cover-open')[0]!.raisedAt).toBeGreaterThanOrEqual(restarted);
    expect(active('battery-low')).toEqual([]);
    expect(gw.store.alerts.history({ meterId: 'room-a' }).filter((a) => a.kind === 'battery-low')).toHaveLength(1);
    await eventually(() => clockChecks(restarted, SKEW[NEW]).length >= 3, "the new meter's clock checked every second", 20_000);
    expect(clockChecks(restarted, SKEW[OLD])).toEqual([]);
  });

  it('replaced by a model without a clock: the clock keeper leaves the point alone, also after a restart', async () => {
    const swapped = await replace('swap-noclock', THIRD, NOCLOCK);
    await eventually(() => readsOf(THIRD, swapped).length >= 4, 'the third meter polled', 20_000);
    expect(clockChecks(swapped)).toEqual([]);

    await gw.stop();
    const restarted = Date.now();
    gw = await start();
    await eventually(() => readsOf(THIRD, restarted).length >= 4, 'the third meter polled after the restart', 20_000);
    expect(clockChecks(restarted)).toEqual([]);
  });
});
