/**
 * Modbus points read per second through ModbusLink's arbiter, against the simulator over Modbus TCP on loopback:
 * full reads of the Eastron SDM630 profile (30 points) in a loop, planned into blocks by ModbusMeter, and the same
 * points read one request each. With no inter-frame gap the figure is the gateway's own ceiling (client, arbiter,
 * codec) plus the simulator's (modbus-serial's ServerTCP defers every request with setTimeout 0, about 1 ms); with the
 * arbiter's default 50 ms gap it shows what the number of requests costs on a real RS-485 line.
 *
 *   npx tsx scripts/bench/modbus-read.ts [seconds per run, default 3]
 */
import { planReads } from '../../protocols/modbus/index.js';
import { ModbusLink } from '../../src/bus/modbus-link.js';
import { ModbusMeter } from '../../src/devices/modbus-meter.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import type { ModbusPoint } from '../../src/profiles/types.js';
import { startModbusSimulator } from '../../src/sim/modbus/index.js';

const seconds = Number(process.argv[2] ?? 3);
const profile = loadProfiles().get('eastron-sdm630')!;
const points = [...profile.points.values()].filter((p): p is ModbusPoint => p.kind === 'modbus');
const names = points.map((p) => p.name);
const plan = planReads(
  points.map((p) => ({ name: p.name, table: p.table, address: p.address, type: p.type })),
  { maxGap: profile.maxGap },
);
if (!plan.ok) throw new Error(plan.error.message);

const sim = await startModbusSimulator({ profile, tcpPort: 0 });

interface Run {
  label: string;
  reads: number;
  requests: number;
  ms: number;
}

async function run(
  label: string,
  gapMs: number,
  fullRead: (link: ModbusLink, meter: ModbusMeter) => Promise<void>,
  runSeconds: number,
): Promise<Run> {
  const link = new ModbusLink({ id: 'bench', port: `tcp://127.0.0.1:${sim.port}`, protocol: 'modbus-tcp', line: profile.line, gapMs });
  await link.open();
  const meter = new ModbusMeter({ link, unit: 1, profile });
  await fullRead(link, meter); // warm-up: connection, JIT, plan cache
  const before = sim.stats().requests;
  const t0 = performance.now();
  let reads = 0;
  while (performance.now() - t0 < runSeconds * 1000) {
    await fullRead(link, meter);
    reads++;
  }
  const ms = performance.now() - t0;
  const requests = sim.stats().requests - before;
  await link.close();
  return { label, reads, requests, ms };
}

const planned = async (_link: ModbusLink, meter: ModbusMeter): Promise<void> => {
  const values = await meter.read(names, { priority: 'poll' });
  if (values.size !== names.length || [...values.values()].some((v) => 'error' in v)) throw new Error('a point failed to read');
};
const onePerPoint = async (link: ModbusLink): Promise<void> => {
  for (const p of points) await link.readRegisters('poll', 1, p.table as 'input', p.address, p.type === 'float32' ? 2 : 1);
};

const runs: Run[] = [];
runs.push(await run('planned, gap 0 ms', 0, planned, seconds));
runs.push(await run('one per point, gap 0 ms', 0, onePerPoint, seconds));
runs.push(await run('planned, gap 50 ms', 50, planned, Math.max(2, seconds)));
runs.push(await run('one per point, gap 50 ms', 50, (link) => onePerPoint(link), Math.max(3, seconds)));
await sim.close();

console.log(
  `${profile.name}: ${names.length} points; requests per full read: ${names.length} one per point, ${plan.value.length} planned (maxGap ${profile.maxGap})`,
);
console.log(
  `${'run'.padEnd(26)}${'full reads'.padStart(11)}${'requests/read'.padStart(15)}${'reads/s'.padStart(10)}${'points/s'.padStart(10)}${'ms/read'.padStart(10)}`,
);
for (const r of runs) {
  const perSecond = (r.reads * 1000) / r.ms;
  console.log(
    `${r.label.padEnd(26)}${String(r.reads).padStart(11)}${(r.requests / r.reads).toFixed(1).padStart(15)}${perSecond.toFixed(1).padStart(10)}${(perSecond * names.length).toFixed(0).padStart(10)}${(r.ms / r.reads).toFixed(2).padStart(10)}`,
  );
}
