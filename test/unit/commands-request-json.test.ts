import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_REQUEST_DEPTH, parseRequestJson } from '../../src/uplink/commands/request-json.js';
import { canonicalJson } from '../../src/uplink/commands/signature.js';

/** How deep a JSON value nests: a scalar is 0, `{}` and `[]` are 1. */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + Math.max(0, ...children.map(depthOf));
}

describe('parseRequestJson', () => {
  it('gives back what JSON.parse gives for any JSON value within the depth limit, however it is spaced', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: MAX_REQUEST_DEPTH - 1 }), fc.constantFrom(undefined, 2, '\t'), (value, space) => {
        const text = JSON.stringify(value, null, space);
        expect(parseRequestJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
      }),
    );
  });

  it('refuses any value nested deeper than the limit, and accepts the limit itself', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 * MAX_REQUEST_DEPTH }), fc.boolean(), (depth, arrays) => {
        const text = arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"k":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
        const parsed = parseRequestJson(text);
        expect(parsed.ok).toBe(depth <= MAX_REQUEST_DEPTH);
        if (!parsed.ok) expect(parsed).toMatchObject({ kind: 'structure', message: expect.stringContaining('deeper than 16 levels') });
      }),
    );
  });

  it('names the path of the value that goes too deep, through objects and arrays', () => {
    const text = `{"a":[0,{"b":${'['.repeat(20)}${']'.repeat(20)}}]}`;
    expect(parseRequestJson(text)).toMatchObject({ ok: false, kind: 'structure', field: 'a.1.b.0.0.0.0.0.0.0.0.0.0.0.0.0' });
  });

  it('refuses a key repeated in one object, compared decoded, and names where', () => {
    expect(parseRequestJson('{"amountFen":-5,"amountFen":100}')).toMatchObject({ ok: false, kind: 'structure', field: 'amountFen' });
    expect(parseRequestJson('{"a":1,"\\u0061":2}')).toMatchObject({ ok: false, field: 'a' });
    expect(parseRequestJson('{"x":[{"k":1},{"k":1,"k":2}]}')).toMatchObject({ ok: false, field: 'x.1.k' });
    // The same key in sibling objects, and a value equal to a key, are no repeat.
    expect(parseRequestJson('{"x":[{"k":1},{"k":2}],"k":"k","y":{"k":{"k":"k"}}}').ok).toBe(true);
    expect(parseRequestJson('{"s":"\\"k\\":1,\\"k\\":2","k":1}').ok).toBe(true);
  });

  it('leaves syntax to JSON.parse', () => {
    for (const text of ['{"requestId":"j1","meter":', '', 'NaN', '{"a":1,}']) {
      expect(parseRequestJson(text)).toMatchObject({ ok: false, kind: 'syntax' });
    }
  });

  it('scans the 2,500-deep payload of the probe without recursion and refuses it', () => {
    const text = `{"requestId":"do1","x":${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}}`;
    expect(parseRequestJson(text)).toMatchObject({ ok: false, kind: 'structure', field: `x${'.a'.repeat(15)}` });
  });
});

describe('canonicalJson', () => {
  it('refuses a value deeper than the request limit instead of recursing into it', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    expect(() => canonicalJson(deep)).toThrow(RangeError);
    expect(() => canonicalJson(deep)).toThrow('deeper than 16 levels');
    let limit: unknown = 1;
    for (let i = 0; i < MAX_REQUEST_DEPTH; i++) limit = [limit];
    expect(depthOf(limit)).toBe(MAX_REQUEST_DEPTH);
    expect(canonicalJson(limit)).toBe(`${'['.repeat(16)}1${']'.repeat(16)}`);
  });
});
