/**
 * Memory soak: the compiled daemon (`meterd run`, as deployed) with 1,000 simulated DL/T 645 meters on 10 TCP buses at
 * compressed intervals, a station sending signed `read` commands, and a broker outage and a bus outage every few
 * minutes, so reconnect paths run again and again. Every sample (default each minute) the daemon collects garbage and
 * reports RSS, live heap and live handles; at the end the slope of each is printed. Memory must be flat: a timer,
 * listener or map that grows with time is a defect.
 *
 *   npm run soak                          30 minutes, 1,000 meters, one sample a minute
 *   npm run soak -- --minutes 5 --sample 15
 *   MQTT_URL=mqtt://127.0.0.1:1883 npm run soak   (then no broker outages: the shared broker is not ours to stop)
 *   npm run soak -- --meters 4 --every 1 --minutes 20 --no-outages   the one-house soak of issue 18 (~14 readings/s)
 *
 * The daemon starts as systemd starts it (the unit's environment and Node flags, scripts/install/unit.ts), plus
 * --expose-gc and the probe.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { defaultMeters, startDlt645Simulator } from '../src/sim/dlt645/index.js';
import { commandSignature } from '../src/uplink/commands/signature.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../src/uplink/index.js';
import { unitLaunch } from './install/unit.js';

const HELP = `npm run soak -- [options]

Runs the daemon under steady load and prints how its memory moves over time.

  --minutes <n>    how long to run (default 30)
  --sample <s>     seconds between samples (default 60)
  --meters <n>     simulated meters, spread over up to 10 TCP buses (default 1000)
  --every <s>      poll every group of the profile every <s> seconds (default: instant 5 s, the rest 15 s)
  --max-slope <mb> fail (exit 1) when the live heap grows faster than this many MB per hour (default 2)
  --no-outages     no broker or bus outages, polling and commands only
  -h, --help       this text`;

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n\n${HELP}\n`);
  process.exit(2);
}

function positive(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(text)) fail(`--${name} must be a positive decimal number, not "${text}"`);
  const n = Number(text);
  if (n <= 0 || n > max) fail(`--${name} must be above 0 and at most ${max}, not ${text}`);
  return n;
}

let args: ReturnType<typeof parseOptions>;
function parseOptions() {
  return parseArgs({
    options: {
      minutes: { type: 'string' },
      sample: { type: 'string' },
      meters: { type: 'string' },
      every: { type: 'string' },
      'max-slope': { type: 'string' },
      'no-outages': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
}
try {
  args = parseOptions();
} catch (err) {
  fail((err as Error).message);
}
if (args.values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const MINUTES = positive('minutes', args.values.minutes, 30, 24 * 60);
const SAMPLE_S = positive('sample', args.values.sample, 60, 3600);
const METERS = Math.round(positive('meters', args.values.meters, 1000, 4000));
const MAX_SLOPE = positive('max-slope', args.values['max-slope'], 2, 1000);
const EVERY_S = args.values.every === undefined ? undefined : positive('every', args.values.every, 1, 3600);
const BUSES = Math.min(10, METERS);
const EXTERNAL = process.env.MQTT_URL;
const OUTAGES = !args.values['no-outages'];
const KEY = 'soak-key-0123456789abcdef';

const root = fileURLToPath(new URL('..', import.meta.url));
process.stdout.write('building (npm run build) so the daemon runs as deployed…\n');
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) fail('the build failed; fix `npm run build` first');

let sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(METERS, { powerKw: 0.5 }) } });
const simPort = sim.address!.tcpPort;
const simMeters = defaultMeters(METERS, { powerKw: 0.5 });
let broker: EmbeddedBroker | undefined = EXTERNAL ? undefined : await startEmbeddedBroker({ port: 0 });
const url = EXTERNAL ?? broker!.url;
const brokerPort = Number(new URL(url).port);
const addresses = [...sim.meters.keys()];
const gw = `soak-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'meterd-soak-'));
const probeFile = join(dir, 'probe.jsonl');
writeFileSync(
  join(dir, 'meterd.yaml'),
  `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${url}", protocolVersion: ${EXTERNAL ? 5 : 4} }
commands: { hmacKey: "${KEY}" }
polling:
  intervals: ${EVERY_S === undefined ? '{ instant: 5s, energy: 15s, status: 15s, credit: 15s }' : `{ instant: ${EVERY_S}s, energy: ${EVERY_S}s, status: ${EVERY_S}s, credit: ${EVERY_S}s }`}
buses:
${Array.from({ length: BUSES }, (_, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${simPort}", gap: 0ms }`).join('\n')}
meters:
${addresses.map((a, i) => `  - { id: m${i}, bus: bus${i % BUSES}, address: "${a}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
`,
);

const unit = unitLaunch(root);
const NODE_OPTIONS = `${unit.env.NODE_OPTIONS ?? ''} --expose-gc --import ${JSON.stringify(join(root, 'scripts/soak-probe.mjs'))}`;
const daemon: ChildProcess = spawn(
  process.execPath,
  [...unit.nodeFlags, join(root, 'bin/meterd.js'), 'run', '-c', join(dir, 'meterd.yaml'), '--log-level', 'error'],
  {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      ...unit.env,
      NODE_ENV: 'production',
      NODE_OPTIONS,
      SOAK_PROBE_FILE: probeFile,
      SOAK_SAMPLE_MS: String(SAMPLE_S * 1000),
    },
  },
);
let daemonExit: number | string | null | undefined;
daemon.once('exit', (code, signal) => {
  daemonExit = code ?? signal;
});

// The station: counts readings and replies, sends a signed read every 2 s.
let readings = 0;
let replies = 0;
const station = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `${gw}-station`, reconnectPeriod: 1000 });
station.on('message', (topic) => {
  if (topic.endsWith('/readings')) readings++;
  else if (topic.endsWith('/result')) replies++;
});
station.on('error', () => undefined);
await station.subscribeAsync([`meterd/${gw}/meters/+/readings`, `meterd/${gw}/cmd/+/result`], { qos: 1 });
let sent = 0;
const commands = setInterval(() => {
  const request = {
    requestId: `soak-${sent++}`,
    meter: `m${sent % METERS}`,
    points: ['energy.active.import'],
    ts: new Date().toISOString(),
  };
  station.publish(`meterd/${gw}/cmd/read`, JSON.stringify({ ...request, signature: commandSignature(request, KEY) }), { qos: 1 });
}, 2000);

// Outages: every 4 minutes the broker (embedded only) goes away for 20 s; every 6 minutes the meters' TCP server does.
const timers: NodeJS.Timeout[] = [commands];
let outages = 0;
if (OUTAGES) {
  if (broker) {
    timers.push(
      setInterval(async () => {
        await broker?.close();
        broker = undefined;
        outages++;
        await new Promise((r) => setTimeout(r, 20_000));
        broker = await startEmbeddedBroker({ port: brokerPort });
      }, 240_000),
    );
  }
  timers.push(
    setInterval(async () => {
      await sim.close();
      outages++;
      await new Promise((r) => setTimeout(r, 20_000));
      sim = await startDlt645Simulator({ tcpPort: simPort, spec: { meters: simMeters } });
    }, 360_000),
  );
}

interface Sample {
  t: number;
  rss: number;
  heapUsed: number;
  handles: number;
  timers: number;
}
const samples = (): Sample[] =>
  existsSync(probeFile)
    ? readFileSync(probeFile, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Sample)
    : [];
const mb = (bytes: number) => (bytes / 1048576).toFixed(1);

process.stdout.write(
  `soak: ${METERS} meters on ${BUSES} buses, ${MINUTES} min, a sample every ${SAMPLE_S} s, outages ${OUTAGES ? 'on' : 'off'}, broker ${EXTERNAL ? url : 'embedded'}\n`,
);
process.stdout.write('minute   rss MB   heap MB   handles  timers   readings  replies\n');
const t0 = Date.now();
let shown = 0;
while (Date.now() - t0 < MINUTES * 60_000 && daemonExit === undefined) {
  await new Promise((r) => setTimeout(r, 1000));
  const all = samples();
  for (const s of all.slice(shown)) {
    process.stdout.write(
      `${(s.t / 60_000).toFixed(1).padStart(6)} ${mb(s.rss).padStart(8)} ${mb(s.heapUsed).padStart(9)} ${String(s.handles).padStart(9)} ${String(s.timers).padStart(7)} ${String(readings).padStart(10)} ${String(replies).padStart(8)}\n`,
    );
  }
  shown = all.length;
}
for (const t of timers) clearInterval(t);
daemon.kill('SIGTERM');
await new Promise((r) => (daemonExit === undefined ? daemon.once('exit', r) : r(undefined)));
await station.endAsync(true);
await sim.close();
await broker?.close();

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

// Warm-up (caches, the first spread of the schedule, SQLite's page cache) is the first fifth or the first 3 minutes,
// whichever is longer; the slope is the rest.
const all = samples();
const warmUp = Math.max(
  Math.floor(all.length / 5),
  all.findIndex((s) => s.t >= 180_000),
);
const steady = warmUp < 0 ? [] : all.slice(warmUp);
if (steady.length < 3) {
  process.stdout.write(`soak: only ${all.length} samples; run longer or sample more often for a slope\n`);
  process.exit(typeof daemonExit === 'number' && daemonExit !== 0 ? 1 : 2);
}
const hours = steady.map((s) => s.t / 3_600_000);
const heapSlope = slope(
  hours,
  steady.map((s) => s.heapUsed / 1048576),
);
const rssSlope = slope(
  hours,
  steady.map((s) => s.rss / 1048576),
);
const handleSlope = slope(
  hours,
  steady.map((s) => s.handles),
);
const first = steady[0]!;
const last = steady.at(-1)!;
process.stdout.write(
  `\nsteady state (${steady.length} samples from minute ${(first.t / 60_000).toFixed(1)}): ` +
    `live heap ${mb(first.heapUsed)} → ${mb(last.heapUsed)} MB, slope ${heapSlope.toFixed(2)} MB/h; ` +
    `RSS ${mb(first.rss)} → ${mb(last.rss)} MB, slope ${rssSlope.toFixed(2)} MB/h; ` +
    `handles ${first.handles} → ${last.handles}, slope ${handleSlope.toFixed(1)}/h\n`,
);
const meanRss = (ss: Sample[]) => ss.reduce((sum, x) => sum + x.rss, 0) / ss.length;
const fifth = Math.max(1, Math.floor(steady.length / 5));
process.stdout.write(
  `RSS of the last fifth against the first fifth of the steady state: ${(((meanRss(steady.slice(-fifth)) - meanRss(steady.slice(0, fifth))) / meanRss(steady.slice(0, fifth))) * 100).toFixed(1)} % (flat: within 5 %)\n`,
);
process.stdout.write(
  `station: ${readings} readings messages, ${replies} reply messages to ${sent} signed read commands; ${outages} outages\n`,
);
if (daemonExit !== null && daemonExit !== 0 && daemonExit !== 'SIGTERM') {
  process.stdout.write(`soak: the daemon exited early (${daemonExit})\n`);
  process.exit(1);
}
if (heapSlope > MAX_SLOPE) {
  process.stdout.write(
    `soak: the live heap grows ${heapSlope.toFixed(2)} MB/h, above ${MAX_SLOPE} MB/h: look for a growing map, timer or listener\n`,
  );
  process.exit(1);
}
process.stdout.write('soak: memory is flat\n');
