import { MAX_AMOUNT_YUAN, MAX_ENERGY_KWH } from './credit.js';
import { ok, type Parsed, refused } from './result.js';

// The values of a parameter card (参数卡, docs/provisioning.md § Parameter cards): the price and the limits a card
// meter keeps. One set of rules whichever door they come in by (CLI option, MQTT field).

/** The highest price a parameter card may carry: 10 yuan per kWh, far above any residential tariff (a typo otherwise). */
export const MAX_PRICE_YUAN_PER_KWH = 10;
/** Prices are written in 0.0001 yuan per kWh: State Grid tariffs have four decimals (0.5283). */
export const PRICE_UNITS_PER_YUAN = 10_000;

/** What the limits count: the card layout's amount unit, 0.01 kWh or fen. */
export type LimitUnit = '0.01kWh' | 'fen';

/** The limits of one parameter card, in the layout's unit (hundredths of a kWh or fen). */
export interface ParameterLimits {
  readonly alarm1: number;
  readonly alarm2: number;
  readonly overdraft: number;
  /** 0: no hoarding limit. */
  readonly hoarding: number;
}

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

/** A price as typed: plain decimal yuan per kWh, above 0, at most 4 decimals and MAX_PRICE_YUAN_PER_KWH, to 0.0001 yuan. */
export function parsePriceText(text: string): Parsed<number> {
  const m = DECIMAL.exec(text);
  if (m === null)
    return refused(`must be a price in yuan per kWh in plain decimal digits (e.g. 0.5283), not ${JSON.stringify(text.slice(0, 40))}`);
  return priceOf(m[1]!, m[2] ?? '');
}

/** A price as a JSON number of yuan per kWh (`priceYuan`): the same rules as the text. */
export function priceFromNumber(value: unknown): Parsed<number> {
  if (typeof value !== 'number' || !Number.isFinite(value)) return refused('must be a number of yuan per kWh');
  const m = DECIMAL.exec(String(value));
  if (m === null) return value <= 0 ? refused('must be above 0') : refused('must have at most 4 decimals (0.0001 yuan)');
  return priceOf(m[1]!, m[2] ?? '');
}

function priceOf(whole: string, fraction: string): Parsed<number> {
  if (fraction.length > 4) return refused('must have at most 4 decimals (0.0001 yuan)');
  if (whole.replace(/^0+/, '').length > 2) return refused(`must be at most ${MAX_PRICE_YUAN_PER_KWH} yuan per kWh`);
  const units = Number(whole) * PRICE_UNITS_PER_YUAN + Number(fraction.padEnd(4, '0'));
  if (units === 0) return refused('must be above 0');
  if (units > MAX_PRICE_YUAN_PER_KWH * PRICE_UNITS_PER_YUAN) return refused(`must be at most ${MAX_PRICE_YUAN_PER_KWH} yuan per kWh`);
  return ok(units);
}

/**
 * A limit as typed (alarm threshold, overdraft, hoarding): kWh for energy cards, yuan for money cards, plain decimal
 * with at most two decimals, 0 allowed (no overdraft, no hoarding limit), at most the cap of one load.
 */
export function parseLimitText(text: string, unit: LimitUnit): Parsed<number> {
  const m = DECIMAL.exec(text);
  if (m === null)
    return refused(
      `must be ${unit === 'fen' ? 'yuan' : 'kWh'} in plain decimal digits, 0 or more with at most 2 decimals, not ${JSON.stringify(text.slice(0, 40))}`,
    );
  return limitOf(m[1]!, m[2] ?? '', unit);
}

/** A limit as a JSON number in kWh or yuan (the card layout's unit): the same rules as the text. */
export function limitFromNumber(value: unknown, unit: LimitUnit): Parsed<number> {
  if (typeof value !== 'number' || !Number.isFinite(value)) return refused(`must be a number of ${unit === 'fen' ? 'yuan' : 'kWh'}`);
  const m = DECIMAL.exec(String(value));
  if (m === null) return value < 0 ? refused('must be 0 or more') : refused('must have at most 2 decimals');
  return limitOf(m[1]!, m[2] ?? '', unit);
}

function limitOf(whole: string, fraction: string, unit: LimitUnit): Parsed<number> {
  const max = unit === 'fen' ? MAX_AMOUNT_YUAN : MAX_ENERGY_KWH;
  if (fraction.length > 2) return refused(`must have at most 2 decimals (${unit === 'fen' ? 'fen' : '0.01 kWh'})`);
  if (whole.replace(/^0+/, '').length > String(max).length) return refused(`must be at most ${max} ${unit === 'fen' ? 'yuan' : 'kWh'}`);
  const units = Number(whole) * 100 + Number(fraction.padEnd(2, '0'));
  if (units > max * 100) return refused(`must be at most ${max} ${unit === 'fen' ? 'yuan' : 'kWh'}`);
  return ok(units);
}

/**
 * The limits together: alarm 2 (the second, later warning) at or below alarm 1, and a hoarding limit (when set) above
 * alarm 1, or the meter would warn at a balance it can never reach. Undefined when they fit, else the reason.
 */
export function checkParameterLimits(l: ParameterLimits): { field: keyof ParameterLimits; reason: string } | undefined {
  if (l.alarm2 > l.alarm1) return { field: 'alarm2', reason: 'must be at most alarm1: alarm 2 is the second warning, at a lower balance' };
  if (l.hoarding !== 0 && l.hoarding <= l.alarm1)
    return { field: 'hoarding', reason: 'must be above alarm1 (or 0 for no hoarding limit): a meter cannot hold less than it warns at' };
  return undefined;
}
