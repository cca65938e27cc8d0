import { ok, type Parsed, refused } from './result.js';

/**
 * The most energy one load may carry. Far above any household purchase (a dormitory room uses 5 to 10 kWh a day), so
 * a load above it is a typo or a unit mix-up, never a purchase. The same cap holds on every door: the CLI, MQTT
 * commands, the card counter and the web console.
 */
export const MAX_ENERGY_KWH = 10_000;
/** The most money one load may carry: 100,000 yuan. Above it is a mistake (a fen/yuan mix-up), never a purchase. */
export const MAX_AMOUNT_YUAN = 100_000;
/** MAX_ENERGY_KWH in ledger units (0.01 kWh). */
export const MAX_ENERGY_CENTI_KWH = MAX_ENERGY_KWH * 100;
/** MAX_AMOUNT_YUAN in ledger units (fen). */
export const MAX_AMOUNT_FEN = MAX_AMOUNT_YUAN * 100;

/** Plain decimal notation only: digits, then optionally a point and digits. No sign, exponent, radix prefix or space. */
const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

interface Scale {
  /** Name of the whole unit in messages: `kWh`, `yuan`. */
  readonly whole: string;
  /** Name of the hundredth in messages: `0.01 kWh`, `fen`. */
  readonly hundredth: string;
  readonly maxWhole: number;
}

const TEXT_RULE = 'must be a positive number with at most 2 decimals';

const ENERGY: Scale = { whole: 'kWh', hundredth: '0.01 kWh', maxWhole: MAX_ENERGY_KWH };
const MONEY: Scale = { whole: 'yuan', hundredth: 'fen', maxWhole: MAX_AMOUNT_YUAN };

/**
 * Energy as typed by a person (a CLI option, a form field): plain decimal kWh with at most two decimals, above 0 and at
 * most MAX_ENERGY_KWH, to whole hundredths of a kWh (the ledger's unit). Exact: no floating point between the text
 * and the count.
 *
 * ```ts
 * parseKwhText('12.5');  // { ok: true, value: 1250 }
 * parseKwhText('0x20');  // { ok: false, reason: 'must be a positive number with at most 2 decimals in plain decimal digits (e.g. 12.5), not "0x20"' }
 * parseKwhText('1e5');   // { ok: false, reason: 'must be at most 10000 kWh' }
 * ```
 */
export function parseKwhText(text: string): Parsed<number> {
  return parseDecimalText(text, ENERGY);
}

/** Money as typed by a person: plain decimal yuan with at most two decimals, above 0, at most MAX_AMOUNT_YUAN, to fen. */
export function parseYuanText(text: string): Parsed<number> {
  return parseDecimalText(text, MONEY);
}

/**
 * Energy as a JSON number of kWh (an MQTT `energyKwh`): above 0, at most MAX_ENERGY_KWH, at most two decimals as the
 * number is written (`12.5`, `12.34`; not `12.345` or `1e-7`), to whole hundredths of a kWh.
 */
export function centiKwhFromNumber(value: unknown): Parsed<number> {
  if (typeof value !== 'number' || Number.isNaN(value)) return refused('must be a number of kWh');
  if (value <= 0) return refused('must be above 0');
  if (value > MAX_ENERGY_KWH) return refused(tooLarge(ENERGY));
  // String() of a number of this range is plain decimal unless it is tiny (1e-7): such a value has too many decimals.
  const m = DECIMAL.exec(String(value));
  if (m === null || (m[2] ?? '').length > 2) return refused(tooManyDecimals(ENERGY));
  return ok(hundredths(m[1]!, m[2] ?? ''));
}

/** Money as a JSON number of fen (an MQTT `amountFen`): a whole number above 0 and at most MAX_AMOUNT_FEN. */
export function fenFromNumber(value: unknown): Parsed<number> {
  if (typeof value !== 'number' || Number.isNaN(value)) return refused('must be a number of fen');
  if (value <= 0) return refused('must be above 0');
  // Before the whole-number test: 1e308 is whole, and what is wrong with it is its size.
  if (value > MAX_AMOUNT_FEN) return refused(`must be at most ${MAX_AMOUNT_FEN} fen (${MAX_AMOUNT_YUAN} yuan)`);
  if (!Number.isInteger(value)) return refused('must be a whole number of fen (1 yuan = 100 fen)');
  return ok(value);
}

function parseDecimalText(text: string, scale: Scale): Parsed<number> {
  const m = DECIMAL.exec(text);
  if (m === null) {
    // Say what is wrong in the terms the person meant: `1e308` and `-5` are numbers, just not acceptable ones.
    const meant = text.trim() === '' ? Number.NaN : Number(text);
    if (meant > scale.maxWhole) return refused(tooLarge(scale));
    if (/^\s*-/.test(text)) return refused('must be above 0');
    return refused(`${TEXT_RULE} in plain decimal digits (e.g. 12.5), not ${JSON.stringify(text.slice(0, 40))}`);
  }
  const whole = m[1]!.replace(/^0+(?=\d)/, '');
  const fraction = m[2] ?? '';
  // Compared as digits first, so a 400-digit whole part never becomes a float.
  if (whole.length > String(scale.maxWhole).length) return refused(tooLarge(scale));
  if (fraction.length > 2) return refused(`${TEXT_RULE} (${scale.hundredth}), not ${JSON.stringify(text.slice(0, 40))}`);
  const units = hundredths(whole, fraction);
  if (units === 0) return refused('must be above 0');
  if (units > scale.maxWhole * 100) return refused(tooLarge(scale));
  return ok(units);
}

function hundredths(whole: string, fraction: string): number {
  return Number(whole) * 100 + Number(fraction.padEnd(2, '0'));
}

function tooLarge(scale: Scale): string {
  return `must be at most ${scale.maxWhole} ${scale.whole}`;
}

function tooManyDecimals(scale: Scale): string {
  return `must have at most two decimals (${scale.hundredth})`;
}
