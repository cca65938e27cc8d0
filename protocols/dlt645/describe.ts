import { addressFromBytes } from './address.js';
import { describeControl, F1997, F2007, guessEdition, type Edition } from './control.js';
import { decodeValue, plainValue } from './formats.js';
import type { Frame } from './frame.js';
import { abnormalOf } from './functions.js';
import { diFromBytes, findDataItem } from './identifiers.js';
import { toHex } from './result.js';

/** A frame explained for a technician: the JSON printed by `meterd frame decode`. */
export interface FrameDescription {
  address: string;
  control: number;
  function: string;
  edition: Edition;
  direction: 'request' | 'reply';
  abnormal: boolean;
  more: boolean;
  di?: string;
  name?: string;
  /** Hex of the de-scrambled data after the identifier (and before a follow-up SEQ). */
  data: string;
  value?: unknown;
  unit?: string;
  valueError?: string;
  seq?: number;
  errors?: string[];
  message?: string;
}

/** Explain a decoded frame: function, identifier, value with unit, or the meter's named errors (DL/T 645-2007 §7). */
export function describeFrame(frame: Frame, edition?: Edition): FrameDescription {
  const ed = edition ?? guessEdition(frame.control, frame.data.length);
  const c = describeControl(frame.control, ed);
  const out: FrameDescription = {
    address: frame.address,
    control: frame.control,
    function: c.name,
    edition: ed,
    direction: c.direction,
    abnormal: c.abnormal,
    more: c.more,
    data: toHex(frame.data),
  };
  if (c.abnormal) {
    const a = abnormalOf(frame, ed);
    out.errors = a.errors;
    out.message = a.message;
    return out;
  }
  const diSize = ed === '2007' ? 4 : 2;
  const carriesDi =
    ed === '2007'
      ? c.fn === F2007.readData || c.fn === F2007.readFollowUp || c.fn === F2007.writeData || c.fn === F2007.securityAuth
      : c.fn === F1997.readData || c.fn === F1997.readFollowUp || c.fn === F1997.writeData;
  if (carriesDi && frame.data.length >= diSize) {
    const di = diFromBytes(frame.data.subarray(0, diSize));
    const hasSeq = ed === '2007' && c.fn === F2007.readFollowUp;
    const end = hasSeq && frame.data.length > diSize ? frame.data.length - 1 : frame.data.length;
    const rest = frame.data.subarray(diSize, end);
    out.di = di;
    out.data = toHex(rest);
    if (hasSeq && frame.data.length > diSize) out.seq = frame.data[frame.data.length - 1];
    const item = findDataItem(di, ed);
    if (item) out.name = item.name;
    const isReadReply =
      c.direction === 'reply' &&
      (ed === '2007' ? c.fn === F2007.readData || c.fn === F2007.readFollowUp : c.fn === F1997.readData || c.fn === F1997.readFollowUp);
    if (item && isReadReply) {
      const v = decodeValue(item.format, rest);
      if (v.ok) {
        out.value = plainValue(v.value);
        if (item.unit) out.unit = item.unit;
      } else {
        out.valueError = `${v.error.code}: ${v.error.message}`;
      }
    }
    return out;
  }
  if (c.direction === 'reply' && ed === '2007' && c.fn === F2007.readAddress && frame.data.length === 6) {
    out.value = addressFromBytes(frame.data);
  }
  return out;
}
