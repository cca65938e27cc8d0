import { addressToBytes, BROADCAST_ADDRESS, WILDCARD_ADDRESS, type Address } from './address.js';
import { numberToBcdByte } from './bcd.js';
import { DIR_REPLY, ERR_FLAG, F1997, F2007, FUNCTION_MASK, MORE_FLAG, type Edition } from './control.js';
import { errorMessage, errorNames, errorTable } from './errors.js';
import { encodeTime, type MeterTime } from './formats.js';
import type { Frame } from './frame.js';
import { diFromBytes, diToBytes } from './identifiers.js';
import { fail, ok, type Result } from './result.js';

/** Password as technicians write it: level PA then the 6-digit password, "02000000" = level 02, password 000000. */
export interface Password {
  readonly level: number;
  /** Six hex digits as written (most significant first). */
  readonly code: string;
}

/** Parse an 8-hex-digit password (DL/T 645-2007 §7.3.4: PA P0 P1 P2). */
export function parsePassword(text: string): Result<Password> {
  const t = text.trim();
  if (!/^[0-9A-Fa-f]{8}$/.test(t))
    return fail('DLT645_BAD_PASSWORD', `password "${text}" must be 8 hex digits: level then password, e.g. 02000000`);
  return ok({ level: parseInt(t.slice(0, 2), 16), code: t.slice(2).toUpperCase() });
}

/** Parse an 8-hex-digit operator code (C0..C3, recorded by the meter in its event logs). */
export function parseOperatorCode(text: string): Result<string> {
  const t = text.trim();
  if (!/^[0-9A-Fa-f]{8}$/.test(t)) return fail('DLT645_BAD_OPERATOR', `operator code "${text}" must be 8 hex digits, e.g. 00000001`);
  return ok(t.toUpperCase());
}

function passwordBytes(p: Password): Uint8Array {
  const code = diToBytes(p.code);
  return Uint8Array.of(p.level & 0xff, code[0]!, code[1]!, code[2]!);
}

const concat = (...parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

// ---- Requests, DL/T 645-2007 ------------------------------------------------------------------------------------

/** 0x11 read data: DI, optionally a record count N, optionally a start time mm hh DD MM YY (DL/T 645-2007 §7.3.1). */
export function readData(address: Address, di: string, options: { count?: number; from?: MeterTime } = {}): Frame {
  const parts: ArrayLike<number>[] = [diToBytes(di)];
  if (options.count !== undefined || options.from !== undefined) parts.push([numberToBcdByte(options.count ?? 1)]);
  if (options.from !== undefined) parts.push(encodeTime('YYMMDDhhmm', options.from));
  return { address, control: F2007.readData, data: concat(...parts) };
}

/** 0x12 read follow-up frame SEQ (first follow-up = 1) of a multi-frame reply (DL/T 645-2007 §7.3.2). */
export function readFollowUp(address: Address, di: string, seq: number): Frame {
  return { address, control: F2007.readFollowUp, data: concat(diToBytes(di), [seq & 0xff]) };
}

/** 0x13 read communication address, to the wildcard address: only with one meter on the line (§7.3.3). */
export function readAddress(): Frame {
  return { address: WILDCARD_ADDRESS, control: F2007.readAddress, data: new Uint8Array(0) };
}

/** 0x14 write data: DI, password, operator code, data (DL/T 645-2007 §7.3.4). */
export function writeData(address: Address, di: string, password: Password, operator: string, payload: Uint8Array): Frame {
  return { address, control: F2007.writeData, data: concat(diToBytes(di), passwordBytes(password), diToBytes(operator), payload) };
}

/** 0x15 write communication address, to the wildcard address (§7.3.5). */
export function writeAddress(newAddress: Address): Frame {
  return { address: WILDCARD_ADDRESS, control: F2007.writeAddress, data: addressToBytes(newAddress) };
}

/** 0x08 broadcast time ss mm hh DD MM YY to 999999999999; meters do not reply (DL/T 645-2007 §7.3.6). */
export function broadcastTime(t: MeterTime): Frame {
  return { address: BROADCAST_ADDRESS, control: F2007.broadcastTime, data: encodeTime('YYMMDDhhmmss', t) };
}

/** When a freeze happens: now, or a schedule where an omitted field means "every" (99) (DL/T 645-2007 §7.3.7). */
export type FreezeSpec = 'now' | { readonly month?: number; readonly day?: number; readonly hour?: number; readonly minute?: number };

/** 0x16 freeze: mm hh DD MM, 99 in a field = every; 99999999 = freeze now. */
export function freeze(address: Address, spec: FreezeSpec): Frame {
  const f = (v: number | undefined): number => (v === undefined ? 0x99 : numberToBcdByte(v));
  const s = spec === 'now' ? {} : spec;
  return { address, control: F2007.freeze, data: Uint8Array.of(f(s.minute), f(s.hour), f(s.day), f(s.month)) };
}

/** Baud-rate characteristic word Z: one bit per rate (DL/T 645-2007 Appendix A, 04000703). */
export const BAUD_CODES: Readonly<Record<number, number>> = { 600: 0x02, 1200: 0x04, 2400: 0x08, 4800: 0x10, 9600: 0x20, 19200: 0x40 };

/** 0x17 change communication rate (DL/T 645-2007 §7.3.8); the meter switches after replying. */
export function changeBaud(address: Address, baud: number): Frame {
  const z = BAUD_CODES[baud];
  if (z === undefined) throw new RangeError(`baud ${baud} is not one of ${Object.keys(BAUD_CODES).join(', ')}`);
  return { address, control: F2007.changeBaud, data: Uint8Array.of(z) };
}

/** 0x18 change password: DI 04000C0n (n = new level + 1), old PA P0 P1 P2, new PA P0 P1 P2 (§7.3.9). */
export function changePassword(address: Address, oldPassword: Password, newPassword: Password): Frame {
  const di = `04000C${(newPassword.level + 1).toString(16).padStart(2, '0').toUpperCase()}`;
  return { address, control: F2007.changePassword, data: concat(diToBytes(di), passwordBytes(oldPassword), passwordBytes(newPassword)) };
}

/** 0x19 maximum-demand clear (§7.3.10). */
export function demandClear(address: Address, password: Password, operator: string): Frame {
  return { address, control: F2007.demandClear, data: concat(passwordBytes(password), diToBytes(operator)) };
}

/** 0x1A meter clear (§7.3.11). Local-prepaid meters refuse it remotely. */
export function meterClear(address: Address, password: Password, operator: string): Frame {
  return { address, control: F2007.meterClear, data: concat(passwordBytes(password), diToBytes(operator)) };
}

/** 0x1B event clear; DI FFFFFFFF clears every event record (§7.3.12). */
export function eventClear(address: Address, password: Password, operator: string, di = 'FFFFFFFF'): Frame {
  return { address, control: F2007.eventClear, data: concat(passwordBytes(password), diToBytes(operator), diToBytes(di)) };
}

/** N1 codes of the 0x1C remote control command (docs/reference/dlt645.md § Remote control 0x1C; 1C = direct close is a State Grid extension). */
export const REMOTE_ACTIONS = {
  trip: 0x1a,
  'close-allowed': 0x1b,
  close: 0x1c,
  'alarm-on': 0x2a,
  'alarm-off': 0x2b,
  'keep-power-on': 0x3a,
  'keep-power-off': 0x3b,
} as const;
export type RemoteAction = keyof typeof REMOTE_ACTIONS;

/** 0x1C trip / close / alarm / keep-power: password, operator, N1, N2 = 00, valid-until ss mm hh DD MM YY. */
export function remoteControl(address: Address, password: Password, operator: string, action: RemoteAction, validUntil: MeterTime): Frame {
  const data = concat(passwordBytes(password), diToBytes(operator), [REMOTE_ACTIONS[action], 0x00], encodeTime('YYMMDDhhmmss', validUntil));
  return { address, control: F2007.remoteControl, data };
}

/** 0x1D multi-function terminal output: 0 clock second pulse, 1 demand period, 2 time-period switch (§7.3.14). */
export function multiFunctionOutput(address: Address, mode: 0 | 1 | 2): Frame {
  return { address, control: F2007.multiFunctionOutput, data: Uint8Array.of(mode) };
}

/**
 * 0x03 security authentication (State Grid ESAM extension): DI then opaque bytes from the caller (operator code,
 * ciphertext, MACs). The gateway frames them; the station's encryption machine produces them.
 */
export function securityAuth(address: Address, di: string, payload: Uint8Array): Frame {
  return { address, control: F2007.securityAuth, data: concat(diToBytes(di), payload) };
}

// ---- Requests, DL/T 645-1997 ------------------------------------------------------------------------------------

/** 1997 0x01 read data with a 2-byte DI (DL/T 645-1997 §6.2). */
export function readData1997(address: Address, di: string): Frame {
  return { address, control: F1997.readData, data: diToBytes(di) };
}

/** 1997 0x02 read follow-up data. */
export function readFollowUp1997(address: Address, di: string): Frame {
  return { address, control: F1997.readFollowUp, data: diToBytes(di) };
}

/** 1997 0x04 write data: DI, PA P0 P1 P2, data; 1997 has no operator code. */
export function writeData1997(address: Address, di: string, password: Password, payload: Uint8Array): Frame {
  return { address, control: F1997.writeData, data: concat(diToBytes(di), passwordBytes(password), payload) };
}

/** 1997 0x0A write address. */
export function writeAddress1997(newAddress: Address): Frame {
  return { address: WILDCARD_ADDRESS, control: F1997.writeAddress, data: addressToBytes(newAddress) };
}

// ---- Replies ----------------------------------------------------------------------------------------------------

/** A meter's refusal: the error word and its named bits. */
export interface AbnormalReply {
  readonly code: 'DLT645_ABNORMAL';
  readonly message: string;
  readonly word: number;
  readonly errors: string[];
}

export type ReplyError = AbnormalReply | { readonly code: 'DLT645_UNEXPECTED_REPLY' | 'DLT645_SHORT_DATA'; readonly message: string };

/** Decode the error word of an abnormal reply: 1 byte ERR, or 2 bytes SERR for 0x03 (1 byte on some meters). */
export function abnormalOf(frame: Frame, edition: Edition = '2007'): AbnormalReply {
  const security = edition === '2007' && (frame.control & FUNCTION_MASK) === F2007.securityAuth;
  const word = frame.data.length >= 2 && security ? frame.data[0]! | (frame.data[1]! << 8) : (frame.data[0] ?? 0);
  const table = errorTable(edition, security);
  const errors = errorNames(word, table);
  return {
    code: 'DLT645_ABNORMAL',
    word,
    errors,
    message: `meter ${frame.address} answered abnormally: ${errorMessage(word, table)} [${errors.join(', ')}]`,
  };
}

/** Check that a frame is the normal reply to function `fn`, returning its data and follow-up flag (§7.2). */
export function checkReply(frame: Frame, fn: number, edition: Edition = '2007'): Result<{ data: Uint8Array; more: boolean }, ReplyError> {
  if (!(frame.control & DIR_REPLY) || (frame.control & FUNCTION_MASK) !== fn) {
    return {
      ok: false,
      error: { code: 'DLT645_UNEXPECTED_REPLY', message: `expected a reply to function 0x${hex(fn)}, got control 0x${hex(frame.control)}` },
    };
  }
  if (frame.control & ERR_FLAG) return { ok: false, error: abnormalOf(frame, edition) };
  return ok({ data: frame.data, more: (frame.control & MORE_FLAG) !== 0 });
}

/** The parts of a read reply: echoed DI, value bytes, follow-up flag, and SEQ for 0x12 replies (§7.3.1–7.3.2). */
export interface ReadReply {
  readonly di: string;
  readonly value: Uint8Array;
  readonly more: boolean;
  readonly seq?: number;
}

/** Parse a normal or abnormal reply to a read (0x11/0x12 in 2007, 0x01/0x02 in 1997). */
export function parseReadReply(frame: Frame, edition: Edition = '2007'): Result<ReadReply, ReplyError> {
  const fn = frame.control & FUNCTION_MASK;
  const followUp = edition === '2007' ? fn === F2007.readFollowUp : fn === F1997.readFollowUp;
  const expected = edition === '2007' ? (followUp ? F2007.readFollowUp : F2007.readData) : followUp ? F1997.readFollowUp : F1997.readData;
  const r = checkReply(frame, expected, edition);
  if (!r.ok) return r;
  const diSize = edition === '2007' ? 4 : 2;
  const data = r.value.data;
  const seqBytes = followUp && edition === '2007' ? 1 : 0;
  if (data.length < diSize + seqBytes) {
    return {
      ok: false,
      error: { code: 'DLT645_SHORT_DATA', message: `read reply has ${data.length} data bytes, too few for a ${diSize}-byte identifier` },
    };
  }
  const di = diFromBytes(data.subarray(0, diSize));
  const value = data.subarray(diSize, data.length - seqBytes);
  return ok(seqBytes ? { di, value, more: r.value.more, seq: data[data.length - 1]! } : { di, value, more: r.value.more });
}

/** Does `reply` answer `request`? Direction, function, address (wildcard bytes match anything), and the DI echo of a normal read. */
export function isReplyTo(request: Frame, reply: Frame, edition: Edition = '2007'): boolean {
  if (!(reply.control & DIR_REPLY)) return false; // an echo of our own request (RS-485 adapters echo)
  const fn = request.control & FUNCTION_MASK;
  if ((reply.control & FUNCTION_MASK) !== fn) return false;
  for (let i = 0; i < 12; i += 2) {
    const want = request.address.slice(i, i + 2);
    if (want !== 'AA' && want !== reply.address.slice(i, i + 2)) return false;
  }
  if (reply.control & ERR_FLAG) return true;
  const echoesDi =
    edition === '2007'
      ? fn === F2007.readData || fn === F2007.readFollowUp || fn === F2007.securityAuth
      : fn === F1997.readData || fn === F1997.readFollowUp;
  if (echoesDi) {
    const n = edition === '2007' ? 4 : 2;
    if (reply.data.length < n) return false;
    for (let i = 0; i < n; i++) if (reply.data[i] !== request.data[i]) return false;
  }
  return true;
}

// ---- Meter side (simulators and tests) --------------------------------------------------------------------------

/** A meter's normal reply to `request` with the given data (control = request | 80H, | A0H with follow-up). */
export function normalReply(request: Frame, address: Address, data: Uint8Array, more = false): Frame {
  return { address, control: (request.control & FUNCTION_MASK) | DIR_REPLY | (more ? MORE_FLAG : 0), data };
}

/** A meter's abnormal reply: control = request | C0H, ERR (1 byte) or SERR (2 bytes, low first) for 0x03. */
export function abnormalReply(request: Frame, address: Address, word: number, edition: Edition = '2007'): Frame {
  const fn = request.control & FUNCTION_MASK;
  const data =
    edition === '2007' && fn === F2007.securityAuth ? Uint8Array.of(word & 0xff, (word >> 8) & 0xff) : Uint8Array.of(word & 0xff);
  return { address, control: fn | DIR_REPLY | ERR_FLAG, data };
}

/** A read reply's data field: DI echo + value (+ SEQ for 0x12). */
export function readReplyData(di: string, value: Uint8Array, seq?: number): Uint8Array {
  return seq === undefined ? concat(diToBytes(di), value) : concat(diToBytes(di), value, [seq]);
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0').toUpperCase();
}
