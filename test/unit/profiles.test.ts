import { describe, expect, it } from 'vitest';
import { parseProfile } from '../../src/profiles/load.js';
import { loadProfiles } from '../../src/profiles/registry.js';

const modbusBase = `id: test-meter
name: Test meter
protocol: modbus-tcp
points:
  voltage.a: { table: input, address: 0, type: float32, unit: V }
  current.a: { table: input, address: 6, type: float32, unit: A }
  status.word1: { table: holding, address: 100, type: uint16, unit: "" }
groups:
  instant: { interval: 60s, points: [voltage.a, current.a] }
`;

function issuesOf(text: string) {
  const r = parseProfile(text, '/profiles/test-meter.yaml');
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.issues;
}

describe('device profile validation', () => {
  it('a valid Modbus profile loads with its points resolved', () => {
    const r = parseProfile(modbusBase, '/profiles/test-meter.yaml');
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.profile.points.get('voltage.a')).toMatchObject({
        kind: 'modbus',
        table: 'input',
        address: 0,
        type: 'float32',
        order: 'ABCD',
        scale: 1,
        unit: 'V',
      });
      expect(r.profile.line).toEqual({ baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1 });
    }
  });

  it('an unknown register type is one error naming file, line and the allowed types', () => {
    const issues = issuesOf(modbusBase.replace('address: 6, type: float32', 'address: 6, type: float33'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ file: '/profiles/test-meter.yaml', line: 6, path: 'points.current.a.type' });
    expect(issues[0]!.message).toMatch(/float32/);
  });

  it('overlapping registers are one error on the second point, naming both', () => {
    const issues = issuesOf(modbusBase.replace('address: 6, type: float32', 'address: 1, type: float32'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ line: 6 });
    expect(issues[0]!.message).toMatch(/overlapping registers: current.a .* overlaps voltage.a/);
  });

  it('a missing unit is one error on the point', () => {
    const issues = issuesOf(modbusBase.replace('type: float32, unit: A', 'type: float32'));
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ line: 6, path: 'points.current.a' });
    expect(issues[0]!.message).toMatch(/missing unit/);
  });

  it('a status bit beyond the word is one error on that bit', () => {
    const issues = issuesOf(`${modbusBase}status:\n  status.word1:\n    3: relay-open\n    17: cover-open\n`);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ line: 13, path: 'status.status.word1.17' });
    expect(issues[0]!.message).toMatch(/bit 17 is out of range: status.word1 has 16 bits/);
  });

  it('an unknown field is named with its line, and the id must match the file name', () => {
    const issues = issuesOf(
      modbusBase.replace('protocol: modbus-tcp', 'protocol: modbus-tcp\nbaud: 9600').replace('id: test-meter', 'id: other-meter'),
    );
    expect(issues.map((i) => [i.line, i.message])).toEqual([[4, 'unknown field "baud"']]);
    const idIssue = issuesOf(modbusBase.replace('id: test-meter', 'id: other-meter'));
    expect(idIssue[0]).toMatchObject({ line: 1, path: 'id' });
  });

  it('a DL/T 645 identifier outside the table needs a format and unit', () => {
    const text = `id: test-meter\nname: x\nprotocol: dlt645-2007\npoints:\n  vendor.thing: { di: "04A00101" }\ngroups:\n  g: { interval: 60s, points: [vendor.thing] }\n`;
    const issues = issuesOf(text);
    expect(issues[0]).toMatchObject({ line: 5 });
    expect(issues[0]!.message).toMatch(/not in meterd's table: give its format/);
  });

  it('YAML syntax errors carry their line', () => {
    const issues = issuesOf('id: test-meter\npoints: [a, b\n');
    expect(issues[0]!.line).toBeGreaterThanOrEqual(2);
  });

  it('an account method names a point of the profile, and ESAM opening needs the ESAM credit method', () => {
    const dlt = `id: test-meter\nname: x\nprotocol: dlt645-2007\npoints:\n  customer.number: { di: "0400040E" }\ngroups:\n  g: { interval: 60s, points: [customer.number] }\n`;
    expect(
      parseProfile(`${dlt}account: { method: dlt645-customer-number, point: customer.number }\n`, '/profiles/test-meter.yaml'),
    ).toMatchObject({
      ok: true,
      profile: { account: { method: 'dlt645-customer-number', point: 'customer.number' } },
    });
    const missing = issuesOf(`${dlt}account: { method: dlt645-customer-number, point: customer.id }\n`);
    expect(missing[0]).toMatchObject({ line: 8, path: 'account.point', message: 'no point named "customer.id" in this profile' });
    const esam = issuesOf(`${dlt}account: { method: dlt645-esam-opening }\n`);
    expect(esam[0]!.message).toBe('ESAM account opening needs the dlt645-esam credit method (the same handshake as a recharge)');
  });

  it('every shipped profile loads', () => {
    const all = loadProfiles();
    expect(all.size).toBeGreaterThanOrEqual(1);
    for (const p of all.values()) expect(p.groups.length).toBeGreaterThan(0);
  });
});
