/**
 * Start-up with the largest config the limits allow (src/config/limits.ts): 4,000 DL/T 645 meters on 16 TCP buses of
 * 250, against a simulator holding all 4,000 and an in-process MQTT broker. Prints how long loading the config takes
 * in process, `meterd config check` as a command, and `meterd run` from spawn to its "gateway started" log line, with
 * the daemon's resident memory then; each from the sources (tsx, a fresh clone) and from the build (as deployed).
 * Run: npx tsx scripts/bench/config-startup.ts [runs]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIMITS, loadGatewayConfig } from '../../src/config/index.js';
import { defaultMeters, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';

const RUNS = Number(process.argv[2] ?? 3);
const METERS = LIMITS.metersPerGateway;
const BUSES = 16;

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin/meterd.js');
const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(METERS, { powerKw: 0 }) } });
const broker = await startEmbeddedBroker({ port: 0 });
const addresses = [...sim.meters.keys()];
const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-config-'));
const file = join(dir, 'meterd.yaml');
writeFileSync(
  file,
  `gateway: { id: bench-config-${process.pid}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${Array.from({ length: BUSES }, (_, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${sim.address!.tcpPort}" }`).join('\n')}
meters:
${addresses.map((a, i) => `  - { id: m${i}, bus: bus${i % BUSES}, address: "${a}", customerNo: "${String(880000000000 + i)}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
`,
);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;

const inProcess: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  loadGatewayConfig(file, {});
  inProcess.push(performance.now() - t0);
}
console.log(
  `config of ${METERS} meters on ${BUSES} buses, ${(statSync(file).size / 1024).toFixed(0)} KB (limit ${LIMITS.configBytes / 1024 / 1024} MiB)`,
);
console.log(`  loadGatewayConfig in process: ${ms(median(inProcess))} median of ${RUNS} (first ${ms(inProcess[0]!)})`);

const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) throw new Error('npm run build failed');

for (const [label, env] of [
  ['sources (tsx)', { ...process.env, NODE_ENV: 'development' }],
  ['build (NODE_ENV=production)', { ...process.env, NODE_ENV: 'production' }],
] as const) {
  const check: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [bin, 'config', 'check', '-c', file], { cwd: dir, env, encoding: 'utf8' });
    check.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`config check failed: ${r.stdout}${r.stderr}`);
  }
  const started: number[] = [];
  const rss: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const child = spawn(process.execPath, [bin, 'run', '-c', file, '--log-level', 'info'], {
      cwd: dir,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        if (log.includes('"gateway started"')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`meterd run exited ${code} before starting: ${log.slice(-500)}`)));
    });
    started.push(performance.now() - t0);
    rss.push(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024);
    child.removeAllListeners('exit');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  console.log(`  ${label}: config check ${ms(median(check))}, run to "gateway started" ${ms(median(started))} (median of ${RUNS}),`);
  console.log(`    resident memory at start ${median(rss).toFixed(0)} MB`);
}

await broker.close();
await sim.close();
