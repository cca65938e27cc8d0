import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abnormalOf,
  addressToBytes,
  broadcastTime,
  changeBaud,
  changePassword,
  demandClear,
  decodeFrame,
  decodeValue,
  diToBytes,
  encodeDigits,
  encodeFrame,
  encodeNumber,
  eventClear,
  findDataItem,
  freeze,
  meterClear,
  meterTimeOf,
  multiFunctionOutput,
  parsePassword,
  parseReadReply,
  plainValue,
  readAddress,
  readData,
  readData1997,
  readFollowUp,
  remoteControl,
  securityAuth,
  writeAddress,
  writeData,
  type Edition,
  type Frame,
  type Password,
  type RemoteAction,
} from '../../protocols/dlt645/index.js';
import { SimulatedMeter, type CreditLoad, type MeterSpec, type SecurityModule } from '../../src/sim/dlt645/index.js';
import { ESAM_TEST_KEY } from '../../src/sim/dlt645/esam-stand-in.js';
import { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';

const A = '000000000001';
const OP = '00000042';
const HOUR = 3_600_000;
// Local wall-clock times, since a meter keeps local time like the gateway.
const T0 = new Date(2026, 0, 15, 10, 0, 0).getTime();
const at = (ms: number) => meterTimeOf(new Date(ms));

const pw = (text = '02000000'): Password => {
  const r = parsePassword(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};

const meter = (spec: Partial<MeterSpec> = {}) => new SimulatedMeter({ address: A, ...spec }, { startMs: T0 });

/** Send a request through real wire bytes and return the meter's one reply decoded from its wire bytes. */
function ask(m: SimulatedMeter, request: Frame, now = T0): Frame | undefined {
  const wire = decodeFrame(encodeFrame(request));
  if (!wire.ok) throw new Error(wire.error.message);
  const replies = m.handle(wire.value.frame, now);
  expect(replies.length).toBeLessThanOrEqual(1);
  if (replies.length === 0) return undefined;
  const back = decodeFrame(encodeFrame(replies[0]!, { preamble: 4 }));
  if (!back.ok) throw new Error(back.error.message);
  return back.value.frame;
}

function answer(m: SimulatedMeter, request: Frame, now = T0): Frame {
  const reply = ask(m, request, now);
  if (!reply) throw new Error('the meter did not answer');
  return reply;
}

/** The plain value of a read, decoded with the item's format from the codec table. */
function read(m: SimulatedMeter, di: string, now = T0, edition: Edition = '2007'): unknown {
  const reply = answer(m, edition === '2007' ? readData(m.address, di) : readData1997(m.address, di), now);
  const r = parseReadReply(reply, edition);
  if (!r.ok) throw new Error(r.error.message);
  expect(r.value.di).toBe(di);
  const v = decodeValue(findDataItem(di, edition)!.format, r.value.value);
  if (!v.ok) throw new Error(v.error.message);
  return plainValue(v.value);
}

/** Names of the error bits of an abnormal reply (ERR, or SERR for 0x03). */
function refusal(reply: Frame | undefined): string[] {
  if (!reply) throw new Error('the meter did not answer');
  expect(reply.control & 0xc0).toBe(0xc0);
  return abnormalOf(reply).errors;
}

const isNormal = (reply: Frame | undefined) => reply !== undefined && (reply.control & 0xc0) === 0x80;

const control = (m: SimulatedMeter, action: RemoteAction, now = T0, validUntil = now + HOUR, password = pw()) =>
  ask(m, remoteControl(m.address, password, OP, action, at(validUntil)), now);

const statusWord3 = (m: SimulatedMeter, now = T0) => read(m, '04000503', now) as number;

/** A plaintext 0x03 load: operator, amount (LE binary), purchase count (LE binary), MAC1, customer number (BCD), MAC2. */
function load(address: string, di: '070101FF' | '070102FF', amount: number, count: number, customer: string): Frame {
  const p = new Uint8Array(26);
  const view = new DataView(p.buffer);
  p.set(diToBytes(OP), 0);
  view.setUint32(4, amount, true);
  view.setUint32(8, count, true);
  p.set([0x11, 0x22, 0x33, 0x44], 12);
  const c = encodeDigits(customer, 6);
  if (!c.ok) throw new Error(c.error.message);
  p.set(c.value, 16);
  p.set([0x55, 0x66, 0x77, 0x88], 22);
  return securityAuth(address, di, p);
}
const recharge = (m: SimulatedMeter, amountFen: number, count: number, customer = '880000000001', now = T0) =>
  answer(m, load(m.address, '070102FF', amountFen, count, customer), now);

describe('0x11 read: values come back in the format and unit of the codec table', () => {
  const m = meter({
    kind: 'money',
    balance: 50,
    registers: { 'voltage.a': 221.3, 'energy.active.import': 1234.56, 'meter.model': 'DDSY1352', '04000409': 1200 },
  });

  it('answers voltage in V, energy in kWh, balance in yuan, text items and constants', () => {
    expect([read(m, '02010100'), findDataItem('02010100')!.unit]).toEqual([221.3, 'V']);
    expect([read(m, '00010000'), findDataItem('00010000')!.unit]).toEqual([1234.56, 'kWh']);
    expect([read(m, '00900200'), findDataItem('00900200')!.unit]).toEqual([50, 'CNY']);
    expect(read(m, '0400040B')).toBe('DDSY1352');
    expect(read(m, '04000409')).toBe(1200);
  });

  it('reads its clock, address and meter number from its own state', () => {
    expect(read(m, '0400010C')).toBe('2026-01-15T10:00:00');
    expect(read(m, '04000102', T0 + 90_000)).toBe('10:01:30');
    expect(read(m, '04000401')).toBe(A);
    expect(read(m, '04000402')).toBe(A);
  });

  it('answers an item of the codec table that nobody seeded with zero', () => {
    expect(read(m, '02800007')).toBe(0);
  });

  it('answers an unknown identifier with ERR "no requested data"', () => {
    expect(refusal(ask(m, readData(A, '12345678')))).toEqual(['no-requested-data']);
  });

  it('has no kWh balance on a money meter and no phase B voltage on a single-phase meter', () => {
    expect(refusal(ask(m, readData(A, '00900100')))).toEqual(['no-requested-data']);
    expect(refusal(ask(m, readData(A, '02010200')))).toEqual(['no-requested-data']);
  });
});

describe('follow-up frames for an item longer than maxReplyData', () => {
  it('sends 0xB1, then 0xB2 / 0x92 for 0x12 SEQ 1, 2 and the parts join into the whole item', () => {
    const asset = 'ASSET-2026-0001-DORM-7-ROOM-312';
    const m = meter({ maxReplyData: 20, registers: { 'meter.asset': asset } });
    const first = answer(m, readData(A, '04000403'));
    expect(first.control).toBe(0xb1);
    const seq1 = answer(m, readFollowUp(A, '04000403', 1));
    const seq2 = answer(m, readFollowUp(A, '04000403', 2));
    expect([seq1.control, seq2.control]).toEqual([0xb2, 0x92]);
    const parts = [first, seq1, seq2].map((f) => {
      const r = parseReadReply(f);
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    });
    expect(parts.map((p) => p.seq)).toEqual([undefined, 1, 2]);
    for (const f of [first, seq1, seq2]) expect(f.data.length).toBeLessThanOrEqual(20);
    const whole = Uint8Array.from(parts.flatMap((p) => [...p.value]));
    const v = decodeValue(findDataItem('04000403')!.format, whole);
    expect(v.ok && plainValue(v.value)).toBe(asset);
  });

  it('answers a follow-up nobody announced with "no requested data"', () => {
    expect(refusal(ask(meter(), readFollowUp(A, '04000403', 1)))).toEqual(['no-requested-data']);
  });
});

describe('block identifiers', () => {
  const three = {
    phases: 3 as const,
    registers: {
      'voltage.a': 220.1,
      'voltage.b': 221.2,
      'voltage.c': 222.3,
      'energy.active.import.t1': 10,
      'energy.active.import.t2': 20.5,
      'energy.active.import': 30.5,
    },
  };

  it('answer the items concatenated: voltages A-C, energy total and tariffs, status words 1-7', () => {
    const m = meter(three);
    expect(read(m, '0201FF00')).toEqual([220.1, 221.2, 222.3]);
    expect(read(m, '0001FF00')).toEqual([30.5, 10, 20.5, 0, 0]);
    expect((read(m, '040005FF') as number[]).length).toBe(7);
  });

  it('answer "no requested data" when the meter does not do block reads, while single items still work', () => {
    const m = meter({ ...three, blockReads: false });
    expect(refusal(ask(m, readData(A, '0201FF00')))).toEqual(['no-requested-data']);
    expect(read(m, '02010200')).toBe(221.2);
  });
});

describe('0x14 write', () => {
  it('refuses a wrong password with ERR password-error and leaves the register as it was', () => {
    const m = meter({ registers: { '04001001': 20 } });
    const value = encodeNumber({ kind: 'bcd', bytes: 4, decimals: 2 }, 5);
    if (!value.ok) throw new Error();
    expect(refusal(ask(m, writeData(A, '04001001', pw('02123456'), OP, value.value)))).toEqual(['password-error']);
    expect(read(m, '04001001')).toBe(20);
  });

  it('writes a parameter with the right password and records the operator code', () => {
    const m = meter();
    const value = encodeNumber({ kind: 'bcd', bytes: 4, decimals: 2 }, 5);
    if (!value.ok) throw new Error();
    expect(isNormal(ask(m, writeData(A, '04001001', pw(), OP, value.value)))).toBe(true);
    expect(read(m, '04001001')).toBe(5);
    expect(m.snapshot().lastOperatorCode).toBe(OP);
    expect(read(m, '03300000')).toBe(1);
  });

  it('sets the meter clock through 04000102 (the way to fix drift a broadcast may not)', () => {
    const m = meter({ clockOffsetSeconds: -3600 });
    expect(isNormal(ask(m, writeData(A, '04000102', pw(), OP, Uint8Array.of(0x00, 0x00, 0x10))))).toBe(true);
    expect(read(m, '0400010C')).toBe('2026-01-15T10:00:00');
  });

  it('refuses to write a measurement', () => {
    const m = meter();
    expect(refusal(ask(m, writeData(A, '02010100', pw(), OP, Uint8Array.of(0x00, 0x22))))).toEqual(['other-error']);
  });
});

describe('0x1C remote control and status word 3', () => {
  const RELAY_OPEN = 1 << 4;
  const COMMAND_TRIP = 1 << 6;
  const KEEP_POWER = 1 << 12;

  it('trip, then close-allowed, then the button: status word 3 bits and the trip/close counters follow', () => {
    const m = meter({ kind: 'money', balance: 20 });
    expect(isNormal(control(m, 'trip'))).toBe(true);
    expect(statusWord3(m) & (RELAY_OPEN | COMMAND_TRIP)).toBe(RELAY_OPEN | COMMAND_TRIP);
    expect(read(m, '1D000001')).toBe(1);

    expect(isNormal(control(m, 'close-allowed'))).toBe(true);
    expect(statusWord3(m) & (RELAY_OPEN | COMMAND_TRIP)).toBe(RELAY_OPEN);

    expect(m.pressButton(T0)).toBe(true);
    expect(statusWord3(m) & (RELAY_OPEN | COMMAND_TRIP)).toBe(0);
    expect(read(m, '1E000001')).toBe(1);
  });

  it('direct close (1C) closes the relay without the button', () => {
    const m = meter({ balance: 20, relay: 'open' });
    expect(isNormal(control(m, 'close'))).toBe(true);
    expect(statusWord3(m) & RELAY_OPEN).toBe(0);
  });

  it('money meters say so in bits 8-9 (10) and kWh meters (01)', () => {
    expect((statusWord3(meter({ kind: 'money' })) >> 8) & 3).toBe(0b10);
    expect((statusWord3(meter({ kind: 'energy' })) >> 8) & 3).toBe(0b01);
    expect((statusWord3(meter({ kind: 'plain' })) >> 8) & 3).toBe(0b00);
  });

  it('keep-power refuses a trip and shows in bit 12', () => {
    const m = meter({ balance: 20 });
    expect(isNormal(control(m, 'keep-power-on'))).toBe(true);
    expect(statusWord3(m) & KEEP_POWER).toBe(KEEP_POWER);
    expect(refusal(control(m, 'trip'))).toEqual(['other-error']);
    expect(statusWord3(m) & RELAY_OPEN).toBe(0);
  });

  it('refuses a command whose valid-until time has passed on the meter clock', () => {
    const m = meter({ balance: 20 });
    expect(refusal(control(m, 'trip', T0, T0 - 60_000))).toEqual(['other-error']);
    expect(statusWord3(m) & RELAY_OPEN).toBe(0);
  });

  it('judges valid-until by the meter clock, not the host clock', () => {
    const m = meter({ balance: 20, clockOffsetSeconds: 7200 });
    expect(refusal(control(m, 'trip', T0, T0 + HOUR))).toEqual(['other-error']);
  });

  it('refuses a wrong password with password-error', () => {
    expect(refusal(control(meter({ balance: 20 }), 'trip', T0, T0 + HOUR, pw('02999999')))).toEqual(['password-error']);
  });

  it('refuses to close a meter with no balance and no overdraft allowance', () => {
    const m = meter({ kind: 'money', balance: 0, relay: 'open' });
    expect(refusal(control(m, 'close'))).toEqual(['other-error']);
    expect(refusal(control(m, 'close-allowed'))).toEqual(['other-error']);
  });
});

describe('0x03 plaintext recharge (070102FF): purchase-count rules', () => {
  const prepaid = () => meter({ kind: 'money', balance: 10, purchaseCount: 5, customerNumber: '880000000001' });

  it('loads when the count is the meter count + 1 and updates balance and purchase record 1', () => {
    const m = prepaid();
    const reply = recharge(m, 5000, 6);
    expect(reply.control).toBe(0x83);
    expect(read(m, '00900200')).toBe(60);
    expect(read(m, '03330201')).toBe(6);
    expect(read(m, '03330301')).toBe(50);
    expect(read(m, '03330401')).toBe(10);
    expect(read(m, '03330501')).toBe(60);
    expect(read(m, '03330101')).toBe('2026-01-15T10:00');
  });

  it('answers a repeated count with SERR repeat-recharge and adds nothing', () => {
    const m = prepaid();
    recharge(m, 5000, 6);
    expect(refusal(recharge(m, 5000, 6))).toEqual(['repeat-recharge']);
    expect(read(m, '00900200')).toBe(60);
    expect(read(m, '03330201')).toBe(6);
  });

  it('answers any other count with SERR purchase-count-error', () => {
    const m = prepaid();
    expect(refusal(recharge(m, 5000, 8))).toEqual(['purchase-count-error']);
    expect(refusal(recharge(m, 5000, 4))).toEqual(['purchase-count-error']);
    expect(read(m, '00900200')).toBe(10);
  });

  it('answers a foreign customer number with SERR customer-number-mismatch', () => {
    expect(refusal(recharge(prepaid(), 5000, 6, '880000000999'))).toEqual(['customer-number-mismatch']);
  });

  it('repays the overdraft first, then adds the rest to the balance', () => {
    const m = meter({ kind: 'money', balance: 0, overdraft: 3, overdraftLimit: 5, purchaseCount: 1, customerNumber: '880000000001' });
    recharge(m, 1000, 2);
    expect([read(m, '00900201'), read(m, '00900200')]).toEqual([0, 7]);
  });

  it('refuses a load that would leave more than the hoarding limit with SERR over-hoarding-limit', () => {
    const m = meter({ kind: 'money', balance: 90, hoardingLimit: 100, purchaseCount: 1, customerNumber: '880000000001' });
    expect(refusal(recharge(m, 2000, 2))).toEqual(['over-hoarding-limit']);
    expect([read(m, '00900200'), read(m, '03330201')]).toEqual([90, 1]); // balance and purchase count unchanged
  });

  it('keeps a kWh meter balance in kWh: the same amount field counts 0.01 kWh', () => {
    const m = meter({ kind: 'energy', balance: 1.5, purchaseCount: 0, customerNumber: '880000000001' });
    recharge(m, 10_000, 1);
    expect(read(m, '00900100')).toBe(101.5);
  });

  it('refuses a recharge on a meter whose account is not opened, and an opening sets the customer number', () => {
    const m = meter({ kind: 'money', opened: false });
    expect(refusal(recharge(m, 1000, 1))).toEqual(['other-error']);
    expect((statusWord3(m) >> 14) & 1).toBe(1);
    expect(answer(m, load(A, '070101FF', 1000, 1, '123456789012')).control).toBe(0x83);
    expect([read(m, '0400040E'), read(m, '00900200'), (statusWord3(m) >> 14) & 1]).toEqual(['123456789012', 10, 0]);
  });

  it('asks its security module to verify the MACs and answers SERR mac-failed when it refuses', () => {
    const seen: CreditLoad[] = [];
    const esam: SecurityModule = {
      verifyLoad: (l) => {
        seen.push(l);
        return false;
      },
    };
    const m = new SimulatedMeter(
      { address: A, kind: 'money', balance: 10, purchaseCount: 5, customerNumber: '880000000001' },
      { startMs: T0, security: esam },
    );
    expect(refusal(recharge(m, 5000, 6))).toEqual(['mac-failed']);
    expect(read(m, '00900200')).toBe(10);
    expect(seen.map((l) => [l.kind, l.amount, l.purchaseCount, l.customerNumber, l.operator, [...l.mac1], [...l.mac2]])).toEqual([
      ['recharge', 5000, 6, '880000000001', OP, [0x11, 0x22, 0x33, 0x44], [0x55, 0x66, 0x77, 0x88]],
    ]);
  });

  it('answers SERR other-error on a plain meter, which has no wallet', () => {
    expect(refusal(recharge(meter({ kind: 'plain' }), 1000, 1))).toEqual(['other-error']);
  });
});

describe('consumption with injected time', () => {
  it('advances energy and runs a money balance down at the configured price', () => {
    const m = meter({ kind: 'money', powerKw: 1, price: 0.5, balance: 10, registers: { 'voltage.a': 200, 'energy.active.import': 100 } });
    expect(read(m, '02020100')).toBe(5);
    expect(read(m, '02030000')).toBe(1);
    expect([read(m, '00010000', T0 + 2 * HOUR), read(m, '00900200', T0 + 2 * HOUR)]).toEqual([102, 9]);
  });

  it('trips the relay by itself when the balance reaches zero, and stops counting energy', () => {
    const m = meter({ kind: 'money', powerKw: 1, price: 0.5, balance: 1, customerNumber: '880000000001' });
    const later = T0 + 5 * HOUR;
    expect([read(m, '00010000', later), read(m, '00900200', later)]).toEqual([2, 0]);
    expect(statusWord3(m, later) & (1 << 4)).toBe(1 << 4);
    expect(m.snapshot().relay.tripCause).toBe('credit');
  });

  it('after a remote recharge a relay opened for credit stays open until the button is pressed', () => {
    const m = meter({ kind: 'money', powerKw: 1, price: 0.5, balance: 1, purchaseCount: 1, customerNumber: '880000000001' });
    const later = T0 + 5 * HOUR;
    recharge(m, 1000, 2, '880000000001', later);
    expect(statusWord3(m, later) & ((1 << 4) | (1 << 6))).toBe(1 << 4);
    expect(m.pressButton(later)).toBe(true);
    expect(statusWord3(m, later) & (1 << 4)).toBe(0);
  });

  it('counts reverse power as export energy and sets status word 1 bit 4', () => {
    const m = meter({ kind: 'plain', powerKw: -2 });
    expect(((read(m, '04000501') as number) >> 4) & 1).toBe(1);
    expect(read(m, '00020000', T0 + HOUR)).toBe(2);
  });

  it('freezes the forward energy at local midnight into 05060001 / 05060101', () => {
    const m = meter({ kind: 'plain', powerKw: 1 });
    const nextMorning = new Date(2026, 0, 16, 6, 0, 0).getTime();
    expect(read(m, '05060001', nextMorning)).toBe('2026-01-16T00:00');
    expect(read(m, '05060101', nextMorning)).toEqual([14, 14, 0, 0, 0]);
  });
});

describe('0x08 broadcast time (docs/reference/dlt645.md § Broadcast time 0x08)', () => {
  const sync = (m: SimulatedMeter, to: number, now = T0) => expect(m.handle(broadcastTime(at(to)), now)).toEqual([]);

  it('corrects a skew within 5 minutes, without replying', () => {
    const m = meter({ clockOffsetSeconds: -120 });
    sync(m, T0);
    expect(read(m, '0400010C')).toBe('2026-01-15T10:00:00');
  });

  it('ignores a correction of more than 5 minutes', () => {
    const m = meter({ clockOffsetSeconds: -600 });
    sync(m, T0);
    expect(read(m, '0400010C')).toBe('2026-01-15T09:50:00');
  });

  it('takes a larger correction when the spec raises the limit (demos fixing drift)', () => {
    const m = meter({ clockOffsetSeconds: -600, maxBroadcastSkewSeconds: 3600 });
    sync(m, T0);
    expect(read(m, '0400010C')).toBe('2026-01-15T10:00:00');
  });

  it('accepts one broadcast a day', () => {
    const m = meter({ clockOffsetSeconds: -120 });
    sync(m, T0);
    sync(m, T0 + 120_000, T0 + 60_000);
    expect(read(m, '0400010C', T0 + 60_000)).toBe('2026-01-15T10:01:00');
  });

  it('ignores a broadcast near midnight (23:55-00:05)', () => {
    const late = new Date(2026, 0, 15, 23, 57, 0).getTime();
    const m = meter({ clockOffsetSeconds: -60 });
    sync(m, late, late);
    expect(read(m, '04000102', late)).toBe('23:56:00');
  });
});

describe('addressing', () => {
  it('never answers the broadcast address or another meter address', () => {
    const m = meter();
    expect(m.handle(readData('999999999999', '00010000'), T0)).toEqual([]);
    expect(m.handle(readData('000000000002', '00010000'), T0)).toEqual([]);
  });

  it('answers the wildcard and an abbreviated address with its real address', () => {
    const m = meter();
    expect(answer(m, readData('AAAAAAAAAAAA', '00010000')).address).toBe(A);
    expect(answer(m, readData('AAAAAAAAAA01', '00010000')).address).toBe(A);
    expect(ask(m, readData('AAAAAAAAAA02', '00010000'))).toBeUndefined();
  });

  it('ignores a reply frame (an adapter echo of another meter answer)', () => {
    expect(meter().handle({ address: A, control: 0x91, data: diToBytes('00010000') }, T0)).toEqual([]);
  });

  it('refuses writes and control commands sent to the wildcard, silently', () => {
    const m = meter({ balance: 10 });
    expect(ask(m, remoteControl('AAAAAAAAAAAA', pw(), OP, 'trip', at(T0 + HOUR)))).toBeUndefined();
  });

  it('0x13 reads the address over the wildcard', () => {
    const reply = answer(meter(), readAddress());
    expect([reply.control, [...reply.data]]).toEqual([0x93, [...addressToBytes(A)]]);
  });

  it('0x15 sets a new address over the wildcard, and silently refuses 999999999999', () => {
    const m = meter();
    expect(ask(m, writeAddress('999999999999'))).toBeUndefined();
    expect(answer(m, writeAddress('000000000077')).address).toBe('000000000077');
    expect(m.address).toBe('000000000077');
    expect(read(m, '04000401')).toBe('000000000077');
  });
});

describe('freeze, baud, password, clears and multi-function output', () => {
  it('0x16 freeze-now snapshots energy into the daily freeze list', () => {
    const m = meter({ registers: { 'energy.active.import': 321.5, 'energy.active.import.t1': 321.5 } });
    expect(isNormal(ask(m, freeze(A, 'now')))).toBe(true);
    expect(read(m, '05060001')).toBe('2026-01-15T10:00');
    expect(read(m, '05060101')).toEqual([321.5, 321.5, 0, 0, 0]);
  });

  it('0x17 echoes Z and records the requested baud; an invalid Z is "baud rate cannot be changed"', () => {
    const m = meter();
    expect([...answer(m, changeBaud(A, 9600)).data]).toEqual([0x20]);
    expect(m.snapshot().requestedBaud).toBe(9600);
    expect(refusal(ask(m, { address: A, control: 0x17, data: Uint8Array.of(0x03) }))).toEqual(['baud-rate-unchangeable']);
  });

  it('0x18 changes the level-02 password: the new one works, the old one no longer does', () => {
    const m = meter({ balance: 10 });
    expect(isNormal(ask(m, changePassword(A, pw('02000000'), pw('02123456'))))).toBe(true);
    expect(refusal(control(m, 'trip'))).toEqual(['password-error']);
    expect(isNormal(control(m, 'trip', T0, T0 + HOUR, pw('02123456')))).toBe(true);
  });

  it('0x19 demand clear empties the max-demand records', () => {
    // Wire order, low byte first: 3.2500 kW (00 25 03), then 2026-01-15 09:30 (30 09 15 01 26).
    const m = meter({ registers: { '01010000': '002503 3009150126' } });
    expect(read(m, '01010000')).toEqual({ value: 3.25, at: '2026-01-15T09:30' });
    expect(isNormal(ask(m, demandClear(A, pw(), OP)))).toBe(true);
    expect(read(m, '01010000')).toEqual({ value: 0, at: null });
  });

  it('0x1A meter clear is refused by prepaid meters and zeroes a plain meter', () => {
    expect(refusal(ask(meter({ kind: 'money' }), meterClear(A, pw(), OP)))).toEqual(['other-error']);
    const plain = meter({ kind: 'plain', registers: { 'energy.active.import': 50 } });
    expect(isNormal(ask(plain, meterClear(A, pw(), OP)))).toBe(true);
    expect(read(plain, '00010000')).toBe(0);
  });

  it('0x1B event clear zeroes the event counts and counts itself', () => {
    const m = meter({ registers: { 'events.cover-open.count': 27 } });
    m.recordPowerDown(T0);
    expect([read(m, '03300D00'), read(m, '03110000')]).toEqual([27, 1]);
    expect(isNormal(ask(m, eventClear(A, pw(), OP)))).toBe(true);
    expect([read(m, '03300D00'), read(m, '03110000'), read(m, '03300300')]).toEqual([0, 0, 1]);
  });

  it('0x1D echoes the output mode; broadcast is obeyed without a reply', () => {
    const m = meter();
    expect([...answer(m, multiFunctionOutput(A, 2)).data]).toEqual([2]);
    expect(m.handle(multiFunctionOutput('999999999999', 1), T0)).toEqual([]);
    expect(m.snapshot().multiFunctionOutput).toBe(1);
  });
});

describe('a 1997 meter', () => {
  it('answers 0x01 reads with 2-byte identifiers and ignores 2007 reads', () => {
    const m = meter({ edition: '1997', registers: { '9010': 812.34, 'voltage.a': 221 } });
    expect(read(m, '9010', T0, '1997')).toBe(812.34);
    expect(read(m, 'B611', T0, '1997')).toBe(221);
    expect(ask(m, readData(A, '00010000'))).toBeUndefined();
  });
});

describe('random requests', () => {
  it('never make the meter throw, and every reply fits in a frame', () => {
    const m = meter({ kind: 'money', balance: 10, maxReplyData: 16 });
    const address = fc.constantFrom(A, 'AAAAAAAAAAAA', 'AAAAAAAAAA01', '999999999999');
    const request = fc.record({ address, control: fc.integer({ min: 0, max: 0x7f }), data: fc.uint8Array({ maxLength: 40 }) });
    fc.assert(
      fc.property(request, fc.integer({ min: 0, max: 3 * 86_400_000 }), (req, dt) => {
        const replies = m.handle(req, T0 + dt);
        expect(replies.length).toBeLessThanOrEqual(1);
        for (const r of replies) expect(decodeFrame(encodeFrame(r)).ok).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('0x03 ESAM mode (stand-in MACs): identity authentication, session, MAC check, lock-out', () => {
  const KEY = ESAM_TEST_KEY;
  const esamMeter = () => meter({ kind: 'money', balance: 10, purchaseCount: 5, customerNumber: '880000000001', esam: { key: KEY } });
  const hexBytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

  /** 070000FF with the identity data of a machine holding `key`; returns random2 (hex) on success, the SERR names else. */
  async function authenticate(m: SimulatedMeter, key = KEY, now = T0): Promise<{ random2: string; serial: string } | string[]> {
    const id = await new LocalTestEncryptionMachine(key).identity({ address: m.address, meterNumber: m.address });
    const p = new Uint8Array(28);
    p.set(diToBytes(OP), 0);
    p.set(hexBytes(id.ciphertext), 4);
    p.set(hexBytes(id.random), 12);
    p.set(hexBytes(id.diversifier), 20);
    const reply = answer(m, securityAuth(m.address, '070000FF', p), now);
    if (!isNormal(reply)) return refusal(reply);
    expect(reply.data.length).toBe(16);
    return {
      random2: Buffer.from(reply.data.subarray(4, 8)).toString('hex'),
      serial: Buffer.from(reply.data.subarray(8, 16)).toString('hex'),
    };
  }

  async function esamRecharge(m: SimulatedMeter, random2: string, amount: number, count: number, key = KEY, now = T0): Promise<Frame> {
    const macs = await new LocalTestEncryptionMachine(key).rechargeMacs({
      address: m.address,
      random2,
      esamSerial: '',
      amount,
      count,
      customerNo: '880000000001',
    });
    const frame = load(m.address, '070102FF', amount, count, '880000000001');
    frame.data.set(hexBytes(macs.mac1), 16);
    frame.data.set(hexBytes(macs.mac2), 26);
    return answer(m, frame, now);
  }

  it('a recharge without identity authentication is refused: authentication failed', () => {
    const m = esamMeter();
    expect(refusal(recharge(m, 100, 6))).toEqual(['authentication-failed']);
    expect(m.snapshot()).toMatchObject({ purchaseCount: 5, esam: { authentications: 0, sessionOpen: false } });
  });

  it('a wrong ciphertext is refused: authentication failed, no session', async () => {
    const m = esamMeter();
    expect(await authenticate(m, 'FFEEDDCCBBAA99887766554433221100')).toEqual(['authentication-failed']);
    expect(m.snapshot().esam).toMatchObject({ authentications: 1, authenticationFailures: 1, sessionOpen: false });
  });

  it('authenticated: random2 is fresh each time, the right MACs load, placeholder MACs are refused: MAC failed', async () => {
    const m = esamMeter();
    const a = await authenticate(m);
    const b = await authenticate(m);
    if (Array.isArray(a) || Array.isArray(b)) throw new Error('authentication refused');
    expect(a.serial).toBe(b.serial);
    // random2 of the first session no longer counts: the MACs must be over the current one.
    expect(refusal(await esamRecharge(m, a.random2 === b.random2 ? 'ffffffff' : a.random2, 100, 6))).toEqual(['mac-failed']);
    expect(refusal(recharge(m, 100, 6))).toEqual(['mac-failed']);
    expect((await esamRecharge(m, b.random2, 100, 6)).control).toBe(0x83);
    expect(m.snapshot()).toMatchObject({ purchaseCount: 6, balance: 1100 });
  });

  it('the session ends after 5 minutes, and after the third MAC failure in it', async () => {
    const m = esamMeter();
    const s = await authenticate(m);
    if (Array.isArray(s)) throw new Error('authentication refused');
    expect(refusal(await esamRecharge(m, s.random2, 100, 6, KEY, T0 + 5 * 60_000))).toEqual(['authentication-failed']);
    const t = await authenticate(m, KEY, T0 + 6 * 60_000);
    if (Array.isArray(t)) throw new Error('authentication refused');
    for (let i = 0; i < 3; i++) expect(refusal(recharge(m, 100, 6, '880000000001', T0 + 6 * 60_000))).toEqual(['mac-failed']);
    expect(refusal(await esamRecharge(m, t.random2, 100, 6, KEY, T0 + 6 * 60_000))).toEqual(['authentication-failed']);
    expect(m.snapshot()).toMatchObject({ purchaseCount: 5, balance: 1000, esam: { macFailures: 3, sessionOpen: false } });
  });

  it('account opening 070101FF: only on a meter not yet in service; it sets the customer number and loads the opening purchase', async () => {
    const m = meter({ kind: 'money', balance: 0, purchaseCount: 0, opened: false, esam: { key: KEY } });
    const open = async (di: '070101FF' | '070102FF', amount: number, count: number, customer: string) => {
      const s = await authenticate(m);
      if (Array.isArray(s)) throw new Error('authentication refused');
      const macs = await new LocalTestEncryptionMachine(KEY).rechargeMacs({
        address: m.address,
        random2: s.random2,
        esamSerial: '',
        amount,
        count,
        customerNo: customer,
        opening: true,
      });
      const frame = load(m.address, di, amount, count, customer);
      frame.data.set(hexBytes(macs.mac1), 16);
      frame.data.set(hexBytes(macs.mac2), 26);
      return answer(m, frame);
    };
    // Not in service yet: a recharge is refused; the opening is taken.
    expect(refusal(await open('070102FF', 500, 1, '880000000002'))).toEqual(['other-error']);
    expect((await open('070101FF', 500, 1, '880000000002')).control).toBe(0x83);
    expect(m.snapshot()).toMatchObject({ opened: true, customerNumber: '880000000002', purchaseCount: 1, balance: 500 });
    // Opened once: a second opening is refused, and recharges now check the customer number it set.
    expect(refusal(await open('070101FF', 500, 2, '880000000002'))).toEqual(['other-error']);
    expect(refusal(await open('070102FF', 100, 2, '880000000009'))).toEqual(['customer-number-mismatch']);
    expect((await open('070102FF', 100, 2, '880000000002')).control).toBe(0x83);
    expect(m.snapshot()).toMatchObject({ purchaseCount: 2, balance: 600 });
  });

  it('a plaintext meter has no identity authentication: other error', async () => {
    const m = meter({ kind: 'money', balance: 10, purchaseCount: 5 });
    const p = new Uint8Array(28);
    p.set(diToBytes(OP), 0);
    expect(refusal(answer(m, securityAuth(m.address, '070000FF', p)))).toEqual(['other-error']);
  });
});
