import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CardFrameDecoder,
  encodeCardReply,
  encodeCardRequest,
  errorCodeOfStatus,
  kindFromAtr,
  pscAttemptsLeft,
  errorCounterAfterWrongPsc,
  replyOf,
  requestOf,
  STAR_NACK_CODES,
  STX_STATUS,
  type CardFamily,
  type CardRequest,
  type ReaderStatusName,
} from '../../protocols/card/index.js';

const FAMILIES: CardFamily[] = ['star', 'stx'];

const decodeOne = (family: CardFamily, bytes: Uint8Array) => {
  const frames = new CardFrameDecoder(family).push(bytes).flatMap((e) => (e.kind === 'frame' ? [e.frame] : []));
  expect(frames).toHaveLength(1);
  return frames[0]!;
};

const arbRequest: fc.Arbitrary<CardRequest> = fc.oneof(
  fc.constantFrom<CardRequest>(
    { op: 'cardStatus' },
    { op: 'powerUp' },
    { op: 'powerDown' },
    { op: 'cpuPowerUp' },
    { op: 'cpuPowerDown' },
    { op: 'readErrorCounter' },
    { op: 'eject' },
  ),
  fc.constantFrom<CardRequest>({ op: 'selectCardType', kind: 'SLE4442' }, { op: 'selectCardType', kind: 'AT24C' }),
  fc.record({
    op: fc.constant('read' as const),
    zone: fc.constantFrom('main' as const, 'protection' as const, 'security' as const),
    addr: fc.integer({ min: 0, max: 255 }),
    len: fc.integer({ min: 1, max: 200 }),
  }),
  fc.record({
    op: fc.constant('write' as const),
    zone: fc.constantFrom('main' as const, 'security' as const),
    addr: fc.integer({ min: 0, max: 255 }),
    data: fc.uint8Array({ minLength: 1, maxLength: 200 }),
  }),
  fc.record({ op: fc.constant('presentPsc' as const), psc: fc.uint8Array({ minLength: 3, maxLength: 3 }) }),
  fc.record({
    op: fc.constant('writeProtection' as const),
    addr: fc.integer({ min: 0, max: 31 }),
    data: fc.uint8Array({ minLength: 1, maxLength: 32 }),
  }),
  fc.record({ op: fc.constant('beep' as const), ms: fc.integer({ min: 0, max: 255 }).map((n) => n * 10) }),
  // Case 2 (Le) and case 3 (Lc data) APDUs: the shapes T=0 carries both ways.
  fc
    .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 255 }))
    .map(([h, le]): CardRequest => ({ op: 'apdu', apdu: Uint8Array.of(...h, le) })),
  fc
    .tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 100 }))
    .map(([h, d]): CardRequest => ({ op: 'apdu', apdu: Uint8Array.of(...h, d.length, ...d) })),
);

describe('vendor-neutral card commands over both framings', () => {
  it.each(FAMILIES)('%s: every request survives encode → wire → decode (property)', (family) => {
    fc.assert(
      fc.property(arbRequest, (req) => {
        const enc = encodeCardRequest(family, req);
        expect(enc.ok).toBe(true);
        if (!enc.ok) return;
        const back = requestOf(decodeOne(family, enc.value.bytes));
        expect(back).toEqual({ ok: true, value: req });
      }),
    );
  });

  it('STAR has no change-PSC command: it is a write of the security zone at address 1', () => {
    const enc = encodeCardRequest('star', { op: 'changePsc', psc: Uint8Array.of(1, 2, 3) });
    expect(enc.ok && requestOf(decodeOne('star', enc.value.bytes))).toEqual({
      ok: true,
      value: { op: 'write', zone: 'security', addr: 1, data: Uint8Array.of(1, 2, 3) },
    });
  });

  it('STAR has no reader-information command: encoding one is a typed refusal, not an exception', () => {
    expect(encodeCardRequest('star', { op: 'readerInfo' })).toMatchObject({ ok: false, error: { code: 'NOT_IN_FAMILY' } });
  });

  it('values that do not fit a family are typed refusals', () => {
    expect(encodeCardRequest('star', { op: 'read', zone: 'main', addr: 0, len: 256 })).toMatchObject({
      ok: false,
      error: { code: 'BAD_COMMAND_DATA' },
    });
    expect(encodeCardRequest('stx', { op: 'presentPsc', psc: Uint8Array.of(1, 2) })).toMatchObject({
      ok: false,
      error: { code: 'BAD_COMMAND_DATA' },
    });
    expect(encodeCardRequest('stx', { op: 'apdu', apdu: Uint8Array.of(0, 0xa4, 0, 0, 5, 1) })).toMatchObject({
      ok: false,
      error: { code: 'BAD_COMMAND_DATA' },
    });
  });

  it('STAR sends a case-4 APDU as "incoming" (Lc and data) without Le: T=0 answers 61xx for the response', () => {
    const enc = encodeCardRequest('star', { op: 'apdu', apdu: Uint8Array.of(0x00, 0xa4, 0x00, 0x00, 0x02, 0x3f, 0x00, 0x00) });
    expect(enc.ok && enc.value.code).toBe(0xda);
    expect(enc.ok && requestOf(decodeOne('star', enc.value.bytes))).toMatchObject({
      ok: true,
      value: { apdu: Uint8Array.of(0x00, 0xa4, 0x00, 0x00, 0x02, 0x3f, 0x00) },
    });
  });

  it.each(FAMILIES)('%s: every refusal the simulator sends reads back as the same meaning and driver error code', (family) => {
    const names: ReaderStatusName[] = [
      'no-card',
      'card-removed',
      'card-not-supported',
      'psc-rejected',
      'card-locked',
      'address-out-of-range',
      'write-failed',
      'bad-parameter',
      'not-supported',
      'bad-frame',
    ];
    for (const name of names) {
      const reply = replyOf(decodeOne(family, encodeCardReply(family, 0x23, { ok: false, status: name })));
      expect(reply).toMatchObject({ ok: false, status: { name } });
    }
    expect(errorCodeOfStatus('card-removed')).toBe('CARD_REMOVED');
    expect(errorCodeOfStatus('psc-rejected')).toBe('PSC_REJECTED');
    expect(errorCodeOfStatus('address-out-of-range')).toBe('READER_REFUSED');
  });

  it('an unknown refusal code is READER_REFUSED with the code in the message, never a crash', () => {
    const star = replyOf({ family: 'star', head: 0xe0, code: 0x99, data: new Uint8Array() });
    expect(star).toMatchObject({ ok: false, status: { name: 'unknown', code: 0x99 } });
    expect(!star.ok && star.status.message).toMatch(/99H/);
    const stx = replyOf({ family: 'stx', head: 2, code: 0x20, data: Uint8Array.of(0x77) });
    expect(stx).toMatchObject({ ok: false, status: { name: 'unknown', code: 0x77 } });
  });

  it('the status tables name every code they list', () => {
    expect(Object.values(STAR_NACK_CODES)).not.toContain(undefined);
    expect(Object.keys(STX_STATUS).map(Number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});

describe('SLE4442 facts', () => {
  it('attempts left are the set bits of the error counter: 7 → 3, 6 → 2, 4 → 1, 0 → 0', () => {
    expect([7, 6, 3, 4, 1, 0].map(pscAttemptsLeft)).toEqual([3, 2, 2, 1, 1, 0]);
  });

  it('each wrong PSC clears one bit until the counter is 0', () => {
    expect(errorCounterAfterWrongPsc(7)).toBe(3);
    expect(errorCounterAfterWrongPsc(3)).toBe(1);
    expect(errorCounterAfterWrongPsc(1)).toBe(0);
    expect(errorCounterAfterWrongPsc(0)).toBe(0);
  });

  it('card kind from the ATR', () => {
    expect(kindFromAtr(Uint8Array.of(0xa2, 0x13, 0x10, 0x91))).toBe('SLE4442');
    expect(kindFromAtr(Uint8Array.of(0x3b, 0x02, 0x14, 0x50))).toBe('CPU_T0');
    expect(kindFromAtr(Uint8Array.of(0x3b, 0x81, 0x81, 0x31))).toBe('CPU_T1'); // TD1 = 81H → T=1
    expect(kindFromAtr(Uint8Array.of(0xff, 0xff))).toBe('UNKNOWN');
  });
});
