import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { openStore } from '../../src/store/index.js';
import { runMeterd } from '../helpers/cli.js';

// `meterd archive` as a technician runs it: the real entry point, a real store in the config's data folder.

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/archive/${name}`, import.meta.url));
let dir: string;
let configPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'meterd-archive-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: gw-archive, dataDir: ${join(dir, 'data')} }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:9", gap: 5ms, timeout: 1s }
meters:
  - { id: room-101, bus: bus1, address: "000000000101", profile: dlt645-2007-single-phase-prepaid }
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const customers = () => {
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
  try {
    return store.archive.list();
  } finally {
    store.close();
  }
};

describe('meterd archive import', () => {
  it('a file with three bad lines: each reported by its line number, nothing imported, exit 1', async () => {
    const r = await runMeterd(['archive', 'import', '-c', configPath, fixture('bad-three.csv'), '--operator', 'zhang']);
    expect(r.status).toBe(1);
    const file = fixture('bad-three.csv');
    expect(
      r.stdout
        .split('\n')
        .filter((l) => l.startsWith(`${file}:`))
        .map((l) => l.slice(file.length + 1, l.indexOf(':', file.length + 1))),
    ).toEqual(['3', '4', '5']);
    expect(r.stdout).toContain(`${file}:5: name is empty`);
    expect(r.stderr).toMatch(
      /^meterd: ARCHIVE_BAD_LINES: 3 bad line\(s\) in .*nothing imported: correct them and import again, or give --skip-bad/,
    );
    expect(customers()).toEqual([]);
  });

  it('the clean file is imported, with who and what in each customer history; importing it again changes nothing', async () => {
    const r = await runMeterd(['archive', 'import', '-c', configPath, fixture('clean.csv'), '--operator', 'zhang']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('imported: 5 new, 0 changed, 0 unchanged');
    expect(customers().map((c) => [c.customerNo, c.meterAddress, c.state])).toEqual([
      ['880000000101', '000000000101', 'active'],
      ['880000000102', '000000000102', 'active'],
      ['880000000103', '000000000103', 'active'],
      ['880000000104', '000000000104', 'active'],
      ['880000000105', '000000000105', 'active'],
    ]);
    const again = await runMeterd(['archive', 'import', '-c', configPath, fixture('clean.csv'), '--operator', 'zhang']);
    expect(again.stdout).toContain('imported: 0 new, 0 changed, 5 unchanged');

    const show = await runMeterd(['archive', 'show', '-c', configPath, '880000000105', '--json']);
    const shown = JSON.parse(show.stdout) as {
      name: string;
      history: { operator: string; action: string; changes: Record<string, unknown> }[];
    };
    expect(shown.name).toBe('Chen, Jie');
    expect(shown.history).toHaveLength(1);
    expect(shown.history[0]).toMatchObject({ operator: 'zhang', action: 'import', changes: { room: [null, '3-205'] } });
  });

  it('--skip-bad imports the good lines and still reports the bad ones', async () => {
    const file = join(dir, 'more.csv');
    writeFileSync(file, 'customer,name,room,meter\n880000000201,Qian Yu,4-101,000000000201\n880000000202,Ma Lin,4-102,000000000101\n');
    const refused = await runMeterd(['archive', 'import', '-c', configPath, file]);
    expect(refused.status).toBe(1);
    expect(refused.stdout).toContain(
      `${file}:3: meter 000000000101 is bound to active customer 880000000101 in the archive; move that customer out first (meterd archive move-out 880000000101)`,
    );
    const skipped = await runMeterd(['archive', 'import', '-c', configPath, file, '--skip-bad']);
    expect(skipped.status).toBe(0);
    expect(skipped.stdout).toContain('imported: 1 new, 0 changed, 0 unchanged; 1 bad line(s) skipped');
    expect(customers().map((c) => c.customerNo)).toContain('880000000201');
    expect(customers().map((c) => c.customerNo)).not.toContain('880000000202');
  });

  it('a customer moved out frees the meter, with the change in the history; export gives back an importable file', async () => {
    const moved = await runMeterd(['archive', 'move-out', '-c', configPath, '880000000101', '--operator', 'li']);
    expect(moved.status).toBe(0);
    const list = await runMeterd(['archive', 'list', '-c', configPath, '--state', 'moved-out', '--json']);
    expect(
      list.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { customerNo: string }).customerNo),
    ).toEqual(['880000000101']);
    const show = await runMeterd(['archive', 'show', '-c', configPath, '880000000101']);
    expect(show.stdout).toMatch(/li {2}moved-out {2}state: "active" → "moved-out"/);

    const out = join(dir, 'export.csv');
    expect((await runMeterd(['archive', 'export', '-c', configPath, '--out', out, '--state', 'active'])).status).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('880000000105,"Chen, Jie",3-205,000000000105,student;floor-3');

    const unknown = await runMeterd(['archive', 'show', '-c', configPath, '880000009999']);
    expect(unknown.stderr).toBe(
      'meterd: UNKNOWN_CUSTOMER: no customer 880000009999 in the archive; see meterd archive list, or import it first\n',
    );
  });
});
