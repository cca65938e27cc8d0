import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirError, dataDirProblem, ensureDataDir, pseudoFileSystemProblem } from '../../src/config/data-dir.js';

const made: string[] = [];
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'meterd-datadir-unit-'));
  made.push(d);
  return d;
};

describe('the data directory check', () => {
  it('refuses /proc, /sys and /dev and what lies under them, by the path alone', () => {
    for (const path of ['/proc', '/proc/meterd-data', '/sys/x', '/dev/shm/meterd']) {
      expect(pseudoFileSystemProblem(path)).toMatch(/^is under \/(proc|sys|dev), a kernel file system/);
    }
    for (const path of ['/var/lib/meterd', '/process/x', '/devices', '/srv/proc']) expect(pseudoFileSystemProblem(path)).toBeUndefined();
  });

  it('creates a missing directory several levels deep, and accepts an existing one', () => {
    const base = temp();
    const path = join(base, 'a', 'b', 'c');
    expect(dataDirProblem(path)).toBeUndefined();
    ensureDataDir(path);
    expect(statSync(path).isDirectory()).toBe(true);
    ensureDataDir(path);
  });

  it('names a file in the way as what it is, with the path, under the code DATA_DIR_UNUSABLE', () => {
    const base = temp();
    writeFileSync(join(base, 'f'), '');
    expect(() => ensureDataDir(join(base, 'f', 'x'))).toThrow(
      new DataDirError(join(base, 'f', 'x'), `cannot be created: ${join(base, 'f')} is a file, not a directory`),
    );
    const err = (() => {
      try {
        ensureDataDir(join(base, 'f'));
      } catch (e) {
        return e as DataDirError;
      }
    })();
    expect(err).toMatchObject({ code: 'DATA_DIR_UNUSABLE', message: `gateway.dataDir ${join(base, 'f')} is a file, not a directory` });
  });
});
