/**
 * Command latency with the bus busy polling: the `meterd run` process (compiled build) polls 50 zero-delay simulated
 * DL/T 645 meters on one bus as fast as its schedule asks, while a station sends `read` and `topup` commands one at
 * a time; prints MQTT request-in → `done`-reply-out latency percentiles. Target: p99 under 100 ms beyond the
 * meter's own time. Run: npx tsx scripts/bench/commands.ts [count]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { defaultMeters, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';

const COUNT = Number(process.argv[2] ?? 200);
const root = fileURLToPath(new URL('../..', import.meta.url));
if (spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' }).status !== 0) throw new Error('build failed');

const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(50, { powerKw: 0, kind: 'energy', balance: 100 }) } });
const embedded = process.env.MQTT_URL ? undefined : await startEmbeddedBroker({ port: 0 });
const url = process.env.MQTT_URL ?? embedded!.url;
const gw = `bench-cmd-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-cmd-'));
const addresses = [...sim.meters.keys()];
writeFileSync(
  join(dir, 'meterd.yaml'),
  `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${url}", protocolVersion: ${process.env.MQTT_URL ? 5 : 4} }
commands: { allowUnsigned: true }   # the bench station sends unsigned top-ups
buses: [{ id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}" }]
meters:
${addresses.map((a, i) => `  - { id: m${i}, bus: bus1, address: "${a}", customerNo: "${sim.meters.get(a)!.snapshot().customerNumber}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
polling:
  intervals: { instant: 1s, energy: 1s, status: 1s, credit: 1s }
`,
);
const child = spawn(process.execPath, [join(root, 'bin/meterd.js'), 'run', '-c', join(dir, 'meterd.yaml'), '--log-level', 'error'], {
  cwd: dir,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, NODE_ENV: 'production' },
});
const station = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `${gw}-station` });
(station.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
const waiting = new Map<string, (t: number) => void>();
station.on('message', (_topic, payload) => {
  const r = JSON.parse(payload.toString()) as { requestId: string; status: string };
  if (r.status !== 'accepted') waiting.get(r.requestId)?.(performance.now());
});
await station.subscribeAsync(`meterd/${gw}/cmd/+/result`, { qos: 1 });
await new Promise((r) => setTimeout(r, 4000)); // start-up, and polling fills the bus

async function measure(command: string, make: (i: number) => Record<string, unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    const payload = make(i);
    const done = new Promise<number>((resolve) => waiting.set(String(payload.requestId), resolve));
    const t0 = performance.now();
    await station.publishAsync(`meterd/${gw}/cmd/${command}`, JSON.stringify(payload), { qos: 1 });
    out.push((await done) - t0);
  }
  return out.sort((a, b) => a - b);
}
const pct = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!.toFixed(1);
const reads = await measure('read', (i) => ({ requestId: `r-${i}`, meter: `m${i % 50}`, points: ['voltage.a'] }));
const topups = await measure('topup', (i) => ({ requestId: `t-${i}`, meter: `m${i % 50}`, energyKwh: 1 }));
console.log(`command latency, MQTT request in -> done reply out, bus polling 50 meters (default 20 ms gap), ${COUNT} each:`);
console.log(`  read (1 frame):          p50 ${pct(reads, 0.5)} ms, p99 ${pct(reads, 0.99)} ms, max ${pct(reads, 1)} ms`);
console.log(`  topup (6 frames + 2 durable commits): p50 ${pct(topups, 0.5)} ms, p99 ${pct(topups, 0.99)} ms, max ${pct(topups, 1)} ms`);
console.log('  (a frame waits for the exchange in flight and the inter-frame gap, never behind queued polls)');
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await station.endAsync();
await sim.close();
await embedded?.close();
