import { describe, expect, it } from 'vitest';
import { decodeValue, findDataItem, parseReadReply, plainValue, readData } from '../../protocols/dlt645/index.js';
import { defaultMeters, parseSimulatorSpec, SimulatedMeter } from '../../src/sim/dlt645/index.js';

const T0 = new Date(2026, 0, 15, 10, 0, 0).getTime();

function readValue(m: SimulatedMeter, di: string): unknown {
  const [reply] = m.handle(readData(m.address, di), T0);
  const r = parseReadReply(reply!);
  if (!r.ok) throw new Error(r.error.message);
  const v = decodeValue(findDataItem(di)!.format, r.value.value);
  if (!v.ok) throw new Error(v.error.message);
  return plainValue(v.value);
}

describe('simulator spec from YAML', () => {
  it('takes addresses YAML reads as numbers, pads them to 12 digits, and keeps registers by DI or point', () => {
    const r = parseSimulatorSpec(
      [
        'meters:',
        '  - address: 000000000001',
        '    kind: energy',
        '    balance: 12.5',
        "    registers: { '02010100': 230.1, meter.model: X1 }",
        '  - address: 2',
        '',
      ].join('\n'),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.meters.map((m) => m.address)).toEqual(['000000000001', '000000000002']);
    const m = new SimulatedMeter(r.value.meters[0]!, { startMs: T0 });
    expect([readValue(m, '00900100'), readValue(m, '02010100'), readValue(m, '0400040B')]).toEqual([12.5, 230.1, 'X1']);
  });

  it('names the line and key of an unknown register, a bad value and a duplicate address', () => {
    const text = ['meters:', '  - address: 1', '    registers:', '      voltage.x: 220', '  - address: 1', '    balance: 1.234', ''].join(
      '\n',
    );
    const r = parseSimulatorSpec(text, 'bus.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('SIM_SPEC_INVALID');
    expect(r.error.message).toContain('bus.yaml:4: meters[0].registers.voltage.x: "voltage.x" is neither');
    expect(r.error.message).toContain('bus.yaml:5: meters[1].address: address 000000000001 is already used by meter 1');
    expect(r.error.message).toContain('bus.yaml:6: meters[1].balance: balance has at most 2 decimals');
  });

  it('refuses a value that does not fit its item, and unknown keys', () => {
    const r = parseSimulatorSpec("meters:\n  - address: 1\n    colour: red\n    registers: { '04000401': 'abc' }\n");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toMatch(/Unrecognized key.*colour/);
    expect(r.error.message).toContain('04000401');
  });

  it('reports YAML syntax errors with their line', () => {
    const r = parseSimulatorSpec('meters:\n  - address: [1\n', 'x.yaml');
    expect(!r.ok && r.error.message.startsWith('x.yaml:')).toBe(true);
  });
});

describe('SimulatedMeter checks its spec where it enters', () => {
  it('throws a TypeError naming the problem', () => {
    expect(() => new SimulatedMeter({ address: '12AB' })).toThrow(TypeError);
    expect(() => new SimulatedMeter({ address: '1', registers: { 'current.a': 5 } })).toThrow(/computed from powerKw/);
    expect(() => new SimulatedMeter({ address: '1', kind: 'money', registers: { 'credit.balance.energy': 5 } })).toThrow(
      /not an item of a 1-phase money meter/,
    );
  });
});

describe('defaultMeters', () => {
  it('makes distinct, plausible, repeatable money meters', () => {
    const specs = defaultMeters(5);
    expect(specs.map((s) => s.address)).toEqual(['000000000001', '000000000002', '000000000003', '000000000004', '000000000005']);
    expect(defaultMeters(5)).toEqual(specs);
    for (const spec of specs) {
      const m = new SimulatedMeter(spec, { startMs: T0 });
      const volts = readValue(m, '02010100') as number;
      expect(volts).toBeGreaterThan(215);
      expect(volts).toBeLessThan(225);
      expect(readValue(m, '02020100') as number).toBeGreaterThan(0);
      expect(readValue(m, '00010000') as number).toBeGreaterThan(100);
      expect(readValue(m, '00900200') as number).toBeGreaterThan(0);
    }
  });

  it('applies overrides to every meter, e.g. no load for a frozen bus', () => {
    expect(defaultMeters(3, { powerKw: 0 }).every((m) => m.powerKw === 0)).toBe(true);
  });
});
