import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Dlt645Decoder, decodeFrame, encodeFrame, fromHex, type DecodeEvent, type Frame } from '../../protocols/dlt645/index.js';

const arbAddress = fc
  .array(fc.integer({ min: 0, max: 99 }), { minLength: 6, maxLength: 6 })
  .map((ds) => ds.map((d) => d.toString().padStart(2, '0')).join(''));
const arbFrame: fc.Arbitrary<Frame> = fc.record({
  address: fc.oneof(arbAddress, fc.constant('AAAAAAAAAAAA'), fc.constant('999999999999')),
  control: fc.integer({ min: 0, max: 255 }),
  data: fc.uint8Array({ maxLength: 255 }),
});

const frames = (events: DecodeEvent[]) => events.filter((e) => e.kind === 'frame').map((e) => (e.kind === 'frame' ? e.frame : undefined));
const discarded = (events: DecodeEvent[]) => events.reduce((n, e) => n + (e.kind === 'discard' ? e.bytes.length : 0), 0);
const feed = (d: Dlt645Decoder, chunks: Uint8Array[]) => chunks.flatMap((c) => d.push(c));
const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));

describe('frame encode/decode', () => {
  it('round-trips any address, control code and data field (property)', () => {
    fc.assert(
      fc.property(arbFrame, fc.integer({ min: 0, max: 8 }), (f, preamble) => {
        const r = decodeFrame(encodeFrame(f, { preamble }));
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.value.frame).toEqual({ address: f.address, control: f.control, data: f.data });
      }),
    );
  });

  it('refuses a data field longer than 255 bytes with a RangeError that says so', () => {
    expect(() => encodeFrame({ address: '000000000001', control: 0x11, data: new Uint8Array(256) })).toThrow(/at most 255/);
  });
});

describe('streaming decoder', () => {
  it('yields the same frames however the byte stream is split (property, every split point)', () => {
    fc.assert(
      fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 4 }), fc.uint8Array({ maxLength: 20 }), (fs, noise) => {
        const stream = concat([noise, ...fs.map((f) => encodeFrame(f, { preamble: 2 }))]);
        const whole = feed(new Dlt645Decoder(), [stream]);
        for (let cut = 0; cut <= stream.length; cut++) {
          const split = feed(new Dlt645Decoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
          expect(frames(split)).toEqual(frames(whole));
          expect(discarded(split)).toBe(discarded(whole));
        }
        // Byte by byte, too.
        const single = feed(
          new Dlt645Decoder(),
          Array.from(stream, (b) => Uint8Array.of(b)),
        );
        expect(frames(single)).toEqual(frames(whole));
      }),
      { numRuns: 60 },
    );
  });

  it('finds every frame behind leading garbage and noise between frames', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.uint8Array({ maxLength: 12 }).map((n) => n.map((b) => (b === 0x68 ? 0x00 : b))),
            arbFrame,
          ),
          { minLength: 1, maxLength: 5 },
        ),
        (parts) => {
          const stream = concat(parts.flatMap(([noise, f]) => [noise, encodeFrame(f, { preamble: 4 })]));
          const got = frames(new Dlt645Decoder().push(stream));
          expect(got).toEqual(parts.map(([, f]) => f));
        },
      ),
    );
  });

  it('never throws, never holds more than one frame of bytes, on random input (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 20 }), (chunks) => {
        const d = new Dlt645Decoder();
        for (const c of chunks) {
          d.push(c);
          expect(d.pending).toBeLessThanOrEqual(267 + 64);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('resynchronises after a bad checksum and reports the discarded run with its reason', () => {
    const good = fromHex('68 12 90 78 56 34 12 68 91 08 33 33 34 33 89 67 45 33 54 16')!;
    const bad = fromHex('68 12 90 78 56 34 12 68 91 08 33 33 34 33 89 67 45 33 55 16')!;
    const events = new Dlt645Decoder().push(concat([bad, good]));
    expect(events.map((e) => e.kind)).toEqual(['discard', 'frame']);
    const first = events[0]!;
    expect(first.kind === 'discard' && first.reason).toBe('bad-checksum');
    expect(first.kind === 'discard' && first.bytes.length).toBe(bad.length);
  });

  it('a false 68 start (doubled 68 68 from a UART race) does not hide the real frame', () => {
    const good = fromHex('68 12 90 78 56 34 12 68 91 08 33 33 34 33 89 67 45 33 54 16')!;
    const events = new Dlt645Decoder().push(concat([Uint8Array.of(0x68), good]));
    expect(frames(events)).toHaveLength(1);
    const d = events.find((e) => e.kind === 'discard');
    expect(d?.kind === 'discard' && d.reason).toBe('bad-header');
  });

  it('a frame whose data contains 68H and 16H is read whole from its length byte', () => {
    const f: Frame = { address: '123456789012', control: 0x91, data: Uint8Array.of(0x35, 0xe3, 0x35, 0xe3, 0x68, 0x16) };
    const wire = encodeFrame(f);
    const got = frames(new Dlt645Decoder().push(wire));
    expect(got).toEqual([f]);
  });

  it('FE preamble bytes before a frame are not reported as noise', () => {
    const wire = encodeFrame({ address: '000000000001', control: 0x91, data: Uint8Array.of(1, 2, 3, 4) }, { preamble: 4 });
    const events = new Dlt645Decoder().push(wire);
    expect(events.map((e) => e.kind)).toEqual(['frame']);
  });

  it('reset() forgets a partial frame so a stale fragment cannot join the next reply', () => {
    const d = new Dlt645Decoder();
    const wire = encodeFrame({ address: '000000000001', control: 0x91, data: Uint8Array.of(1, 2, 3, 4) });
    d.push(wire.subarray(0, 9));
    d.reset();
    expect(d.pending).toBe(0);
    expect(frames(d.push(wire))).toHaveLength(1);
  });
});
