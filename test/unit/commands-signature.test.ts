import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, commandSignature, signatureMatches, signingString } from '../../src/uplink/commands/signature.js';

/** The worked example of docs/mqtt-api.md, "Signatures (HMAC-SHA256)". */
const EXAMPLE = {
  key: 'meterd-example-key-2025',
  request: {
    requestId: 'st-20250301-0001',
    meter: 'room-101',
    energyKwh: 12.5,
    purchaseCount: 8,
    customerNo: '000000000101',
    expiresAt: '2025-03-01T08:10:00Z',
    ts: '2025-03-01T08:00:00Z',
  },
  canonical:
    '{"customerNo":"000000000101","energyKwh":12.5,"expiresAt":"2025-03-01T08:10:00Z","meter":"room-101","purchaseCount":8,"requestId":"st-20250301-0001","ts":"2025-03-01T08:00:00Z"}',
  signature: '13f74e2b89c2211749c0855b3cdaf72e4505dbe4f99001eb15836c41fe25d84b',
};

describe('the canonical form a signature covers', () => {
  it('sorts keys at every depth, keeps array order, and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1, { z: true, y: null }], c: 'x y' } })).toBe(
      '{"a":{"c":"x y","d":[2,1,{"y":null,"z":true}]},"b":1}',
    );
  });

  it('writes strings and numbers as JSON does: escapes, non-ASCII as is, 10.0 as 10', () => {
    expect(canonicalJson({ s: 'quote " backslash \\ newline \n 客户', n: 10.0, f: 0.1, neg: -3 })).toBe(
      '{"f":0.1,"n":10,"neg":-3,"s":"quote \\" backslash \\\\ newline \\n 客户"}',
    );
  });

  it('is the same for any key order or whitespace of the same JSON value, and parses back to that value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const canonical = canonicalJson(value);
        expect(canonicalJson(JSON.parse(JSON.stringify(value, null, 2)) as unknown)).toBe(canonical);
        expect(canonicalJson(reverseKeys(value))).toBe(canonical);
        expect(JSON.parse(canonical)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('leaves out the signature field itself', () => {
    expect(signingString({ ...EXAMPLE.request, signature: 'ab'.repeat(32) })).toBe(EXAMPLE.canonical);
  });
});

describe('the worked example', () => {
  it('gives the canonical text and signature printed in docs/mqtt-api.md', () => {
    expect(signingString(EXAMPLE.request)).toBe(EXAMPLE.canonical);
    expect(commandSignature(EXAMPLE.request, EXAMPLE.key)).toBe(EXAMPLE.signature);
    const docs = readFileSync(new URL('../../docs/mqtt-api.md', import.meta.url), 'utf8');
    for (const text of [
      EXAMPLE.key,
      EXAMPLE.canonical,
      EXAMPLE.signature,
      JSON.stringify({ ...EXAMPLE.request, signature: EXAMPLE.signature }),
    ]) {
      expect(docs).toContain(text);
    }
  });

  it('matches only the payload and key it was made for', () => {
    expect(signatureMatches(EXAMPLE.request, EXAMPLE.key, EXAMPLE.signature)).toBe(true);
    expect(signatureMatches(EXAMPLE.request, EXAMPLE.key, EXAMPLE.signature.toUpperCase())).toBe(true);
    expect(signatureMatches({ ...EXAMPLE.request, energyKwh: 125 }, EXAMPLE.key, EXAMPLE.signature)).toBe(false);
    expect(signatureMatches({ ...EXAMPLE.request, ts: '2025-03-01T08:00:01Z' }, EXAMPLE.key, EXAMPLE.signature)).toBe(false);
    expect(signatureMatches(EXAMPLE.request, `${EXAMPLE.key} `, EXAMPLE.signature)).toBe(false);
    expect(signatureMatches(EXAMPLE.request, EXAMPLE.key, EXAMPLE.signature.slice(2))).toBe(false);
    expect(signatureMatches(EXAMPLE.request, EXAMPLE.key, 'zz'.repeat(32))).toBe(false);
  });
});

function reverseKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(reverseKeys);
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .reverse()
      .map(([k, v]) => [k, reverseKeys(v)]),
  );
}
