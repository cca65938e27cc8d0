import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { F2007 } from '../../protocols/dlt645/index.js';
import { ManualClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { SystemClockTrust } from '../../src/daemon/clock-trust.js';
import { startGateway } from '../../src/daemon/gateway.js';
import { startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { AlertDistrict } from '../helpers/alert-district.js';
import { eventually, startTestBroker, uniqueId, watchTopics } from '../helpers/broker.js';

const MIN = 60_000;
const dirs: string[] = [];
const tempDir = (label: string) => {
  const d = mkdtempSync(join(tmpdir(), `meterd-${label}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const broadcasts = (district: AlertDistrict) => district.link.sent.filter((f) => (f.control & 0x1f) === F2007.broadcastTime).length;
/** A read of the meter's date or time (04000101, 04000102): how the keeper reads a clock. */
const isClockRead = (f: { control: number; data: Uint8Array }) =>
  f.control === F2007.readData &&
  f.data[3] === 0x04 &&
  f.data[2] === 0x00 &&
  f.data[1] === 0x01 &&
  (f.data[0] === 0x01 || f.data[0] === 0x02);
const skewOf = (district: AlertDistrict, id: string) => (district.sim(id).snapshot().clockMs - district.now) / 1000;

describe('meter clocks are kept by the meters’ own rules', () => {
  let district: AlertDistrict | undefined;
  afterEach(async () => {
    await district?.stop();
    district = undefined;
  });

  const twoMeters = (trust?: { synced(): boolean }) =>
    new AlertDistrict({
      dir: tempDir('clock'),
      startWall: Date.UTC(2026, 11, 1, 9, 0),
      meters: [
        {
          id: 'm-slow',
          profile: 'dlt645-2007-single-phase-prepaid-money',
          spec: { address: '11', kind: 'money', balance: 100, clockOffsetSeconds: -180 },
        },
        { id: 'm-ok', profile: 'dlt645-2007-single-phase-prepaid-money', spec: { address: '12', kind: 'money', balance: 100 } },
      ],
      ...(trust ? { clockTrust: trust } : {}),
    });

  it('a meter 3 minutes slow is corrected by one broadcast when it comes online, and not a second time the same day', async () => {
    district = twoMeters();
    district.start();
    await district.time.advance(2 * MIN);
    expect(broadcasts(district)).toBe(1);
    expect(district.link.sent.some(isClockRead)).toBe(true);
    expect(Math.abs(skewOf(district, 'm-slow'))).toBeLessThan(3);
    expect(district.store.alerts.clockSyncs()).toEqual([
      expect.objectContaining({ busId: 'bus1', localDay: '2026-12-01', meters: { 'm-slow': -180 } }),
    ]);

    // The same meter drifts again the same day: a second broadcast would be refused by the meters anyway; none is sent.
    district.sim('m-slow').shiftClock(-150, district.now);
    const verdict = await district.keeper.check('m-slow');
    expect(verdict.action).toBe('broadcast-done-today');
    expect(broadcasts(district)).toBe(1);
    expect(district.alerts.list()).toEqual([]);

    // The next day's read corrects it.
    await district.time.advance(24 * 60 * MIN);
    expect(broadcasts(district)).toBe(2);
    expect(Math.abs(skewOf(district, 'm-slow'))).toBeLessThan(3);
  }, 60_000);

  it('a meter 10 minutes off is not broadcast-corrected; it raises clock-drift', async () => {
    district = twoMeters();
    district.sim('m-ok').shiftClock(600, district.now);
    district.sim('m-slow').shiftClock(180, district.now); // back to right
    district.start();
    await district.time.advance(2 * MIN);
    expect(broadcasts(district)).toBe(0);
    expect(district.alerts.list().map((a) => `${a.meterId}:${a.kind}`)).toEqual(['m-ok:clock-drift']);
  });

  it('no check and no correction between 23:55 and 00:05', async () => {
    district = twoMeters();
    district.time.stepWall(Date.UTC(2026, 11, 1, 23, 57) - district.now);
    expect((await district.keeper.check('m-slow')).action).toBe('skipped');
    expect(district.keeper.quietFor(Date.UTC(2026, 11, 2, 0, 4, 30))).toBe(30_000);
    expect(district.keeper.quietFor(Date.UTC(2026, 11, 2, 0, 6))).toBe(0);
    expect(broadcasts(district)).toBe(0);
  });

  it('while the gateway clock is not trusted no meter clock is read or set, no clock-drift is raised, and readings say unsynced', async () => {
    district = twoMeters({ synced: () => false });
    district.sim('m-ok').shiftClock(600, district.now);
    district.start();
    await district.time.advance(5 * MIN);
    expect(broadcasts(district)).toBe(0);
    expect(district.link.sent.some(isClockRead)).toBe(false);
    expect(district.alerts.list()).toEqual([]);
    expect(district.store.readings.latest('m-ok')).toMatchObject({ unsynced: true });
    expect(skewOf(district, 'm-slow')).toBeCloseTo(-180, 0);
  });
});

describe('the gateway clock', () => {
  it('is trusted by systemd-timesyncd’s verdict where it runs, else once past the floor', () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1));
    const dir = tempDir('timesync');
    const withTimesyncd = new SystemClockTrust({ clock, floorMs: 0, timesyncDir: dir });
    expect(withTimesyncd.synced()).toBe(false);
    writeFileSync(join(dir, 'synchronized'), '');
    clock.advance(60_000);
    expect(withTimesyncd.synced()).toBe(true);
    const noDaemon = new SystemClockTrust({ clock, floorMs: Date.UTC(2026, 11, 2), timesyncDir: join(dir, 'absent') });
    expect(noDaemon.synced()).toBe(false);
    expect(noDaemon.describe()).toMatch(/not set yet/);
    clock.advance(2 * 86_400_000);
    expect(noDaemon.synced()).toBe(true);
  });

  it('a daemon booted with its clock far in the past touches no meter clock and flags what it publishes', async () => {
    const broker = await startTestBroker();
    const sim = await startDlt645Simulator({
      tcpPort: 0,
      spec: { meters: [{ address: '000000000021', kind: 'money', balance: 100, clockOffsetSeconds: -120 }] },
    });
    const dir = tempDir('rtc');
    mkdirSync(join(dir, 'data'));
    const gatewayId = uniqueId('gw-rtc');
    writeFileSync(
      join(dir, 'meterd.yaml'),
      `gateway: { id: ${gatewayId}, dataDir: ./data }
mqtt: { url: ${broker.url}, protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 300ms }
meters:
  - { id: r1, bus: bus1, address: "000000000021", profile: dlt645-2007-single-phase-prepaid-money }
polling: { intervals: { instant: 1s, status: 1s } }
`,
    );
    const watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
    // A Raspberry Pi after a power cut, before NTP: 1 January 2020.
    const clock = new ManualClock(Date.UTC(2020, 0, 1, 0, 30));
    const gw = await startGateway(loadGatewayConfig(join(dir, 'meterd.yaml'), {}), { logger: pino({ level: 'silent' }), clock });
    try {
      await eventually(() => watcher.json(`meterd/${gatewayId}/meters/r1/readings`).length >= 3, 'three readings published', 15_000);
      await new Promise((r) => setTimeout(r, 1500));
      const meter = [...sim.meters.values()][0]!.snapshot();
      // Still two minutes slow against the host: nobody broadcast the gateway's 2020 at it.
      expect((meter.clockMs - Date.now()) / 1000).toBeCloseTo(-120, -1);
      expect(gw.store.alerts.clockSyncs()).toEqual([]);
      expect(gw.alerts.list()).toEqual([]);
      const readings = watcher.json<{ unsynced?: boolean }>(`meterd/${gatewayId}/meters/r1/readings`);
      expect(readings.every((r) => r.unsynced === true)).toBe(true);
    } finally {
      await gw.stop();
      await watcher.close();
      await sim.close();
      await broker.close();
    }
  }, 40_000);
});
