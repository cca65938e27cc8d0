import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  detectOverlaps,
  planReads,
  registerCount,
  splitBlock,
  TABLES,
  type AddressRange,
  type DataType,
  type PlanOptions,
  type ReadBlock,
  type ReadPoint,
  type RegisterTable,
} from '../../protocols/modbus/index.js';

function plan(points: readonly ReadPoint[], options?: PlanOptions): ReadBlock[] {
  const r = planReads(points, options);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

const shape = (blocks: readonly ReadBlock[]) => blocks.map((b) => `${b.table} ${b.start}+${b.count}`);
const input = (name: string, address: number, type: DataType = 'float32'): ReadPoint => ({ name, table: 'input', address, type });
const holding = (name: string, address: number, type: DataType = 'uint16'): ReadPoint => ({ name, table: 'holding', address, type });

/** Eastron SDM630 input registers, float32 ABCD, as listed in docs/reference/modbus-maps.md § Eastron SDM630 (the holding serial number left out). */
const SDM630: readonly ReadPoint[] = (
  [
    ['voltage.a', 0x00],
    ['voltage.b', 0x02],
    ['voltage.c', 0x04],
    ['current.a', 0x06],
    ['current.b', 0x08],
    ['current.c', 0x0a],
    ['power.active.a', 0x0c],
    ['power.active.b', 0x0e],
    ['power.active.c', 0x10],
    ['power.factor.a', 0x1e],
    ['power.factor.b', 0x20],
    ['power.factor.c', 0x22],
    ['power.active', 0x34],
    ['power.apparent', 0x38],
    ['power.reactive', 0x3c],
    ['power.factor', 0x3e],
    ['frequency', 0x46],
    ['energy.active.import', 0x48],
    ['energy.active.export', 0x4a],
    ['thd.voltage.a', 0xea],
    ['thd.voltage.b', 0xec],
    ['thd.voltage.c', 0xee],
    ['thd.voltage', 0xf8],
    ['energy.active.total', 0x156],
    ['energy.active.import.a', 0x15a],
    ['energy.active.import.b', 0x15c],
    ['energy.active.import.c', 0x15e],
    ['energy.active.export.a', 0x160],
    ['energy.active.export.b', 0x162],
    ['energy.active.export.c', 0x164],
  ] as const
).map(([name, address]) => input(name, address));

describe('read planning', () => {
  it('coalesces contiguous points into one request with each point at its offset', () => {
    expect(plan([input('c', 4), input('a', 0), input('b', 2)])).toEqual([
      {
        table: 'input',
        functionCode: 4,
        start: 0,
        count: 6,
        points: [
          { name: 'a', offset: 0, count: 2 },
          { name: 'b', offset: 2, count: 2 },
          { name: 'c', offset: 4, count: 2 },
        ],
      },
    ]);
  });

  it('bridges a gap of unused registers only up to maxGap', () => {
    const points = [holding('a', 0), holding('b', 3)];
    expect(shape(plan(points))).toEqual(['holding 0+1', 'holding 3+1']);
    expect(shape(plan(points, { maxGap: 1 }))).toEqual(['holding 0+1', 'holding 3+1']);
    expect(shape(plan(points, { maxGap: 2 }))).toEqual(['holding 0+4']);
    expect(plan(points, { maxGap: 2 })[0]!.points).toEqual([
      { name: 'a', offset: 0, count: 1 },
      { name: 'b', offset: 3, count: 1 },
    ]);
  });

  it('splits at 125 registers and never splits a point across requests', () => {
    const words = Array.from({ length: 126 }, (_, i) => holding(`r${i}`, i));
    expect(shape(plan(words))).toEqual(['holding 0+125', 'holding 125+1']);
    const floats = Array.from({ length: 70 }, (_, i) => input(`f${i}`, 2 * i));
    expect(shape(plan(floats))).toEqual(['input 0+124', 'input 124+16']);
  });

  it('honours a smaller per-table limit and the 2000-bit limit for coils', () => {
    const words = Array.from({ length: 10 }, (_, i) => holding(`r${i}`, i));
    expect(shape(plan(words, { maxRegisters: { holding: 4 } }))).toEqual(['holding 0+4', 'holding 4+4', 'holding 8+2']);
    expect(shape(plan(words, { maxRegisters: 5 }))).toEqual(['holding 0+5', 'holding 5+5']);
    const coils = Array.from({ length: 2001 }, (_, i): ReadPoint => ({ name: `c${i}`, table: 'coil', address: i, type: 'bool' }));
    expect(shape(plan(coils))).toEqual(['coil 0+2000', 'coil 2000+1']);
  });

  it('never merges different tables, and lists blocks in function-code order', () => {
    const points: ReadPoint[] = [
      input('in', 0),
      holding('hold', 1),
      { name: 'relay', table: 'coil', address: 0, type: 'bool' },
      { name: 'door', table: 'discrete', address: 2, type: 'bool' },
    ];
    expect(plan(points, { maxGap: 10 }).map((b) => [b.table, b.functionCode, b.start, b.count])).toEqual([
      ['coil', 1, 0, 1],
      ['discrete', 2, 2, 1],
      ['holding', 3, 1, 1],
      ['input', 4, 0, 2],
    ]);
  });

  it('never bridges a gap that contains a forbidden register', () => {
    const points = [holding('a', 0), holding('b', 4), holding('c', 8)];
    const forbidden: AddressRange[] = [{ table: 'holding', start: 2, count: 1 }];
    expect(shape(plan(points, { maxGap: 10, forbidden }))).toEqual(['holding 0+1', 'holding 4+5']);
    // A forbidden range in another table does not split this one.
    expect(shape(plan(points, { maxGap: 10, forbidden: [{ table: 'input', start: 2, count: 1 }] }))).toEqual(['holding 0+9']);
  });

  it('plans overlapping points into one block so both read from the same words', () => {
    const blocks = plan([holding('total', 10, 'uint32'), holding('total.low', 11, 'uint16')]);
    expect(blocks).toEqual([
      {
        table: 'holding',
        functionCode: 3,
        start: 10,
        count: 2,
        points: [
          { name: 'total', offset: 0, count: 2 },
          { name: 'total.low', offset: 1, count: 1 },
        ],
      },
    ]);
  });

  it('gives the same plan whatever order the points come in (property)', () => {
    fc.assert(
      fc.property(fc.shuffledSubarray([...SDM630], { minLength: SDM630.length }), fc.integer({ min: 0, max: 20 }), (shuffled, maxGap) => {
        expect(plan(shuffled, { maxGap })).toEqual(plan(SDM630, { maxGap }));
      }),
    );
  });
});

describe('configuration errors come back as values naming the point', () => {
  const code = (points: readonly ReadPoint[], options?: PlanOptions) => {
    const r = planReads(points, options);
    return r.ok ? 'ok' : `${r.error.code} ${r.error.points.join(',')}`;
  };

  it('a single point larger than one request is POINT_TOO_LARGE', () => {
    const r = planReads([holding('energy', 0, 'uint64')], { maxRegisters: { holding: 2 } });
    expect(r).toEqual({
      ok: false,
      error: {
        code: 'POINT_TOO_LARGE',
        message: 'point "energy" (uint64) needs 4 addresses but one holding read is limited to 2',
        points: ['energy'],
      },
    });
  });

  it('refuses a point inside a forbidden range, a duplicate name, a type that does not fit the table, an address past 65535', () => {
    expect(code([holding('a', 2)], { forbidden: [{ table: 'holding', start: 2, count: 1 }] })).toBe('POINT_IN_FORBIDDEN_RANGE a');
    expect(code([holding('a', 0), holding('a', 1)])).toBe('DUPLICATE_POINT a');
    expect(code([holding('flag', 0, 'bool')])).toBe('TYPE_NOT_IN_TABLE flag');
    expect(code([{ name: 'relay', table: 'coil', address: 0, type: 'uint16' }])).toBe('TYPE_NOT_IN_TABLE relay');
    expect(code([holding('end', 0xffff, 'uint32')])).toBe('ADDRESS_OUT_OF_RANGE end');
    expect(code([holding('a', 0xffff)])).toBe('ok');
  });

  it('refuses options beyond the protocol limits', () => {
    expect(code([holding('a', 0)], { maxGap: -1 })).toBe('INVALID_OPTION ');
    expect(code([holding('a', 0)], { maxRegisters: 126 })).toBe('INVALID_OPTION ');
    expect(code([holding('a', 0)], { maxRegisters: { coil: 2001 } })).toBe('INVALID_OPTION ');
    expect(code([holding('a', 0)], { forbidden: [{ table: 'holding', start: 0xffff, count: 2 }] })).toBe('INVALID_OPTION ');
  });
});

describe('overlap detection', () => {
  it('reports each pair of points sharing a register, with the shared range', () => {
    const points = [holding('total', 10, 'uint32'), holding('total.low', 11), holding('next', 12), input('same.address', 10)];
    expect(detectOverlaps(points)).toEqual([{ table: 'holding', first: 'total', second: 'total.low', start: 11, count: 1 }]);
  });

  it('finds nothing in a real register map (SDM630) and every pair in a stack of identical points', () => {
    expect(detectOverlaps(SDM630)).toEqual([]);
    const stack = ['a', 'b', 'c'].map((n) => holding(n, 5, 'uint32'));
    expect(detectOverlaps(stack).map((o) => `${o.first}/${o.second} ${o.start}+${o.count}`)).toEqual(['a/b 5+2', 'a/c 5+2', 'b/c 5+2']);
  });
});

describe('splitting a reply', () => {
  it('a register reply shorter or longer than the block is a typed error', () => {
    const [block] = plan([holding('a', 0, 'uint32')]);
    const short = splitBlock(block!, [1]);
    expect(short.ok === false && short.error).toEqual({
      code: 'SHORT_REPLY',
      message: 'the reply for holding 0+2 has 1 registers, 2 expected',
    });
    const long = splitBlock(block!, [1, 2, 3]);
    expect(long.ok === false && long.error.code).toBe('WRONG_REPLY_LENGTH');
  });

  it('a coil reply padded to whole bytes is accepted', () => {
    const [block] = plan([{ name: 'relay', table: 'coil', address: 3, type: 'bool' }]);
    const r = splitBlock(block!, [true, false, false, false, false, false, false, false]);
    expect(r.ok && [...r.value]).toEqual([['relay', [true]]]);
    expect(splitBlock(block!, new Array(9).fill(false)).ok).toBe(false);
  });

  it('plan then split gives every point exactly its own words from the register image (property)', () => {
    const TYPES: Record<'register' | 'bit', DataType[]> = {
      register: ['int16', 'uint16', 'int32', 'uint32', 'float32', 'int64', 'uint64'],
      bit: ['bool'],
    };
    const point = fc.record({
      table: fc.constantFrom<RegisterTable>('holding', 'input', 'coil'),
      address: fc.integer({ min: 0, max: 400 }),
      pick: fc.nat(),
    });
    const range = fc.record({
      table: fc.constantFrom<RegisterTable>('holding', 'input', 'coil'),
      start: fc.integer({ min: 0, max: 400 }),
      count: fc.integer({ min: 1, max: 4 }),
    });
    fc.assert(
      fc.property(
        fc.array(point, { maxLength: 60 }),
        fc.array(range, { maxLength: 4 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 4, max: 125 }),
        (raw, forbidden, maxGap, maxRegisters) => {
          const points = raw
            .map((p, i): ReadPoint => {
              const types = TYPES[TABLES[p.table].unit];
              return { name: `p${i}`, table: p.table, address: p.address, type: types[p.pick % types.length]! };
            })
            .filter(
              (p) =>
                !forbidden.some((f) => f.table === p.table && f.start < p.address + registerCount(p.type) && f.start + f.count > p.address),
            );
          const image = (table: RegisterTable, address: number) => (address * 7 + table.length * 13) & 0xffff;
          const blocks = plan(points, { maxGap, maxRegisters, forbidden });

          expect(blocks.length).toBeLessThanOrEqual(points.length);
          const seen: string[] = [];
          for (const block of blocks) {
            expect(block.count).toBeLessThanOrEqual(maxRegisters);
            expect(
              forbidden.some((f) => f.table === block.table && f.start < block.start + block.count && f.start + f.count > block.start),
            ).toBe(false);
            const reply = Array.from({ length: block.count }, (_, i) => image(block.table, block.start + i));
            const split = splitBlock(block, reply);
            if (!split.ok) throw new Error(split.error.message);
            for (const [name, words] of split.value) {
              const p = points.find((q) => q.name === name)!;
              expect(words).toEqual(Array.from({ length: registerCount(p.type) }, (_, i) => image(p.table, p.address + i)));
              seen.push(name);
            }
          }
          expect(seen.sort()).toEqual(points.map((p) => p.name).sort());
        },
      ),
    );
  });
});

describe('Eastron SDM630 (docs/reference/modbus-maps.md § Eastron SDM630)', () => {
  it('reads 30 float32 input points in 10 requests back to back, 7 when gaps of 2 may be bridged', () => {
    expect(SDM630).toHaveLength(30);
    expect(shape(plan(SDM630))).toEqual([
      'input 0+18', // 0x00–0x11: voltages, currents, phase powers
      'input 30+6', // 0x1E–0x23: phase power factors
      'input 52+2', // 0x34
      'input 56+2', // 0x38
      'input 60+4', // 0x3C–0x3F
      'input 70+6', // 0x46–0x4B: frequency, import, export
      'input 234+6', // 0xEA–0xEF: THD per phase
      'input 248+2', // 0xF8
      'input 342+2', // 0x156
      'input 346+12', // 0x15A–0x165: per-phase energies
    ]);
    expect(plan(SDM630, { maxGap: 2 })).toHaveLength(7);
    expect(plan(SDM630, { maxGap: 100 })).toHaveLength(2);
  });
});
