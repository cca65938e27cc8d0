import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { archiveCsv, parseArchiveCsv } from '../../src/services/provisioning/index.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/archive/${name}`, import.meta.url), 'utf8');

describe('the customer archive CSV', () => {
  it('names every bad line by its number in the file, with what is wrong', () => {
    const { rows, bad } = parseArchiveCsv(fixture('bad-three.csv'));
    expect(bad).toEqual([
      { line: 3, message: 'meter must be the meter address: 1 to 12 digits as on its nameplate' },
      { line: 4, message: expect.stringMatching(/^customer number must be 1 to 12 decimal digits/) },
      { line: 5, message: 'name is empty' },
    ]);
    expect(rows.map((r) => r.line)).toEqual([2, 6]);
  });

  it('reads a clean file: quoted commas, tags, short meter addresses padded to 12 digits', () => {
    const { rows, bad } = parseArchiveCsv(fixture('clean.csv'));
    expect(bad).toEqual([]);
    expect(rows).toHaveLength(5);
    expect(rows[2]).toEqual({ line: 4, customerNo: '880000000103', name: 'Li Na', room: '3-203', meterAddress: '000000000103', tags: [] });
    expect(rows[4]).toMatchObject({ name: 'Chen, Jie', tags: ['student', 'floor-3'] });
  });

  it('refuses a customer number or a meter twice in one file, naming the first line', () => {
    const { bad } = parseArchiveCsv('customer,name,room,meter\n1,A,r1,11\n1,B,r2,12\n3,C,r3,11\n');
    expect(bad).toEqual([
      { line: 3, message: 'customer number 1 is already on line 2' },
      { line: 4, message: 'meter 000000000011 is already bound to the customer on line 2' },
    ]);
  });

  it('refuses a header it does not know, and a line with the wrong number of fields', () => {
    expect(parseArchiveCsv('customer,name,flat\n1,A,r\n').bad[0]).toEqual({
      line: 1,
      message: 'unknown column "flat"; missing column room: the header names customer,name,room,meter,tags (meter and tags optional)',
    });
    expect(parseArchiveCsv('customer,name,room\n1,A\n').bad).toEqual([{ line: 2, message: '2 fields where the header names 3' }]);
    expect(parseArchiveCsv('').bad[0]!.message).toMatch(/the file is empty/);
  });

  it('writes back what it reads', () => {
    const { rows } = parseArchiveCsv(fixture('clean.csv'));
    const again = parseArchiveCsv(archiveCsv(rows.map((r) => ({ ...r }))));
    expect(again.rows.map(({ line: _, ...r }) => r)).toEqual(rows.map(({ line: _, ...r }) => r));
  });
});
