/**
 * Time faults against a real `meterd run` process, as the December 2026 fault probe ran them: the daemon's wall clock
 * is stepped inside the process (test/helpers/clock-shift.mjs shifts Date only; timers stay monotonic, as after an
 * NTP step), and a bus whose meters fall silent and come back. Two simulated DL/T 645 meters on TCP, all groups every
 * 2 s, an in-process broker; arrival times are taken by a station subscriber on this process's own clock.
 *
 * Run: npx tsx scripts/bench/faults-time.ts back-1h|back-60s|forward-1970|silent-150s [--root DIR]
 *   --root runs the meterd of another checkout (e.g. an older commit, for "before" figures) with this simulator.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';

const scenario = process.argv[2] ?? 'back-1h';
const rootArg = process.argv.indexOf('--root');
const root = rootArg > 0 ? resolve(process.argv[rootArg + 1]!) : fileURLToPath(new URL('../..', import.meta.url));
const shifter = fileURLToPath(new URL('../../test/helpers/clock-shift.mjs', import.meta.url));
const METERS = [
  { id: 'p1', address: '000000000011' },
  { id: 'p2', address: '000000000012' },
];

const sim = await startDlt645Simulator({
  tcpPort: 0,
  spec: { meters: METERS.map((m) => ({ address: m.address, kind: 'energy' as const, balance: 50 })) },
});
const broker = await startEmbeddedBroker({ port: 0 });
const dir = mkdtempSync(join(tmpdir(), 'meterd-faults-time-'));
const gw = `ft-${process.pid}`;
writeFileSync(
  join(dir, 'meterd.yaml'),
  `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}" }
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
polling:
  intervals: { energy: 2s, instant: 2s, status: 2s, credit: 2s }
`,
);

const shiftFile = join(dir, 'clock-shift');
const gapFile = join(dir, 'loop-gap');
const startOffset = scenario === 'forward-1970' ? Date.parse('1970-01-01T00:00:10Z') - Date.now() : 0;
writeFileSync(shiftFile, String(startOffset));

const arrivals: { meter: string; at: number }[] = [];
const station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: `${gw}-station` });
station.on('message', (_t, payload) => {
  const m = JSON.parse(payload.toString()) as { meter?: string; values?: unknown };
  if (m.meter && m.values) arrivals.push({ meter: m.meter, at: Date.now() });
});
await station.subscribeAsync(`meterd/${gw}/meters/+/readings`, { qos: 1 });

let stderr = '';
const child = spawn(process.execPath, ['--import', shifter, join(root, 'bin/meterd.js'), 'run', '-c', join(dir, 'meterd.yaml')], {
  cwd: dir,
  stdio: ['ignore', 'ignore', 'pipe'],
  env: { ...process.env, CLOCK_SHIFT_FILE: shiftFile, LOOP_GAP_FILE: gapFile },
});
child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const step = (offsetMs: number) => {
  writeFileSync(shiftFile, String(offsetMs));
  child.kill('SIGUSR2');
};
const firstAfter = (t: number, meter?: string) => arrivals.find((a) => a.at > t && (meter === undefined || a.meter === meter))?.at;
const longestGap = (from: number, to: number) => {
  const ts = [from, ...arrivals.filter((a) => a.at > from && a.at < to).map((a) => a.at), to];
  return Math.max(...ts.slice(1).map((t, i) => t - ts[i]!));
};
const secs = (ms: number | undefined) => (ms === undefined ? 'none' : `${(ms / 1000).toFixed(1)} s`);
const result: Record<string, unknown> = { scenario, root };

try {
  // Steady polling first: every meter read, then ten seconds of the normal rhythm.
  const up = Date.now() + 120_000;
  while (METERS.some((m) => !arrivals.some((a) => a.meter === m.id))) {
    if (Date.now() > up) throw new Error(`no readings from the daemon after 120 s: ${stderr.slice(-2000)}`);
    await sleep(200);
  }
  // The same offset again: resets the shifter's event-loop gap, so the next ten seconds give a baseline.
  step(startOffset);
  await sleep(10_000);
  const readGap = () => Number(existsSync(gapFile) ? readFileSync(gapFile, 'utf8') : Number.NaN);
  const baselineGap = readGap();
  const t0 = Date.now();
  if (scenario === 'back-1h' || scenario === 'back-60s') {
    const watch = scenario === 'back-1h' ? 45_000 : 75_000;
    step(scenario === 'back-1h' ? -3_600_000 : -60_000);
    await sleep(watch);
    const first = firstAfter(t0 + 500);
    result.firstReadingAfterStep = secs(first === undefined ? undefined : first - t0);
    result.readingsWatched = `${arrivals.filter((a) => a.at > t0 + 500).length} in ${watch / 1000} s`;
    result.longestGapAfterStep = secs(longestGap(t0, Date.now()));
  } else if (scenario === 'forward-1970') {
    step(0);
    // Until readings flow again (a blocked loop writes its gap only when it runs again), then a little more.
    const deadline = t0 + 300_000;
    while (Date.now() < deadline && firstAfter(t0 + 1000) === undefined) await sleep(200);
    await sleep(5_000);
    result.eventLoopBlockedMs = readGap();
    result.eventLoopGapBeforeStepMs = baselineGap;
    result.longestGapBetweenReadings = secs(longestGap(t0, Date.now()));
  } else if (scenario === 'silent-150s') {
    sim.bus.setFaults({ silent: true });
    await sleep(150_000);
    const back = Date.now();
    sim.bus.setFaults({ silent: false });
    const deadline = back + 330_000;
    while (Date.now() < deadline && METERS.some((m) => firstAfter(back, m.id) === undefined)) await sleep(200);
    for (const m of METERS) result[`${m.id}ReadAfterReturn`] = secs((firstAfter(back, m.id) ?? Number.NaN) - back);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  result.clockStepLogLines = stderr.split('\n').filter((l) => l.includes('"event":"clock-step"')).length;
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await station.endAsync();
  await broker.close();
  await sim.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
