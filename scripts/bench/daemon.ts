/**
 * The daemon end to end, as a separate `meterd run` process: 1,000 simulated meters on 10 TCP buses (zero-delay
 * simulator, no inter-frame gap), an in-process MQTT broker, and a station subscriber counting what arrives.
 * Prints point values per second stored and published end to end, and the daemon's resident memory.
 * Run: npx tsx scripts/bench/daemon.ts [seconds] (MQTT_URL to use an external broker)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { defaultMeters, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';

const SECONDS = Number(process.argv[2] ?? 20);
const METERS = 1000;
const BUSES = 10;

const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(METERS, { powerKw: 0 }) } });
const embedded = process.env.MQTT_URL ? undefined : await startEmbeddedBroker({ port: 0 });
const url = process.env.MQTT_URL ?? embedded!.url;
const addresses = [...sim.meters.keys()];
const root = fileURLToPath(new URL('../..', import.meta.url));
// Measured as deployed: the compiled build (no TypeScript loader) with the memory flags of meterd.service.
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) throw new Error('npm run build failed');
const NODE_OPTIONS = '--max-semi-space-size=1 --v8-pool-size=1 --max-old-space-size=64';

async function runDaemon(label: string, intervals: string, seconds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-'));
  const gw = `bench-${process.pid}-${label.split(' ')[0]}`;
  writeFileSync(
    join(dir, 'meterd.yaml'),
    `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${url}", protocolVersion: ${process.env.MQTT_URL ? 5 : 4}, inflight: 256 }
buses:
${Array.from({ length: BUSES }, (_, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 0ms }`).join('\n')}
meters:
${addresses.map((a, i) => `  - { id: m${i}, bus: bus${i % BUSES}, address: "${a}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
${intervals}
`,
  );
  let values = 0;
  let messages = 0;
  const station = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `${gw}-station` });
  station.on('message', (_t, payload) => {
    messages++;
    const m = JSON.parse(payload.toString()) as { values?: Record<string, unknown> };
    if (m.values) values += Object.keys(m.values).length;
  });
  await station.subscribeAsync(`meterd/${gw}/meters/+/readings`, { qos: 1 });
  const child = spawn(process.execPath, [join(root, 'bin/meterd.js'), 'run', '-c', join(dir, 'meterd.yaml'), '--log-level', 'error'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS },
  });
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  await new Promise((r) => setTimeout(r, 5000)); // start-up and the first spread of the schedule
  const v0 = values;
  const m0 = messages;
  let peak = 0;
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    peak = Math.max(peak, rss());
  }
  const secs = (Date.now() - t0) / 1000;
  console.log(`${label}: ${METERS} meters on ${BUSES} TCP buses (${secs.toFixed(0)} s measured, NODE_OPTIONS="${NODE_OPTIONS}")`);
  console.log(
    `  point values polled, stored and published end to end: ${Math.round((values - v0) / secs).toLocaleString('en')}/s (${Math.round((messages - m0) / secs).toLocaleString('en')} readings messages/s)`,
  );
  console.log(`  daemon resident memory: ${rss().toFixed(0)} MB now, ${peak.toFixed(0)} MB peak`);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await station.endAsync();
}

await runDaemon('profile intervals (a real gateway)', '', SECONDS);
await runDaemon(
  'saturated (instant every 1 s, the rest every 5 s, no inter-frame gap)',
  'polling:\n  intervals: { instant: 1s, energy: 5s, status: 5s, credit: 5s }',
  SECONDS,
);
console.log(
  'targets: under 100 MB with 1,000 meters; 15,000 values/s stored and published (see the uplink benchmark for the store-and-publish path alone)',
);
await sim.close();
await embedded?.close();
