/**
 * Requests per full read of a Modbus profile's points: one request per point against the planner, with and without
 * bridging gaps. Wire time counts RTU bytes at the line's baud rate (11 bits a byte) plus the 3.5-character silence
 * after each frame; the meter's own turnaround (often 20–100 ms a request) comes on top, which is why fewer requests win.
 *
 *   npx tsx scripts/bench/modbus-plan.ts [profile.yaml]     (default: device-profiles/eastron-sdm630.yaml)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { isDataType, isRegisterTable, planReads, type ReadBlock, type ReadPoint } from '../../protocols/modbus/index.js';

const file = process.argv[2] ?? fileURLToPath(new URL('../../device-profiles/eastron-sdm630.yaml', import.meta.url));
const profile = parse(readFileSync(file, 'utf8')) as {
  name?: string;
  line?: { baudRate?: number };
  points?: Record<string, Record<string, unknown>>;
};
const baud = profile.line?.baudRate ?? 9600;

const points: ReadPoint[] = [];
for (const [name, spec] of Object.entries(profile.points ?? {})) {
  const { table, address, type } = spec;
  if (typeof table === 'string' && isRegisterTable(table) && typeof address === 'number' && typeof type === 'string' && isDataType(type)) {
    points.push({ name, table, address, type });
  }
}

function onePerPoint(): ReadBlock[] {
  return points.map((p) => {
    const r = planReads([p]);
    if (!r.ok) throw new Error(r.error.message);
    return r.value[0]!;
  });
}

function planned(maxGap: number): ReadBlock[] {
  const r = planReads(points, { maxGap });
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

/** Request 8 bytes; reply unit + function + byte count + data + CRC; each followed by 3.5 characters of silence. */
function wireMs(blocks: readonly ReadBlock[]): number {
  let chars = 0;
  for (const b of blocks) {
    const dataBytes = b.table === 'coil' || b.table === 'discrete' ? Math.ceil(b.count / 8) : b.count * 2;
    chars += 8 + 3.5 + (5 + dataBytes) + 3.5;
  }
  return (chars * 11 * 1000) / baud;
}

const rows: Array<[string, ReadBlock[]]> = [
  ['one request per point', onePerPoint()],
  ...[0, 2, 8, 16, 100].map((gap): [string, ReadBlock[]] => [`planned, maxGap ${gap}`, planned(gap)]),
];

console.log(`${profile.name ?? file}: ${points.length} Modbus points, ${baud} baud`);
console.log(`${'plan'.padEnd(24)}${'requests'.padStart(10)}${'registers'.padStart(11)}${'wire ms'.padStart(10)}`);
for (const [label, blocks] of rows) {
  const registers = blocks.reduce((n, b) => n + b.count, 0);
  console.log(
    `${label.padEnd(24)}${String(blocks.length).padStart(10)}${String(registers).padStart(11)}${wireMs(blocks).toFixed(0).padStart(10)}`,
  );
}
