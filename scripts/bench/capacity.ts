/**
 * Capacity: resident memory and CPU of the compiled daemon (`NODE_ENV=production`, the memory flags and environment
 * of scripts/install/meterd.service) with 2, 10, 1,000 and 2,000 zero-delay simulated meters on 1, 1, 10 and 20 TCP
 * buses at the profiles' intervals, each measured for BENCH_SECONDS (default 60) after start-up. CPU is the daemon's
 * own CPU time per wall second (from /proc/<pid>/stat), printed beside the machine's load average, since the machine
 * is shared. Resident memory is split into anonymous (heap, malloc) and file-backed pages (code, mapped files).
 *
 * Run: npm run bench -- capacity            (BENCH_SECONDS=120, BENCH_SIZES=2,2000 to choose)
 * Targets (issue 18): 2 meters under 60 MB; 2,000 meters under 100 MB and under 10 % of one core; flat memory.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultMeters, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';
import { unitLaunch } from '../install/unit.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SIZES: readonly { meters: number; buses: number }[] = [
  { meters: 2, buses: 1 },
  { meters: 10, buses: 1 },
  { meters: 1000, buses: 10 },
  { meters: 2000, buses: 20 },
].filter((s) => process.env.BENCH_SIZES === undefined || process.env.BENCH_SIZES.split(',').map(Number).includes(s.meters));
const TICKS_PER_SECOND = 100;

const root = fileURLToPath(new URL('../..', import.meta.url));
// The unit's Environment= lines and Node flags, as systemd would pass them (NODE_ENV, NODE_OPTIONS, MALLOC_ARENA_MAX, …).
const { env: unitEnv, nodeFlags: unitNodeFlags } = unitLaunch(root);
// BENCH_NODE_FLAGS adds Node/V8 flags to the unit's (to try one before putting it in the unit).
const unitFlags = [...unitNodeFlags, ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])];
const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) throw new Error('npm run build failed');

const largest = Math.max(...SIZES.map((s) => s.meters));
const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(largest, { powerKw: 0 }) } });
const broker = await startEmbeddedBroker({ port: 0 });
const addresses = [...sim.meters.keys()];

interface Sample {
  readonly at: number;
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly cpuTicks: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  // Fields after the command name (which may hold spaces): utime and stime are the 14th and 15th of the line.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    at: performance.now(),
    rss: kb('VmRSS'),
    anon: kb('RssAnon'),
    file: kb('RssFile') + kb('RssShmem'),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
  };
}

/** Asks the daemon's control socket for its status; resolves undefined until it answers. */
function status(socket: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const c = connect(socket);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      got += d;
      if (!got.includes('\n')) return;
      c.destroy();
      const frame = JSON.parse(got.slice(0, got.indexOf('\n'))) as { type: string; status?: Record<string, unknown> };
      resolve(frame.type === 'status' ? frame.status : undefined);
    });
    c.on('error', () => resolve(undefined));
    c.write('{"type":"status"}\n');
  });
}

const mb = (x: number) => x.toFixed(1);
const results: { meters: number; rss: number }[] = [];

for (const { meters, buses } of SIZES) {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-capacity-'));
  const gw = `capacity-${process.pid}-${meters}`;
  writeFileSync(
    join(dir, 'meterd.yaml'),
    `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${Array.from({ length: buses }, (_, b) => `  - { id: bus${b}, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 0ms }`).join('\n')}
meters:
${addresses
  .slice(0, meters)
  .map((a, i) => `  - { id: m${i}, bus: bus${i % buses}, address: "${a}", profile: dlt645-2007-single-phase-prepaid-money }`)
  .join('\n')}
`,
  );
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [...unitFlags, join(root, 'bin/meterd.js'), 'run', '-c', join(dir, 'meterd.yaml'), '--log-level', 'error'],
    {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...unitEnv },
    },
  );
  const socket = join(dir, 'data', 'meterd.sock');
  while ((await status(socket)) === undefined) {
    if (performance.now() - started > 60_000) throw new Error(`the daemon with ${meters} meters did not answer within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const startupS = (performance.now() - started) / 1000;
  // Let the first spread of the schedule pass, then measure.
  await new Promise((r) => setTimeout(r, 10_000));
  const samples: Sample[] = [sample(child.pid!)];
  const loads: number[] = [];
  while (performance.now() - samples[0]!.at < SECONDS * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(sample(child.pid!));
    loads.push(loadavg()[0]!);
  }
  const last = samples.at(-1)!;
  const first = samples[0]!;
  const cpu = (last.cpuTicks - first.cpuTicks) / TICKS_PER_SECOND / ((last.at - first.at) / 1000);
  const peak = Math.max(...samples.map((s) => s.rss));
  const half = samples.slice(0, Math.ceil(samples.length / 2));
  const rest = samples.slice(Math.floor(samples.length / 2));
  const mean = (ss: Sample[]) => ss.reduce((a, s) => a + s.rss, 0) / ss.length;
  const end = await status(socket);
  const polled = (end?.meters ?? {}) as { online?: number };
  console.log(
    `${String(meters).padStart(5)} meters on ${String(buses).padStart(2)} buses: start-up ${startupS.toFixed(1)} s; ` +
      `RSS ${mb(last.rss)} MB (peak ${mb(peak)}; anon ${mb(last.anon)}, file ${mb(last.file)}), ` +
      `heap used ${String((end?.memoryMiB as { heapUsed?: number } | undefined)?.heapUsed ?? '?')} MiB; ` +
      `CPU ${(cpu * 100).toFixed(1)} % of one core (load average ${(loads.reduce((a, b) => a + b, 0) / loads.length).toFixed(2)} on ${String(
        (await import('node:os')).cpus().length,
      )} cores); ` +
      `RSS mean ${mb(mean(half))} → ${mb(mean(rest))} MB over ${SECONDS} s; ${polled.online ?? '?'} online`,
  );
  results.push({ meters, rss: last.rss });
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
const small = results.find((r) => r.meters === 10) ?? results[0];
const big = results.at(-1);
if (small && big && big.meters > small.meters)
  console.log(`growth: ${mb(((big.rss - small.rss) / (big.meters - small.meters)) * 1000)} MB per 1,000 meters`);
console.log(`environment of the unit: ${JSON.stringify(unitEnv)}; node flags of its ExecStart: ${unitFlags.join(' ') || 'none'}`);
console.log('targets: 2 meters < 60 MB; 2,000 meters < 100 MB and < 10 % of one core; RSS flat (within 5 %)');
await sim.close();
await broker.close();
