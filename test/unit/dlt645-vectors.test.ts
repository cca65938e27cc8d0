import { describe, expect, it } from 'vitest';
import vectorsFile from '../fixtures/dlt645-vectors.json' with { type: 'json' };
import { decodeFrame, describeFrame, encodeFrame, fromHex, parseReadReply, readData, type Frame } from '../../protocols/dlt645/index.js';

interface Vector {
  id: string;
  hex: string;
  valid: boolean;
  meaning: string;
  di?: string;
  value?: number;
  unit?: string;
}
const vectors = vectorsFile.vectors as Vector[];

const bytes = (hex: string): Uint8Array => fromHex(hex)!;
const decoded = (hex: string): Frame => {
  const r = decodeFrame(bytes(hex));
  if (!r.ok) throw new Error(`${hex}: ${r.error.message}`);
  return r.value.frame;
};

// Values the generator cannot read off the meaning column (no unit after the arrow), checked by hand against the table.
const extra: Record<string, { value: unknown; address?: string }> = {
  V03: { value: '000000000001' },
  V16: { value: 0.501 },
  V17: { value: -1 },
  V19: { value: '002241020208' },
  V23: { value: 27 },
  V24: { value: 0 },
};

describe('DL/T 645 public test vectors (docs/reference/dlt645.md § Test vectors)', () => {
  it('the fixture holds every vector of the reference table', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(26);
  });

  for (const v of vectors) {
    it(`${v.id}: ${v.meaning.slice(0, 80)}`, () => {
      const r = decodeFrame(bytes(v.hex));
      if (!v.valid) {
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.error.code).toBe('DLT645_BAD_CHECKSUM');
        return;
      }
      expect(r.ok).toBe(true);
      const frame = decoded(v.hex);
      const d = describeFrame(frame);
      if (v.di) expect(d.di).toBe(v.di);
      if (v.value !== undefined) {
        expect(d.value).toBeCloseTo(v.value, 6);
        expect(d.unit).toBe(v.unit);
      }
      const e = extra[v.id];
      if (e) expect(d.value).toEqual(e.value);
      // Re-encoding what we decoded gives the same bytes, preamble included.
      const preamble = /^(FE)*/.exec(v.hex)![0].length / 2;
      expect(Buffer.from(encodeFrame(frame, { preamble })).toString('hex').toUpperCase()).toBe(v.hex);
    });
  }

  it('V05: building a read of 00010000 for meter 123456789012 reproduces the vector byte for byte', () => {
    const v = vectors.find((x) => x.id === 'V05')!;
    expect(
      Buffer.from(encodeFrame(readData('123456789012', '00010000'), { preamble: 4 }))
        .toString('hex')
        .toUpperCase(),
    ).toBe(v.hex);
  });

  it('V14: a checksum equal to 16H does not end the frame early', () => {
    const f = decoded(vectors.find((x) => x.id === 'V14')!.hex);
    const r = parseReadReply(f);
    expect(r.ok && r.value.di).toBe('02020100');
    expect(describeFrame(f).value).toBe(4.999);
  });

  it('D1 and D2: a set sign bit in the last byte decodes to a negative current and combined energy', () => {
    expect(describeFrame(decoded(vectors.find((x) => x.id === 'D1')!.hex)).value).toBe(-5.123);
    expect(describeFrame(decoded(vectors.find((x) => x.id === 'D2')!.hex)).value).toBe(-12.34);
  });

  it('V02: any number of FE preamble bytes is accepted and the address reads most significant first', () => {
    const d = describeFrame(decoded(vectors.find((x) => x.id === 'V02')!.hex));
    expect(d.address).toBe('123456789012');
    expect(d.function).toBe('readAddress');
    expect(d.value).toBe('123456789012');
  });
});
