import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { loadProfiles } from '../../src/profiles/registry.js';

const profiles = loadProfiles();
const base = `gateway: { id: gw, dataDir: /tmp/meterd-config-lineloss, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: /dev/ttyUSB0 }
`;
const parse = (text: string) => parseConfig(base + text, 'meterd.yaml', { env: {}, profiles });
const messages = (text: string) => {
  const r = parse(text);
  if (r.ok) throw new Error('expected the config to be refused');
  return r.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
};

describe('line-loss configuration', () => {
  it('defaults: band 0–10 %, completeness 98 %, alert after 3 days, read at 00:15, recalled 7 days every 2 h', () => {
    const r = parse(`districts:
  - { id: d1, supplyMeter: d1-general, ctRatio: 50 }
meters:
  - { id: d1-general, bus: bus1, address: "000000000001", profile: dlt645-2007-three-phase, district: d1 }
  - { id: room-101, bus: bus1, address: "000000000002", profile: dlt645-2007-single-phase-prepaid, district: d1 }
`);
    if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
    expect(r.config.districts[0]).toEqual({
      id: 'd1',
      name: undefined,
      supplyMeter: 'd1-general',
      ctRatio: 50,
      ptRatio: 1,
      lineloss: { qualified: [0, 10], completeness: 98, alertAfterDays: 3 },
    });
    expect(r.config.lineloss).toEqual({ readAt: '00:15', recallDays: 7, recallEveryMs: 7_200_000 });
  });

  it('takes a target and its own band, and refuses a band upside down', () => {
    const r = parse(`districts:
  - { id: d1, supplyMeter: g, lineloss: { target: 6.5, qualified: [0, 7], alertAfterDays: 2 } }
meters:
  - { id: g, bus: bus1, address: "000000000001", profile: dlt645-2007-three-phase, district: d1 }
lineloss: { readAt: "01:30", recallDays: 3, recallEvery: 4h }
`);
    if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
    expect(r.config.districts[0]!.lineloss).toEqual({ target: 6.5, qualified: [0, 7], completeness: 98, alertAfterDays: 2 });
    expect(r.config.lineloss).toEqual({ readAt: '01:30', recallDays: 3, recallEveryMs: 14_400_000 });
    expect(
      messages(`districts:
  - { id: d1, supplyMeter: g, lineloss: { qualified: [10, 0] } }
meters:
  - { id: g, bus: bus1, address: "000000000001", profile: dlt645-2007-three-phase, district: d1 }
lineloss: { readAt: "25:00" }
`),
    ).toEqual([
      expect.stringMatching(/districts\.0\.lineloss\.qualified: qualified is \[low, high\] with low below high/),
      expect.stringMatching(/lineloss\.readAt: readAt is a local time of day HH:MM/),
    ]);
  });

  it('config check names a district without a supply meter, a supply meter of another district, members on no bus and members without freezes', () => {
    const out = messages(`districts:
  - { id: d1 }
  - { id: d2, supplyMeter: g2 }
meters:
  - { id: room-101, bus: bus1, address: "000000000001", profile: dlt645-2007-single-phase-prepaid, district: d1 }
  - { id: g2, bus: bus1, address: "000000000002", profile: dlt645-2007-three-phase, district: d1 }
  - { id: room-201, bus: bus9, address: "000000000003", profile: dlt645-2007-single-phase-prepaid, district: d2 }
  - { id: room-202, bus: bus1, unit: 3, profile: eastron-sdm120, district: d2 }
`);
    expect(out).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/districts\.0: district d1 has no supplyMeter: name its general meter/),
        expect.stringMatching(/districts\.1\.supplyMeter: g2 is the supply meter of d2 but is listed in district d1/),
        expect.stringMatching(/districts\.1: district d2 has meters on no configured bus: room-201 \(bus bus9\)/),
        expect.stringMatching(/districts\.1: district d2 has meters whose profile keeps no daily freezes .*room-202 \(eastron-sdm120\)/),
      ]),
    );
  });
});
