import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyScale,
  decodeValue,
  encodeValue,
  registerCount,
  removeScale,
  toNumber,
  WORD_ORDERS,
  type DataType,
  type RegisterValue,
  type WordOrder,
} from '../../protocols/modbus/index.js';

const REGISTER_TYPES = ['int16', 'uint16', 'int32', 'uint32', 'float32', 'int64', 'uint64'] as const satisfies readonly DataType[];

function decoded(words: number[], type: DataType, order: WordOrder): RegisterValue {
  const r = decodeValue(words, type, order);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function encoded(value: RegisterValue, type: DataType, order: WordOrder): number[] {
  const r = encodeValue(value, type, order);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

/** Golden words per order, worked out by hand from the value's big-endian bytes A B C D (…). */
const GOLDEN: ReadonlyArray<{ type: DataType; value: RegisterValue; words: Record<WordOrder, number[]> }> = [
  { type: 'uint16', value: 0x1234, words: { ABCD: [0x1234], CDAB: [0x1234], BADC: [0x3412], DCBA: [0x3412] } },
  { type: 'int16', value: -2, words: { ABCD: [0xfffe], CDAB: [0xfffe], BADC: [0xfeff], DCBA: [0xfeff] } },
  {
    type: 'uint32',
    value: 0x12345678,
    words: { ABCD: [0x1234, 0x5678], CDAB: [0x5678, 0x1234], BADC: [0x3412, 0x7856], DCBA: [0x7856, 0x3412] },
  },
  { type: 'int32', value: -2, words: { ABCD: [0xffff, 0xfffe], CDAB: [0xfffe, 0xffff], BADC: [0xffff, 0xfeff], DCBA: [0xfeff, 0xffff] } },
  {
    type: 'float32',
    value: 230,
    words: { ABCD: [0x4366, 0x0000], CDAB: [0x0000, 0x4366], BADC: [0x6643, 0x0000], DCBA: [0x0000, 0x6643] },
  },
  {
    type: 'float32',
    value: -1.5,
    words: { ABCD: [0xbfc0, 0x0000], CDAB: [0x0000, 0xbfc0], BADC: [0xc0bf, 0x0000], DCBA: [0x0000, 0xc0bf] },
  },
  {
    type: 'uint64',
    value: 0x0123456789abcdefn,
    words: {
      ABCD: [0x0123, 0x4567, 0x89ab, 0xcdef],
      CDAB: [0xcdef, 0x89ab, 0x4567, 0x0123],
      BADC: [0x2301, 0x6745, 0xab89, 0xefcd],
      DCBA: [0xefcd, 0xab89, 0x6745, 0x2301],
    },
  },
  {
    type: 'int64',
    value: -2n,
    words: {
      ABCD: [0xffff, 0xffff, 0xffff, 0xfffe],
      CDAB: [0xfffe, 0xffff, 0xffff, 0xffff],
      BADC: [0xffff, 0xffff, 0xffff, 0xfeff],
      DCBA: [0xfeff, 0xffff, 0xffff, 0xffff],
    },
  },
];

describe('register words to values: every type in every word order', () => {
  for (const { type, value, words } of GOLDEN) {
    for (const order of WORD_ORDERS) {
      it(`${type} ${String(value)} is ${words[order].map((w) => w.toString(16).padStart(4, '0')).join(' ')} in ${order}, both ways`, () => {
        expect(decoded(words[order], type, order)).toBe(value);
        expect(encoded(value, type, order)).toEqual(words[order]);
      });
    }
  }

  it('register counts follow the type width: 1, 2 or 4 registers, and one bit for a coil', () => {
    expect(REGISTER_TYPES.map(registerCount)).toEqual([1, 1, 2, 2, 2, 4, 4]);
    expect(registerCount('bool')).toBe(1);
  });

  it('a Chint DDSU666 float keeps its float32 precision but prints as the shortest decimal (docs/reference/modbus-maps.md § Chint DDSU666)', () => {
    expect(decoded([0x4366, 0x3333], 'float32', 'ABCD')).toBe(230.2);
    // The bytes quoted from Tasmota, 43 66 33 34, are one float32 step above 230.2.
    expect(decoded([0x4366, 0x3334], 'float32', 'ABCD')).toBe(230.20001);
    expect(encoded(230.2, 'float32', 'ABCD')).toEqual([0x4366, 0x3333]);
  });

  it('ABCD is the big-endian and DCBA the little-endian byte image of the value (property, checked against Buffer)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (v) => {
        const be = Buffer.alloc(8);
        be.writeBigUInt64BE(v);
        const le = Buffer.alloc(8);
        le.writeBigUInt64LE(v);
        const asWords = (b: Buffer) => [0, 2, 4, 6].map((i) => b.readUInt16BE(i));
        expect(encoded(v, 'uint64', 'ABCD')).toEqual(asWords(be));
        expect(encoded(v, 'uint64', 'DCBA')).toEqual(asWords(le));
      }),
    );
  });
});

const arbitraryOf: Record<(typeof REGISTER_TYPES)[number], fc.Arbitrary<RegisterValue>> = {
  int16: fc.integer({ min: -0x8000, max: 0x7fff }),
  uint16: fc.integer({ min: 0, max: 0xffff }),
  int32: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  uint32: fc.integer({ min: 0, max: 0xffffffff }),
  float32: fc.float({ noNaN: true, noDefaultInfinity: true }),
  int64: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  uint64: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
};

describe('round trips (property)', () => {
  for (const type of REGISTER_TYPES) {
    it(`${type}: encode then decode gives the value back in every word order`, () => {
      fc.assert(
        fc.property(arbitraryOf[type], fc.constantFrom(...WORD_ORDERS), (value, order) => {
          const words = encoded(value, type, order);
          expect(words).toHaveLength(registerCount(type));
          const back = decoded(words, type, order);
          if (type === 'float32') expect(Math.fround(back as number)).toBe(value);
          else expect(back).toBe(value);
        }),
      );
    });
  }

  it('any register words decode and re-encode to the same words (float32 NaN/Infinity excepted)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...REGISTER_TYPES),
        fc.constantFrom(...WORD_ORDERS),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }),
        (type, order, all) => {
          const words = all.slice(0, registerCount(type));
          const r = decodeValue(words, type, order);
          if (!r.ok) {
            expect(r.error.code).toBe('NOT_A_NUMBER');
            return;
          }
          expect(encoded(r.value, type, order)).toEqual(words);
        },
      ),
    );
  });
});

describe('bad input from the wire and bad values to write are typed errors', () => {
  it('a float32 NaN or Infinity from a meter is NOT_A_NUMBER, whatever the order', () => {
    const nan = decodeValue([0x7fc0, 0x0000], 'float32', 'ABCD');
    expect(nan.ok === false && nan.error.code).toBe('NOT_A_NUMBER');
    const inf = decodeValue([0x0000, 0xff80], 'float32', 'CDAB');
    expect(inf.ok === false && inf.error.code).toBe('NOT_A_NUMBER');
  });

  it('the wrong number of registers, or a word that is not 16 bits, is refused', () => {
    const short = decodeValue([0x4366], 'float32', 'ABCD');
    expect(short.ok === false && short.error).toEqual({ code: 'WRONG_WORD_COUNT', message: 'float32 needs 2 registers, got 1' });
    const big = decodeValue([0x10000], 'uint16', 'ABCD');
    expect(big.ok === false && big.error.code).toBe('BAD_WORD');
    const frac = decodeValue([1.5, 0], 'int32', 'ABCD');
    expect(frac.ok === false && frac.error.code).toBe('BAD_WORD');
  });

  it('coils decode from booleans or 0/1, and encode to [1] / [0]', () => {
    expect(decodeValue([true], 'bool', 'ABCD')).toEqual({ ok: true, value: 1 });
    expect(decodeValue([false], 'bool', 'ABCD')).toEqual({ ok: true, value: 0 });
    expect(encodeValue(true, 'bool', 'ABCD')).toEqual({ ok: true, value: [1] });
    const two = encodeValue(2, 'bool', 'ABCD');
    expect(two.ok === false && two.error.code).toBe('OUT_OF_RANGE');
  });

  it('values that do not fit the register are refused instead of wrapped or rounded', () => {
    const cases: Array<[RegisterValue, DataType, string]> = [
      [40000, 'int16', 'OUT_OF_RANGE'],
      [-1, 'uint16', 'OUT_OF_RANGE'],
      [2 ** 32, 'uint32', 'OUT_OF_RANGE'],
      [1n << 64n, 'uint64', 'OUT_OF_RANGE'],
      [12.5, 'int32', 'NOT_AN_INTEGER'],
      [Number.NaN, 'uint16', 'NOT_A_NUMBER'],
      [Number.POSITIVE_INFINITY, 'float32', 'NOT_A_NUMBER'],
      [1e39, 'float32', 'OUT_OF_RANGE'],
    ];
    for (const [value, type, code] of cases) {
      const r = encodeValue(value, type, 'ABCD');
      expect(r.ok === false && r.error.code, `${String(value)} as ${type}`).toBe(code);
    }
  });

  it('an unknown type or order name is a programmer error with a specific message', () => {
    expect(() => decodeValue([1], 'word' as DataType, 'ABCD')).toThrow('unknown Modbus data type "word"');
    expect(() => decodeValue([1], 'uint16', 'BE' as WordOrder)).toThrow('unknown word order "BE"; expected one of ABCD, CDAB, BADC, DCBA');
  });

  it('toNumber keeps 64-bit values that a number holds exactly and refuses the rest', () => {
    expect(toNumber(2n ** 53n - 1n)).toEqual({ ok: true, value: Number.MAX_SAFE_INTEGER });
    expect(toNumber(-(2n ** 53n) + 1n)).toEqual({ ok: true, value: Number.MIN_SAFE_INTEGER });
    const r = toNumber(2n ** 53n);
    expect(r.ok === false && r.error.code).toBe('UNSAFE_INTEGER');
    expect(toNumber(230.2)).toEqual({ ok: true, value: 230.2 });
  });
});

describe('scaling: raw × scale + offset, and back for writes', () => {
  it('gives the decimal a technician reads on the meter, not a binary-float neighbour', () => {
    expect(applyScale(2302, { scale: 0.1 })).toBe(230.2);
    expect(applyScale(12345, { scale: 0.01 })).toBe(123.45);
    expect(applyScale(7, { scale: 0.1 })).toBe(0.7);
    expect(applyScale(500, { scale: 0.1, offset: -40 })).toBe(10);
    expect(applyScale(-1500, { scale: 0.001 })).toBe(-1.5);
    expect(applyScale(123456789012n, { scale: 0.01 })).toBe(1234567890.12);
    expect(applyScale(230.2, {})).toBe(230.2);
  });

  it('equals the decimal string of the raw value for power-of-ten scales (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), fc.integer({ min: 0, max: 4 }), (raw, decimals) => {
        const digits = Math.abs(raw)
          .toString()
          .padStart(decimals + 1, '0');
        const text = `${raw < 0 ? '-' : ''}${digits.slice(0, digits.length - decimals)}.${digits.slice(digits.length - decimals)}0`;
        // Number('1e-4') is the literal 0.0001; 10 ** -4 is a different double (0.00009999999999999999).
        expect(applyScale(raw, { scale: Number(`1e-${decimals}`) })).toBe(Number(text));
      }),
    );
  });

  it('removeScale finds the raw integer for a value on the scale (property: inverse of applyScale)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1e12, max: 1e12 }),
        fc.constantFrom(1, 0.1, 0.01, 0.001, 0.5, 0.25, 10),
        fc.constantFrom(0, -40, 0.5),
        (raw, scale, offset) => {
          expect(removeScale(applyScale(raw, { scale, offset }), { scale, offset })).toEqual({ ok: true, value: raw });
        },
      ),
    );
  });

  it('refuses a money value that is not a whole number of fen instead of rounding it', () => {
    expect(removeScale(123.45, { scale: 0.01 })).toEqual({ ok: true, value: 12345 });
    expect(removeScale(12.345, { scale: 0.01 })).toEqual({
      ok: false,
      error: {
        code: 'NOT_ON_SCALE',
        message: '12.345 is not a whole number of 0.01 steps; the nearest writable values are 12.34 and 12.35',
      },
    });
    // 0.1 + 0.2 is 0.30000000000000004 in binary floating point: not exactly 30 fen.
    const floaty = removeScale(0.1 + 0.2, { scale: 0.01 });
    expect(floaty.ok === false && floaty.error.code).toBe('NOT_ON_SCALE');
    const nan = removeScale(Number.NaN, { scale: 0.01 });
    expect(nan.ok === false && nan.error.code).toBe('NOT_A_NUMBER');
  });

  it('a zero or non-finite scale is a configuration error', () => {
    expect(() => applyScale(1, { scale: 0 })).toThrow('scale must be a finite non-zero number, got 0');
    expect(() => removeScale(1, { scale: 1, offset: Number.NaN })).toThrow('offset must be a finite number, got NaN');
  });
});
