import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeCardRequest,
  encodeStxReply,
  encodeStxRequest,
  StxDecoder,
  stxReplyOf,
  STX_MAX_DATA,
  type StxDecodeEvent,
} from '../../protocols/card/index.js';

const bytes = (hex: string): Uint8Array => Uint8Array.from(hex.split(/\s+/).map((h) => parseInt(h, 16)));
const frames = (events: StxDecodeEvent[]) => events.flatMap((e) => (e.kind === 'frame' ? [e.frame] : []));
const discarded = (events: StxDecodeEvent[]) => events.reduce((n, e) => n + (e.kind === 'discard' ? e.bytes.length : 0), 0);
const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const feed = (d: StxDecoder, chunks: Uint8Array[]) => chunks.flatMap((c) => d.push(c));

const arbRequest = fc.record({ cmd: fc.integer({ min: 0, max: 255 }), data: fc.uint8Array({ maxLength: STX_MAX_DATA }) });
const arbNoise = fc.uint8Array({ maxLength: 24 }).map((n) => n.map((b) => (b === 0x02 ? 0x00 : b)));

describe("STX framing (meterd's generic binary dialect): 02 LEN(2, BE) CMD DATA 03 BCC", () => {
  // Golden frames worked out by hand (and with a separate Python script): BCC = XOR of LEN..ETX.
  it.each([
    ['power up', { op: 'powerUp' } as const, '02 00 01 10 03 12'],
    [
      'read 16 bytes of main memory at 0020H',
      { op: 'read', zone: 'main', addr: 0x20, len: 16 } as const,
      '02 00 06 20 00 00 20 00 10 03 15',
    ],
    [
      'write 02 00 at 0040H',
      { op: 'write', zone: 'main', addr: 0x40, data: Uint8Array.of(2, 0) } as const,
      '02 00 06 21 00 00 40 02 00 03 66',
    ],
  ])('%s encodes to the golden frame', (_name, req, hex) => {
    const r = encodeCardRequest('stx', req);
    expect(r.ok && r.value.bytes).toEqual(bytes(hex));
  });

  it('golden replies: data with status 00, and PSC rejected (status 04)', () => {
    expect(encodeStxReply({ cmd: 0x20, status: 0, data: bytes('DE AD BE EF') })).toEqual(bytes('02 00 06 20 00 DE AD BE EF 03 07'));
    const events = new StxDecoder().push(bytes('02 00 02 22 04 03 27'));
    expect(frames(events).map(stxReplyOf)).toEqual([{ cmd: 0x22, status: 0x04, data: new Uint8Array() }]);
  });

  it('round-trips any command and up to 512 data bytes (property)', () => {
    fc.assert(
      fc.property(arbRequest, ({ cmd, data }) => {
        const events = new StxDecoder().push(encodeStxRequest(cmd, data));
        expect(frames(events)).toEqual([{ cmd, body: data }]);
        expect(discarded(events)).toBe(0);
      }),
    );
  });

  it('a 03H or 02H inside the data does not cut the frame: the end comes from LEN', () => {
    const data = Uint8Array.of(0x03, 0x02, 0x03, 0x00, 0x02);
    expect(frames(new StxDecoder().push(encodeStxRequest(0x21, data)))).toEqual([{ cmd: 0x21, body: data }]);
  });

  it('yields the same frames however the stream is split (property, every split point and byte by byte)', () => {
    fc.assert(
      fc.property(
        fc.array(
          arbRequest.map((r) => ({ ...r, data: r.data.subarray(0, 24) })),
          { minLength: 1, maxLength: 3 },
        ),
        arbNoise,
        (rs, noise) => {
          const stream = concat([noise, ...rs.map((r) => encodeStxRequest(r.cmd, r.data))]);
          const whole = feed(new StxDecoder(), [stream]);
          expect(frames(whole)).toEqual(rs.map((r) => ({ cmd: r.cmd, body: r.data })));
          for (let cut = 0; cut <= stream.length; cut++) {
            const split = feed(new StxDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
            expect(frames(split)).toEqual(frames(whole));
            expect(discarded(split)).toBe(discarded(whole));
          }
          expect(
            frames(
              feed(
                new StxDecoder(),
                Array.from(stream, (b) => Uint8Array.of(b)),
              ),
            ),
          ).toEqual(frames(whole));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('finds every frame behind noise and counts every noise byte (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(arbNoise, arbRequest), { minLength: 1, maxLength: 4 }), (parts) => {
        const stream = concat(parts.flatMap(([n, r]) => [n, encodeStxRequest(r.cmd, r.data)]));
        const events = new StxDecoder().push(stream);
        expect(frames(events)).toEqual(parts.map(([, r]) => ({ cmd: r.cmd, body: r.data })));
        expect(discarded(events)).toBe(parts.reduce((s, [n]) => s + n.length, 0));
      }),
    );
  });

  it.each([
    ['a wrong BCC', '02 00 01 10 03 13', 'bad-bcc'],
    ['no ETX where LEN says', '02 00 01 10 04 12', 'bad-end'],
    ['LEN 0', '02 00 00 03 03', 'bad-length'],
    ['LEN over the dialect maximum', '02 FF FF 10 03 00', 'bad-length'],
  ])('discards a frame with %s, naming why', (_name, hex, reason) => {
    const events = new StxDecoder().push(bytes(hex));
    expect(frames(events)).toEqual([]);
    expect(events.find((e) => e.kind === 'discard')).toMatchObject({ reason });
  });

  it('a good frame right behind a broken one is still found', () => {
    const events = new StxDecoder().push(concat([bytes('02 00 05 20 00'), encodeStxRequest(0x10, new Uint8Array())]));
    expect(frames(events)).toEqual([{ cmd: 0x10, body: new Uint8Array() }]);
  });

  it('never throws on random bytes and never holds more than one frame (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 900 }), { maxLength: 6 }), (chunks) => {
        const d = new StxDecoder();
        for (const c of chunks) {
          d.push(c);
          expect(d.pending).toBeLessThanOrEqual(STX_MAX_DATA + 2 + 5);
        }
      }),
    );
  });
});
