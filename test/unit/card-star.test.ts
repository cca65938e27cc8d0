import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeCardRequest,
  encodeStarPacket,
  StarDecoder,
  STAR_MAX_CHARS,
  type StarDecodeEvent,
  type StarPacket,
} from '../../protocols/card/index.js';

const ascii = (s: string): Uint8Array => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));
const wire = (hex: string): Uint8Array => Uint8Array.from([...ascii(hex), 0x03]);
const frames = (events: StarDecodeEvent[]) => events.flatMap((e) => (e.kind === 'frame' ? [e.frame] : []));
const discarded = (events: StarDecodeEvent[]) => events.reduce((n, e) => n + (e.kind === 'discard' ? e.bytes.length : 0), 0);
const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const feed = (d: StarDecoder, chunks: Uint8Array[]) => chunks.flatMap((c) => d.push(c));

const arbPacket: fc.Arbitrary<StarPacket> = fc.record({
  head: fc.constantFrom(0x60, 0xe0),
  code: fc.integer({ min: 0, max: 255 }),
  data: fc.uint8Array({ maxLength: 254 }),
});

// Noise that holds no '6', 'E' or 'e', so it can never start a packet.
const arbNoise = fc.uint8Array({ maxLength: 24 }).map((n) => n.map((b) => (b === 0x36 || b === 0x45 || b === 0x65 ? 0x21 : b)));

describe('STAR framing: 60 LEN CMD DATA LRC as ASCII hex, then ETX', () => {
  // Golden frames worked out by hand (and checked with a separate Python script): LRC = XOR of HEAD, LEN, CMD, DATA.
  it.each([
    ['power up', { op: 'powerUp' } as const, '60011071'],
    ['read 16 bytes of main memory at 20H', { op: 'read', zone: 'main', addr: 0x20, len: 16 } as const, '60042300201077'],
    ['present PSC FF FF FF', { op: 'presentPsc', psc: Uint8Array.of(0xff, 0xff, 0xff) } as const, '600421FFFFFFBA'],
    ['write 02 00 00 at 40H', { op: 'write', zone: 'main', addr: 0x40, data: Uint8Array.of(2, 0, 0) } as const, '60072400400302000002'],
  ])('%s encodes to the golden frame', (_name, req, hex) => {
    const r = encodeCardRequest('star', req);
    expect(r.ok && r.value.bytes).toEqual(wire(hex));
  });

  it.each([
    ['an ACK with an SLE4442 ATR', '600500A213109155', { head: 0x60, code: 0x00, data: Uint8Array.of(0xa2, 0x13, 0x10, 0x91) }],
    ['a NACK with code E0H (one false PSC)', 'E001E001', { head: 0xe0, code: 0xe0, data: new Uint8Array() }],
  ])('decodes %s', (_name, hex, packet) => {
    expect(frames(new StarDecoder().push(wire(hex)))).toEqual([packet]);
  });

  it('accepts lowercase hex digits in the body, as the reference receiver does', () => {
    expect(frames(new StarDecoder().push(wire('600500a213109155')))).toEqual([
      { head: 0x60, code: 0, data: Uint8Array.of(0xa2, 0x13, 0x10, 0x91) },
    ]);
  });

  it('round-trips any head, code and up to 254 data bytes (property)', () => {
    fc.assert(
      fc.property(arbPacket, (p) => {
        const events = new StarDecoder().push(encodeStarPacket(p));
        expect(frames(events)).toEqual([p]);
        expect(discarded(events)).toBe(0);
      }),
    );
  });

  it('refuses to encode 255 data bytes with a RangeError that says the limit', () => {
    expect(() => encodeStarPacket({ head: 0x60, code: 0x24, data: new Uint8Array(255) })).toThrow(/at most 254/);
  });

  it('yields the same packets however the stream is split (property, every split point and byte by byte)', () => {
    fc.assert(
      fc.property(
        fc.array(
          arbPacket.map((p) => ({ ...p, data: p.data.subarray(0, 20) })),
          { minLength: 1, maxLength: 3 },
        ),
        arbNoise,
        (ps, noise) => {
          const stream = concat([noise, ...ps.map(encodeStarPacket)]);
          const whole = feed(new StarDecoder(), [stream]);
          expect(frames(whole)).toEqual(ps);
          for (let cut = 0; cut <= stream.length; cut++) {
            const split = feed(new StarDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
            expect(frames(split)).toEqual(frames(whole));
            expect(discarded(split)).toBe(discarded(whole));
          }
          expect(
            frames(
              feed(
                new StarDecoder(),
                Array.from(stream, (b) => Uint8Array.of(b)),
              ),
            ),
          ).toEqual(ps);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('finds every packet behind noise, and accounts for every noise byte (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(arbNoise, arbPacket), { minLength: 1, maxLength: 4 }), (parts) => {
        const stream = concat(parts.flatMap(([n, p]) => [n, encodeStarPacket(p)]));
        const events = new StarDecoder().push(stream);
        expect(frames(events)).toEqual(parts.map(([, p]) => p));
        expect(discarded(events)).toBe(parts.reduce((s, [n]) => s + n.length, 0));
      }),
    );
  });

  it('a packet cut short by a new one is dropped and the new one is still found', () => {
    const cut = ascii('6004230020'); // read request, cut after ADDR
    const good = wire('60011071');
    const events = new StarDecoder().push(concat([cut, good]));
    expect(frames(events)).toEqual([{ head: 0x60, code: 0x10, data: new Uint8Array() }]);
    expect(discarded(events)).toBe(cut.length);
  });

  it.each([
    ['a wrong LRC', wire('60011072'), 'bad-lrc'],
    ['an ETX before the length says', Uint8Array.from([...ascii('600423'), 0x03]), 'bad-length'],
    ['no ETX where the length says', ascii('60011071X'), 'bad-end'],
    ['a non-hex character inside', wire('6001G071'), 'bad-char'],
    ['LEN 0', wire('600060'), 'bad-length'],
  ])('discards a packet with %s, naming why, and never throws', (_name, bytes, reason) => {
    const events = new StarDecoder().push(bytes);
    expect(frames(events)).toEqual([]);
    expect(events.find((e) => e.kind === 'discard')).toMatchObject({ reason });
  });

  it('never throws on random bytes and never holds more than one packet (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 6 }), (chunks) => {
        const d = new StarDecoder();
        for (const c of chunks) {
          d.push(c);
          expect(d.pending).toBeLessThan(STAR_MAX_CHARS);
        }
      }),
    );
  });

  it('a long run of hex digits after a head is given up once it is longer than any packet', () => {
    const d = new StarDecoder();
    const events = d.push(concat([ascii('60FF'), ascii('0'.repeat(2000))]));
    expect(frames(events)).toEqual([]);
    expect(d.pending).toBeLessThan(STAR_MAX_CHARS);
  });
});
