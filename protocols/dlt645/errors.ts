import type { Edition } from './control.js';

export interface ErrorBit {
  readonly bit: number;
  /** Stable kebab-case name used in JSON output and error codes. */
  readonly name: string;
  /** What a technician should understand from it. */
  readonly message: string;
}

/** Error information word ERR of an abnormal reply (DL/T 645-2007 §7.3 Table 4). */
export const ERR_2007: readonly ErrorBit[] = [
  { bit: 0, name: 'other-error', message: 'the meter refused the command (other error)' },
  { bit: 1, name: 'no-requested-data', message: 'the meter has no such data item (identifier not supported)' },
  { bit: 2, name: 'password-error', message: 'wrong password or not authorised (check password level, operator code, programming key)' },
  { bit: 3, name: 'baud-rate-unchangeable', message: 'the communication rate cannot be changed' },
  { bit: 4, name: 'year-zones-exceeded', message: 'too many annual time zones' },
  { bit: 5, name: 'day-segments-exceeded', message: 'too many daily time segments' },
  { bit: 6, name: 'tariffs-exceeded', message: 'too many tariffs' },
];

/** Error word of DL/T 645-1997 abnormal replies (1997 §6.4). */
export const ERR_1997: readonly ErrorBit[] = [
  { bit: 0, name: 'illegal-data', message: 'illegal data' },
  { bit: 1, name: 'di-error', message: 'data identifier error (item not supported)' },
  { bit: 2, name: 'password-error', message: 'wrong password' },
  { bit: 4, name: 'year-zones-exceeded', message: 'too many annual time zones' },
  { bit: 5, name: 'day-segments-exceeded', message: 'too many daily time segments' },
  { bit: 6, name: 'tariffs-exceeded', message: 'too many tariffs' },
];

/** Security error word SERR of an abnormal 0x03 reply (State Grid ESAM extension; docs/reference/prepaid.md § Security error word SERR). */
export const SERR: readonly ErrorBit[] = [
  { bit: 0, name: 'other-error', message: 'the meter refused the security command (other error)' },
  { bit: 1, name: 'repeat-recharge', message: 'repeat recharge: this purchase count was already loaded' },
  { bit: 2, name: 'mac-failed', message: 'ESAM verification failed (MAC rejected)' },
  { bit: 3, name: 'authentication-failed', message: 'identity authentication failed or expired' },
  { bit: 4, name: 'customer-number-mismatch', message: 'customer number does not match the meter' },
  { bit: 5, name: 'purchase-count-error', message: 'purchase count is not the meter count + 1' },
  { bit: 6, name: 'over-hoarding-limit', message: 'the balance after loading would exceed the hoarding limit' },
];

/** Names of the bits set in an error word; unknown bits appear as `bit-N` so nothing is hidden. */
export function errorNames(word: number, table: readonly ErrorBit[]): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 16; bit++) {
    if (!(word & (1 << bit))) continue;
    names.push(table.find((e) => e.bit === bit)?.name ?? `bit-${bit}`);
  }
  return names;
}

/** One sentence for a technician from an error word. */
export function errorMessage(word: number, table: readonly ErrorBit[]): string {
  const parts: string[] = [];
  for (let bit = 0; bit < 16; bit++) {
    if (!(word & (1 << bit))) continue;
    parts.push(table.find((e) => e.bit === bit)?.message ?? `reserved error bit ${bit}`);
  }
  return parts.length > 0 ? parts.join('; ') : 'abnormal reply with no error bit set';
}

export function errorTable(edition: Edition, security: boolean): readonly ErrorBit[] {
  if (security) return SERR;
  return edition === '2007' ? ERR_2007 : ERR_1997;
}
