import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/uplink/commands/schema.js';
import { checkParameterLimits, limitFromNumber, parseLimitText, parsePriceText, priceFromNumber } from '../../src/values/index.js';

describe('parameter card values (one set of rules for the CLI and MQTT)', () => {
  it('a price is yuan per kWh with up to four decimals, above 0 and at most 10, in 0.0001 yuan', () => {
    expect(parsePriceText('0.5283')).toEqual({ ok: true, value: 5283 });
    expect(parsePriceText('1')).toEqual({ ok: true, value: 10000 });
    expect(priceFromNumber(0.5283)).toEqual({ ok: true, value: 5283 });
    expect(parsePriceText('0.52831')).toEqual({ ok: false, reason: 'must have at most 4 decimals (0.0001 yuan)' });
    expect(parsePriceText('0')).toEqual({ ok: false, reason: 'must be above 0' });
    expect(parsePriceText('10.0001')).toEqual({ ok: false, reason: 'must be at most 10 yuan per kWh' });
    expect(parsePriceText('-1').ok).toBe(false);
    expect(priceFromNumber(1e-7)).toEqual({ ok: false, reason: 'must have at most 4 decimals (0.0001 yuan)' });
  });

  it('a limit is kWh or yuan as the layout counts, 0 allowed, two decimals, capped like one load', () => {
    expect(parseLimitText('20', '0.01kWh')).toEqual({ ok: true, value: 2000 });
    expect(parseLimitText('0', 'fen')).toEqual({ ok: true, value: 0 });
    expect(parseLimitText('12.345', 'fen')).toEqual({ ok: false, reason: 'must have at most 2 decimals (fen)' });
    expect(parseLimitText('10001', '0.01kWh')).toEqual({ ok: false, reason: 'must be at most 10000 kWh' });
    expect(parseLimitText('10001', 'fen')).toEqual({ ok: true, value: 1_000_100 });
    expect(limitFromNumber(-1, 'fen')).toEqual({ ok: false, reason: 'must be 0 or more' });
    expect(limitFromNumber(5.5, '0.01kWh')).toEqual({ ok: true, value: 550 });
  });

  it('alarm 2 is at or below alarm 1, and a hoarding limit lies above alarm 1 (or is 0: none)', () => {
    expect(checkParameterLimits({ alarm1: 2000, alarm2: 1000, overdraft: 500, hoarding: 50_000 })).toBeUndefined();
    expect(checkParameterLimits({ alarm1: 2000, alarm2: 1000, overdraft: 0, hoarding: 0 })).toBeUndefined();
    expect(checkParameterLimits({ alarm1: 1000, alarm2: 2000, overdraft: 0, hoarding: 0 })?.field).toBe('alarm2');
    expect(checkParameterLimits({ alarm1: 2000, alarm2: 1000, overdraft: 0, hoarding: 1500 })?.field).toBe('hoarding');
  });

  it('card-param names the field a station got wrong', () => {
    const ok = { requestId: 'p-1', priceYuan: 0.5283, alarm1: 20, alarm2: 10, overdraft: 5, hoarding: 500, operator: 'alice' };
    expect(parseCommand('card-param', ok).ok).toBe(true);
    expect(parseCommand('card-param', { ...ok, priceYuan: 0.52831 })).toMatchObject({
      ok: false,
      problem: { field: 'priceYuan', message: 'priceYuan must have at most 4 decimals (0.0001 yuan)' },
    });
    expect(parseCommand('card-param', { ...ok, alarm2: 30 })).toMatchObject({ ok: false, problem: { field: 'alarm2' } });
    expect(parseCommand('card-param', { ...ok, overdraft: -1 })).toMatchObject({ ok: false, problem: { field: 'overdraft' } });
  });
});
