/**
 * Generates test/fixtures/dlt645-vectors.json from the verified vector table in docs/reference/dlt645.md
 * (§ Test vectors), so the golden frames are never retyped by hand. Run: npm run fixtures [-- path/to/dlt645.md]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(process.argv[2] ?? resolve(here, '../docs/reference/dlt645.md'));
const target = resolve(here, '../test/fixtures/dlt645-vectors.json');

interface Vector {
  id: string;
  hex: string;
  /** The reference verified the checksum (✓) or marks the frame as a negative test (✗). */
  valid: boolean;
  meaning: string;
  /** Identifier named in the meaning, when there is one. */
  di?: string;
  /** Value and unit after the arrow in the meaning ("→ 123456.78 kWh"), when there is one. */
  value?: number;
  unit?: string;
}

const units: Record<string, string> = { kWh: 'kWh', V: 'V', A: 'A', Hz: 'Hz', kW: 'kW', yuan: 'CNY' };
const vectors: Vector[] = [];
for (const line of readFileSync(source, 'utf8').split('\n')) {
  const m = /^\| (V\d\d|D\d) \| `([0-9A-F ]+)` \| ([✓✗])[^|]*\| ([^|]+)\|/.exec(line);
  if (!m) continue;
  const [, id, hex, mark, meaningRaw] = m as unknown as [string, string, string, string, string];
  const meaning = meaningRaw.trim();
  const v: Vector = { id, hex: hex.replace(/ /g, ''), valid: mark === '✓', meaning };
  const di = /\b([0-9A-F]{8})\b/.exec(meaning);
  if (di) v.di = di[1];
  const val = /→ (?:[A-Z]+ = )?([−-]?\d+(?:\.\d+)?) (kWh|V|A|Hz|kW|yuan)\b/.exec(meaning);
  if (val) {
    v.value = Number(val[1]!.replace('−', '-'));
    v.unit = units[val[2]!];
  }
  vectors.push(v);
}
if (vectors.length === 0) throw new Error(`no vectors found in ${source}`);
writeFileSync(target, `${JSON.stringify({ source: 'docs/reference/dlt645.md § Test vectors', vectors }, null, 2)}\n`);
process.stdout.write(`${vectors.length} vectors written to ${target}\n`);
