/** Which edition of the standard a frame belongs to: the frame layout is shared, the function codes differ. */
export type Edition = '2007' | '1997';

/** Control byte bit D7: 0 master→meter, 1 meter→master (DL/T 645-2007 §7.2 control code C). */
export const DIR_REPLY = 0x80;
/** Control byte bit D6: abnormal (error) reply. */
export const ERR_FLAG = 0x40;
/** Control byte bit D5: follow-up frames exist. */
export const MORE_FLAG = 0x20;
export const FUNCTION_MASK = 0x1f;

/** DL/T 645-2007 function codes (§7.2, Table 2 and the State Grid 0x03 security extension). */
export const F2007 = {
  securityAuth: 0x03,
  broadcastTime: 0x08,
  readData: 0x11,
  readFollowUp: 0x12,
  readAddress: 0x13,
  writeData: 0x14,
  writeAddress: 0x15,
  freeze: 0x16,
  changeBaud: 0x17,
  changePassword: 0x18,
  demandClear: 0x19,
  meterClear: 0x1a,
  eventClear: 0x1b,
  remoteControl: 0x1c,
  multiFunctionOutput: 0x1d,
} as const;

/** DL/T 645-1997 function codes (§6.2). */
export const F1997 = {
  readData: 0x01,
  readFollowUp: 0x02,
  reRead: 0x03,
  writeData: 0x04,
  broadcastTime: 0x08,
  writeAddress: 0x0a,
  changeBaud: 0x0c,
  changePassword: 0x0f,
  demandClear: 0x10,
} as const;

const NAMES_2007 = new Map<number, string>(Object.entries(F2007).map(([k, v]) => [v, k]));
const NAMES_1997 = new Map<number, string>(Object.entries(F1997).map(([k, v]) => [v, k]));

export interface ControlInfo {
  /** The 5-bit function code. */
  readonly fn: number;
  /** Function name in this edition, or `unknown-0xNN`. */
  readonly name: string;
  readonly direction: 'request' | 'reply';
  readonly abnormal: boolean;
  readonly more: boolean;
}

/** Split a control byte into function, direction, abnormal and follow-up bits (DL/T 645-2007 §7.2). */
export function describeControl(control: number, edition: Edition = '2007'): ControlInfo {
  const fn = control & FUNCTION_MASK;
  const names = edition === '2007' ? NAMES_2007 : NAMES_1997;
  return {
    fn,
    name: names.get(fn) ?? `unknown-0x${fn.toString(16).padStart(2, '0')}`,
    direction: control & DIR_REPLY ? 'reply' : 'request',
    abnormal: (control & ERR_FLAG) !== 0,
    more: (control & MORE_FLAG) !== 0,
  };
}

/** Guess the edition of a captured frame from its function code and identifier length (for `frame decode`). */
export function guessEdition(control: number, dataLength: number): Edition {
  const fn = control & FUNCTION_MASK;
  if (fn === 0x01 || fn === 0x02 || fn === 0x04 || fn === 0x0a || fn === 0x0c || fn === 0x0f || fn === 0x10) return '1997';
  // 0x03 is "re-read" (no data) in 1997 and security authentication (DI + operator + payload) in 2007.
  if (fn === 0x03 && dataLength === 0 && !(control & DIR_REPLY)) return '1997';
  return '2007';
}
