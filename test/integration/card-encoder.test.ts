import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toHex, type CardFamily } from '../../protocols/card/index.js';
import { CardError, SerialCardEncoder, type CardEncoder } from '../../src/devices/card-encoder/index.js';
import { loadEncoderProfile, type EncoderProfile } from '../../src/profiles/encoder-profile.js';
import { cards, SimulatedEncoder, VirtualCpuCard, VirtualSle4442 } from '../../src/sim/encoder/index.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

/** The shipped profile, with short deadlines so silence is found quickly in tests. */
function profileFor(family: CardFamily, overrides: Partial<EncoderProfile> = {}): EncoderProfile {
  const p = loadEncoderProfile(family === 'star' ? 'star-st102' : 'generic-stx');
  return { ...p, replyTimeoutMs: 300, writeTimeoutMs: 300, cardPollMs: 40, ...overrides };
}

async function failure(p: Promise<unknown>): Promise<CardError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CardError);
  return err as CardError;
}

const PSC = Uint8Array.of(0x11, 0x22, 0x33);
const WRONG = Uint8Array.of(0x00, 0x00, 0x01);

describe.each(['star', 'stx'] as const)('CardEncoder over a real pty pair against the simulated %s encoder', (family) => {
  let pty: PtyPair;
  let sim: SimulatedEncoder;
  let encoder: CardEncoder;

  beforeAll(async () => {
    pty = await createPtyPair();
    sim = new SimulatedEncoder({ framing: family });
    await sim.attach(pty.b);
  });
  afterAll(async () => {
    await sim?.close();
    await pty?.close();
  });
  beforeEach(async () => {
    sim.remove();
    sim.setSilent(false);
    encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: profileFor(family) });
    await encoder.open();
  });
  afterEach(async () => {
    await encoder.close();
  });

  const insertPowered = async (card = new VirtualSle4442({ psc: PSC })) => {
    sim.insert(card);
    await encoder.powerUp('SLE4442');
    return card;
  };

  it('open() says which encoder answers', async () => {
    await encoder.close();
    encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: profileFor(family) });
    const info = await encoder.open();
    expect(info.framing).toBe(family);
    expect(info.model).toBe(family === 'stx' ? 'meterd-sim-encoder' : profileFor('star').name);
  });

  it('an empty slot: card status says so, and waiting for a card ends in NO_CARD', async () => {
    expect(await encoder.cardStatus()).toMatchObject({ present: false, powered: false });
    expect((await failure(encoder.waitForCard(150))).code).toBe('NO_CARD');
  });

  it('waitForCard resolves with the kind once the cashier inserts a card', async () => {
    const waiting = encoder.waitForCard(5000);
    setTimeout(() => sim.insert(cards.blank()), 100);
    expect(await waiting).toBe('SLE4442');
  });

  it('power up reads the SLE4442 answer to reset; main memory reads without a PSC', async () => {
    sim.insert(cards.blank());
    const { atr, kind } = await encoder.powerUp();
    expect(kind).toBe('SLE4442');
    expect(toHex(atr)).toBe('A2131091');
    expect(toHex(await encoder.read('main', 0, 4))).toBe('A2131091');
    expect(await encoder.pscAttemptsLeft()).toBe(3);
  });

  it('reads and writes span several requests (256 bytes, more than one chunk)', async () => {
    const card = await insertPowered();
    await encoder.verifyPsc(PSC);
    const data = Uint8Array.from({ length: 200 }, (_, i) => i);
    await encoder.write(0x30, data);
    expect(card.main.subarray(0x30, 0x30 + 200)).toEqual(data);
    expect((await encoder.read('main', 0, 256)).subarray(0x30, 0x30 + 200)).toEqual(data);
  });

  it('a write without the PSC is ignored by the card, and the read-back says where (WRITE_VERIFY_FAILED)', async () => {
    await insertPowered();
    const err = await failure(encoder.write(0x40, Uint8Array.of(1, 2, 3)));
    expect(err.code).toBe('WRITE_VERIFY_FAILED');
    expect(err.addr).toBe(0x40);
  });

  it('a wrong PSC is PSC_REJECTED with the attempts left, and is presented exactly once', async () => {
    const card = await insertPowered();
    const heard = sim.stats().requests.presentPsc ?? 0;
    const err = await failure(encoder.verifyPsc(WRONG));
    expect(err).toMatchObject({ code: 'PSC_REJECTED', attemptsLeft: 2 });
    expect(card.presentations).toBe(1);
    expect(sim.stats().requests.presentPsc).toBe(heard + 1);
  });

  it('with 2 attempts left meterd refuses to present a PSC unless forced, and never touches the counter', async () => {
    const card = await insertPowered();
    card.setErrorCounter(0b011);
    const err = await failure(encoder.verifyPsc(PSC));
    expect(err).toMatchObject({ code: 'PSC_ATTEMPTS_LOW', attemptsLeft: 2 });
    expect(card.presentations).toBe(0);
    await encoder.verifyPsc(PSC, { force: true });
    expect(card.presentations).toBe(1);
    expect(card.errorCounter).toBe(0b111);
  });

  it('the last attempt wasted locks the card: CARD_LOCKED, and a locked card is never presented a PSC again', async () => {
    const card = await insertPowered();
    card.setErrorCounter(0b001);
    expect((await failure(encoder.verifyPsc(WRONG, { force: true }))).code).toBe('CARD_LOCKED');
    expect(card.errorCounter).toBe(0);
    expect((await failure(encoder.verifyPsc(PSC, { force: true }))).code).toBe('CARD_LOCKED');
    expect(card.presentations).toBe(1);
  });

  it('a locked card (sim.lock) reads but refuses every PSC', async () => {
    const card = await insertPowered();
    sim.lock();
    expect(await encoder.pscAttemptsLeft()).toBe(0);
    expect((await failure(encoder.verifyPsc(PSC))).code).toBe('CARD_LOCKED');
    expect(card.presentations).toBe(0);
    expect(toHex(await encoder.read('main', 0, 4))).toBe('A2131091');
  });

  it('a PSC presentation that gets no reply is TIMEOUT and is not sent again', async () => {
    const card = await insertPowered();
    sim.dropNextReply(1, 'presentPsc');
    const err = await failure(encoder.verifyPsc(PSC));
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/does not present it again/);
    expect(card.presentations).toBe(1);
  });

  it('changing the PSC needs the current one first, and the new one reads back', async () => {
    const card = await insertPowered();
    expect((await failure(encoder.changePsc(Uint8Array.of(9, 8, 7)))).code).toBe('PSC_NOT_PRESENTED');
    await encoder.verifyPsc(PSC);
    await encoder.changePsc(Uint8Array.of(9, 8, 7));
    expect(card.psc).toEqual(Uint8Array.of(9, 8, 7));
  });

  it('protection bits are irreversible: refused without confirm, written and verified with it', async () => {
    const card = await insertPowered();
    await encoder.verifyPsc(PSC);
    const err = await failure(encoder.protect(0x04, 4, { confirm: false }));
    expect(err.code).toBe('CONFIRMATION_REQUIRED');
    expect(toHex(card.protection)).toBe('FFFFFFFF');
    await encoder.protect(0x04, 4, { confirm: true });
    expect(toHex(card.protection)).toBe('0FFFFFFF');
    expect((await failure(encoder.write(0x05, Uint8Array.of(0)))).code).toBe('WRITE_VERIFY_FAILED');
  });

  it('a card pulled during a write is CARD_REMOVED; only the first bytes reached it', async () => {
    const card = await insertPowered();
    await encoder.verifyPsc(PSC);
    sim.removeDuringNextWrite({ afterBytes: 2 });
    const err = await failure(encoder.write(0x40, Uint8Array.of(1, 2, 3, 4)));
    expect(err.code).toBe('CARD_REMOVED');
    expect(toHex(card.main.subarray(0x40, 0x44))).toBe('0102FFFF');
    expect(await encoder.cardStatus()).toMatchObject({ present: false });
  });

  it('an empty slot is NO_CARD for a power-up', async () => {
    expect((await failure(encoder.powerUp())).code).toBe('NO_CARD');
  });

  it('a CPU card where a memory card is needed is WRONG_CARD_KIND', async () => {
    sim.insert(cards.cpu());
    const err = await failure(encoder.powerUp('SLE4442'));
    expect(err.code).toBe('WRONG_CARD_KIND');
  });

  it('APDUs to a CPU card: 61xx is followed by GET RESPONSE, 6Cxx by a resend with the right Le', async () => {
    const card = cards.cpu();
    sim.insert(card);
    expect((await encoder.powerUp()).kind).toBe('CPU_T0');
    const select = await encoder.transmit(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x02, 0x3f, 0x00));
    expect(select).toEqual({ data: VirtualCpuCard.FCI, sw: 0x9000 });
    const read = await encoder.transmit(Uint8Array.of(0x00, 0xb0, 0x00, 0x00, 0x00));
    expect(read).toEqual({ data: VirtualCpuCard.FILE, sw: 0x9000 });
    expect(card.apdus.map((a) => toHex(a.subarray(0, 2)))).toEqual(['00A4', '00C0', '00B0', '00B0']);
    expect(card.apdus[3]![4]).toBe(0x10);
  });

  it("a refusal the driver has no better name for is READER_REFUSED with the reader's code", async () => {
    await encoder.close();
    const strict = new SimulatedEncoder({ framing: family, canEject: false });
    const pty2 = await createPtyPair();
    try {
      await strict.attach(pty2.b);
      encoder = new SerialCardEncoder({
        id: 'counter1',
        port: pty2.a,
        profile: profileFor(family, { capabilities: { ...profileFor(family).capabilities, eject: true } }),
      });
      await encoder.open();
      const err = await failure(encoder.eject());
      expect(err.code).toBe('READER_REFUSED');
      expect(err.readerCode).toBe(family === 'star' ? 0xdd : 0x09);
      await encoder.close();
    } finally {
      await strict.close();
      await pty2.close();
      encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: profileFor(family) });
      await encoder.open();
    }
  });

  it('a reply with a broken checksum, twice, is FRAMING_ERROR (not a silent TIMEOUT)', async () => {
    await insertPowered();
    sim.corruptNextReply(2);
    const err = await failure(encoder.read('main', 0, 8));
    expect(err.code).toBe('FRAMING_ERROR');
  });

  it('a broken reply once is absorbed by the read retry', async () => {
    await insertPowered();
    sim.corruptNextReply(1);
    expect(toHex(await encoder.read('main', 0, 4))).toBe('A2131091');
  });

  it('an encoder that stops answering is TIMEOUT', async () => {
    await insertPowered();
    sim.setSilent(true);
    expect((await failure(encoder.read('main', 0, 8))).code).toBe('TIMEOUT');
  });

  it('beep sounds; eject works where the encoder can, and is NOT_SUPPORTED where it cannot', async () => {
    sim.insert(cards.blank());
    const before = sim.stats().beeps;
    await encoder.beep(100);
    expect(sim.stats().beeps).toBe(before + 1);
    if (encoder.canEject) {
      await encoder.eject();
      expect(sim.card).toBeUndefined();
    } else {
      expect((await failure(encoder.eject())).code).toBe('NOT_SUPPORTED');
      expect(sim.card).toBeDefined();
    }
  });
});

describe('opening the wrong port', () => {
  it('nothing answering is a TIMEOUT that tells the technician what to check', async () => {
    const pty = await createPtyPair();
    const sim = new SimulatedEncoder({ framing: 'star' });
    await sim.attach(pty.b);
    sim.setSilent(true);
    try {
      const encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: profileFor('star') });
      const err = await failure(encoder.open());
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toMatch(/9600 baud/);
    } finally {
      await sim.close();
      await pty.close();
    }
  });

  it('an encoder of the other family hears no request it knows and stays silent: TIMEOUT', async () => {
    const pty = await createPtyPair();
    const sim = new SimulatedEncoder({ framing: 'stx' });
    await sim.attach(pty.b);
    try {
      const encoder = new SerialCardEncoder({ id: 'counter1', port: pty.a, profile: profileFor('star') });
      const err = await failure(encoder.open());
      expect(err.code).toBe('TIMEOUT');
      expect(sim.stats().discardedBytes).toBeGreaterThan(0);
    } finally {
      await sim.close();
      await pty.close();
    }
  });
});

describe('an encoder behind a serial-over-Ethernet converter (tcp://)', () => {
  it('the same driver reads and writes the card over TCP', async () => {
    const sim = new SimulatedEncoder({ framing: 'stx' });
    const at = await sim.attach(0);
    if (at.kind !== 'tcp') throw new Error('expected a TCP listener');
    const card = new VirtualSle4442({ psc: PSC });
    sim.insert(card);
    const encoder = new SerialCardEncoder({ id: 'counter2', port: `tcp://127.0.0.1:${at.port}`, profile: profileFor('stx') });
    try {
      expect((await encoder.open()).port).toBe(`tcp://127.0.0.1:${at.port}`);
      await encoder.powerUp('SLE4442');
      await encoder.verifyPsc(PSC);
      await encoder.write(0x40, Uint8Array.of(7, 7));
      expect(toHex(card.main.subarray(0x40, 0x42))).toBe('0707');
    } finally {
      await encoder.close();
      await sim.close();
    }
  });
});
