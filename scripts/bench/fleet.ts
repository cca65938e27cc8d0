/**
 * Many gateways, one broker: N `meterd run` processes (default 20, each with 50 simulated meters on its own TCP bus)
 * against one Mosquitto this benchmark starts, and a station (scripts/station-recall.ts) following every gateway's
 * `seq`. Prints the broker-side message rate, each gateway's resident memory, and, after the broker is stopped for
 * a while and started again without its persistence (so every session and queue is lost), how long until the
 * station holds every `seq` of every gateway again (by the gateways' outboxes and by recall).
 *
 *   npx tsx scripts/bench/fleet.ts [gateways=20] [metersEach=50] [outageSeconds=60]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultMeters, startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { RecallingStation } from '../station-recall.js';

const GATEWAYS = Number(process.argv[2] ?? 20);
const METERS = Number(process.argv[3] ?? 50);
const OUTAGE_S = Number(process.argv[4] ?? 60);
const KEY = 'fleet-bench-key-0123456789abcdef';
const root = fileURLToPath(new URL('../..', import.meta.url));

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const port = await freePort();
const url = `mqtt://127.0.0.1:${port}`;
let broker: ChildProcess | undefined;
const startBroker = async () => {
  broker = spawn('mosquitto', ['-p', String(port)], { stdio: 'ignore' });
  await sleep(500);
};
const stopBroker = async () => {
  const b = broker!;
  const exited = new Promise((r) => b.once('exit', r));
  b.kill('SIGKILL');
  await exited;
};

const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) throw new Error('npm run build failed');

await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'meterd-fleet-'));
const sims: Dlt645Simulator[] = [];
const gateways: { id: string; child: ChildProcess }[] = [];
for (let g = 0; g < GATEWAYS; g++) {
  const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(METERS, { powerKw: 0.5 }) } });
  sims.push(sim);
  const id = `fleet-${process.pid}-${g}`;
  const gdir = join(dir, id);
  spawnSync('mkdir', ['-p', gdir]);
  writeFileSync(
    join(gdir, 'meterd.yaml'),
    `gateway: { id: ${id}, dataDir: ./data }
mqtt: { url: "${url}", protocolVersion: 5, reconnectMaxDelay: 10s }
commands: { hmacKey: ${KEY} }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 0ms }
meters:
${[...sim.meters.keys()].map((a, i) => `  - { id: m${i}, bus: bus1, address: "${a}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
`,
  );
  const child = spawn(process.execPath, [join(root, 'bin/meterd.js'), 'run', '-c', join(gdir, 'meterd.yaml'), '--log-level', 'error'], {
    cwd: gdir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: '--max-semi-space-size=1 --v8-pool-size=1 --max-old-space-size=64' },
  });
  gateways.push({ id, child });
}

const station = new RecallingStation({ url, fromSeq: 1, hmacKey: KEY, gapAgeMs: 3000, retryMs: 15_000, protocolVersion: 5 });
await station.start();
const total = () => gateways.reduce((n, g) => n + station.count(g.id), 0);
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

await sleep(20_000); // start-up and the first spread of every schedule
const c0 = total();
await sleep(40_000);
const rate = (total() - c0) / 40;
const rss = gateways.map((g) => rssMiB(g.child.pid!));
console.log(`fleet: ${GATEWAYS} gateways × ${METERS} meters, one Mosquitto`);
console.log(`broker-side readings: ${rate.toFixed(1)} messages/s to one station`);
console.log(
  `gateway RSS: min ${Math.min(...rss).toFixed(1)} MiB, median ${[...rss].sort((a, b) => a - b)[Math.floor(rss.length / 2)]!.toFixed(1)} MiB, max ${Math.max(...rss).toFixed(1)} MiB`,
);

// The broker goes away for the outage and comes back empty: every retained message, session and queue is lost.
await stopBroker();
await sleep(OUTAGE_S * 1000);
await startBroker();
const back = Date.now();
const complete = () => gateways.every((g) => station.count(g.id) > 0 && station.gaps(g.id).length === 0);
const deadline = back + 300_000;
// Every gateway has read on during the outage: wait until the station holds every seq up to each one's newest.
await sleep(5000);
while (!complete() && Date.now() < deadline) await sleep(500);
const recalls = station.recalls.length;
console.log(
  `after a ${OUTAGE_S} s broker outage (restarted without persistence): every seq of every gateway at the station ${complete() ? `${((Date.now() - back) / 1000).toFixed(1)} s after the broker was back` : 'NOT within 300 s'} (${recalls} recall request(s))`,
);

await station.close();
for (const g of gateways) g.child.kill('SIGTERM');
await sleep(2000);
for (const s of sims) await s.close();
await stopBroker();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
