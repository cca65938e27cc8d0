import {
  addressFromBytes,
  BAUD_CODES,
  BROADCAST_ADDRESS,
  decodeValue,
  diFromBytes,
  findDataItem,
  formatSize,
  type Frame,
} from '../../../../protocols/dlt645/index.js';
import { hex2 } from '../bytes.js';
import { ERR, errReply, okReply, passwordOk, supports, type MeterState } from '../meter-state.js';
import { vendorLoad } from './recharge.js';

/**
 * 0x14 write data (2007, with operator code) or 0x04 (1997): parameters and bound settings take writes, measured
 * values and events do not (docs/reference/dlt645.md § Write data 0x14 and password levels). A write to the
 * profile's vendor credit identifier is a load, not a register write.
 */
export function writeData(m: MeterState, req: Frame, withOperator: boolean): Frame {
  const diSize = m.edition === '2007' ? 4 : 2;
  const head = diSize + 4 + (withOperator ? 4 : 0);
  if (req.data.length < head) return errReply(m, req, ERR.other);
  const di = diFromBytes(req.data.subarray(0, diSize));
  if (!passwordOk(m, req.data.subarray(diSize, diSize + 4))) return errReply(m, req, ERR.password);
  if (withOperator) m.lastOperatorCode = diFromBytes(req.data.subarray(diSize + 4, diSize + 8));
  if (m.vendorCredit && di === m.vendorCredit.di) return vendorLoad(m, req, req.data.slice(head));
  const outcome = writeRegister(m, di, req.data.slice(head));
  if (outcome !== 'ok') return errReply(m, req, outcome === 'no-data' ? ERR.noData : ERR.other);
  m.counters.programming++;
  return okReply(m, req);
}

function writeRegister(m: MeterState, di: string, payload: Uint8Array): 'ok' | 'no-data' | 'refused' {
  if (!supports(m, di)) return 'no-data';
  const item = findDataItem(di, m.edition);
  const live = m.live.get(di);
  if (live) {
    if (!live.master || !live.write) return 'refused';
    const size = item ? formatSize(item.format) : undefined;
    if (size !== undefined && payload.length !== size) return 'refused';
    return live.write(payload) ? 'ok' : 'refused';
  }
  const stored = m.registers.get(di);
  if (!item && !stored) return 'no-data';
  // Measurements, events and freezes are the meter's own; only parameters (and seeded extras) take writes.
  if (!isParameter(m, di) && !(stored && !item)) return 'refused';
  const size = item ? formatSize(item.format) : stored!.length;
  if (size !== undefined && payload.length !== size) return 'refused';
  if (item && !decodeValue(item.format, payload).ok) return 'refused';
  m.registers.set(di, payload);
  return 'ok';
}

function isParameter(m: MeterState, di: string): boolean {
  return m.edition === '2007' ? di.startsWith('04') : di.startsWith('C');
}

/** 0x15 write address, to the wildcard address only; a meter refuses broadcast or wildcard as its own, silently. */
export function writeAddress(m: MeterState, req: Frame): Frame | undefined {
  if (req.data.length !== 6) return undefined;
  const next = addressFromBytes(req.data);
  // Meters refuse the broadcast and wildcard addresses as their own, and say nothing (docs/reference/dlt645.md § Addresses).
  if (!/^\d{12}$/.test(next) || next === BROADCAST_ADDRESS) return undefined;
  m.address = next;
  return okReply(m, req);
}

/** 0x17 change baud rate: remembered (the line itself does not change speed). */
export function changeBaud(m: MeterState, req: Frame): Frame {
  const z = req.data[0];
  const baud = Object.entries(BAUD_CODES).find(([, code]) => code === z)?.[0];
  if (req.data.length !== 1 || z === undefined || baud === undefined) return errReply(m, req, ERR.baud);
  m.requestedBaud = Number(baud);
  return okReply(m, req, Uint8Array.of(z));
}

/** 0x18: DI 04000C0n names the level being set (n = level + 1); the old password must be as strong or stronger. */
export function changePassword(m: MeterState, req: Frame): Frame {
  if (req.data.length !== 12) return errReply(m, req, ERR.other);
  const di = diFromBytes(req.data.subarray(0, 4));
  const old = req.data.subarray(4, 8);
  const next = req.data.subarray(8, 12);
  const level = next[0]!;
  if (di !== `04000C${hex2(level + 1)}` || !passwordOk(m, old) || old[0]! > level) return errReply(m, req, ERR.password);
  m.passwords.set(level, diFromBytes(next.subarray(1, 4)));
  return okReply(m, req, next.slice());
}

/** 0x1D multi-function output: which signal the meter's pulse terminal carries (0 clock, 1 demand period, 2 tariff switch). */
export function multiFunctionOutput(m: MeterState, req: Frame): Frame {
  const mode = req.data[0];
  if (req.data.length !== 1 || mode === undefined || mode > 2) return errReply(m, req, ERR.other);
  m.multiFunctionMode = mode;
  return okReply(m, req, Uint8Array.of(mode));
}
