import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isCommandName, MAX_TOPUP_AMOUNT_FEN, MAX_TOPUP_ENERGY_KWH, parseCommand } from '../../src/uplink/commands/schema.js';

const topup = (extra: Record<string, unknown>) => ({ requestId: 'r-1', meter: 'room-101', ...extra });

describe('topup amounts', () => {
  it('any energy of whole hundredths of a kWh becomes exactly that many 0.01 kWh in the ledger, never a float', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_TOPUP_ENERGY_KWH * 100 }), (hundredths) => {
        const parsed = parseCommand('topup', topup({ energyKwh: hundredths / 100 }));
        expect(parsed).toMatchObject({ ok: true, value: { payload: { credit: { unit: 'energy', amount: hundredths } } } });
      }),
    );
  });

  it('any energy with a third decimal is refused, naming energyKwh', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }).filter((thousandths) => thousandths % 10 !== 0),
        (thousandths) => {
          const parsed = parseCommand('topup', topup({ energyKwh: thousandths / 1000 }));
          expect(parsed).toEqual({
            ok: false,
            problem: { field: 'energyKwh', message: 'energyKwh must have at most two decimals (0.01 kWh)' },
          });
        },
      ),
    );
  });

  it('money is whole fen, carried as is', () => {
    expect(parseCommand('topup', topup({ amountFen: 5000 }))).toMatchObject({
      ok: true,
      value: { payload: { credit: { unit: 'money', amount: 5000 } } },
    });
    expect(parseCommand('topup', topup({ amountFen: MAX_TOPUP_AMOUNT_FEN + 1 }))).toMatchObject({
      ok: false,
      problem: { field: 'amountFen' },
    });
    expect(parseCommand('topup', topup({ amountFen: 0 }))).toMatchObject({ ok: false, problem: { field: 'amountFen' } });
  });

  it('refuses energy at or below zero and above the limit, and a number given as text', () => {
    for (const energyKwh of [0, -0.01, MAX_TOPUP_ENERGY_KWH + 0.01, '12.5']) {
      expect(parseCommand('topup', topup({ energyKwh }))).toMatchObject({ ok: false, problem: { field: 'energyKwh' } });
    }
    expect(parseCommand('topup', topup({ energyKwh: MAX_TOPUP_ENERGY_KWH }))).toMatchObject({ ok: true });
  });

  it('an amount far too large is refused for its size, not for its form (1e308 is a whole number)', () => {
    expect(parseCommand('topup', topup({ amountFen: 1e308 }))).toEqual({
      ok: false,
      problem: { field: 'amountFen', message: 'amountFen must be at most 10000000 fen (100000 yuan)' },
    });
    expect(parseCommand('topup', topup({ energyKwh: 1e308 }))).toEqual({
      ok: false,
      problem: { field: 'energyKwh', message: 'energyKwh must be at most 10000 kWh' },
    });
    expect(parseCommand('card-sell', { requestId: 'r-1', meter: 'room-101', operator: 'alice', amountFen: 1e308 })).toMatchObject({
      ok: false,
      problem: { field: 'amountFen', message: 'amountFen must be at most 10000000 fen (100000 yuan)' },
    });
  });

  it('names the nested field of an ESAM input', () => {
    const parsed = parseCommand('topup', topup({ energyKwh: 1, esam: { ciphertext: '0011223344556677', random: '00112233' } }));
    expect(parsed).toEqual({ ok: false, problem: { field: 'esam.random', message: 'esam.random must be 16 hex digits (8 bytes)' } });
  });
});

describe('the examples of docs/mqtt-api.md', () => {
  it('every request example under a command heading parses as that command', () => {
    const docs = readFileSync(new URL('../../docs/mqtt-api.md', import.meta.url), 'utf8');
    const commands = docs.slice(docs.indexOf('\n## Commands\n'));
    let heading = '';
    let checked = 0;
    for (const block of commands.split(/^```/m).map((part, i) => ({ part, i }))) {
      if (block.i % 2 === 0) {
        heading = [...block.part.matchAll(/^### (.+)$/gm)].at(-1)?.[1] ?? heading;
        continue;
      }
      if (!block.part.startsWith('json\n')) continue;
      const value = JSON.parse(block.part.slice(5)) as Record<string, unknown>;
      if ('$schema' in value || !isCommandName(heading)) continue;
      expect(parseCommand(heading, value), `${heading} example ${JSON.stringify(value)}`).toMatchObject({ ok: true });
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });
});
