import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { loadProfiles } from '../../src/profiles/registry.js';
import { firstAllowedAt, protectedWindowAt } from '../../src/services/supply/windows.js';

const profiles = loadProfiles();
const base = `gateway: { id: gw, dataDir: /tmp/meterd-config-supply, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
`;
const parse = (text: string) => parseConfig(base + text, 'meterd.yaml', { env: {}, profiles });
const messages = (text: string) => {
  const r = parse(text);
  if (r.ok) throw new Error('expected the config to be refused');
  return r.issues.map((i) => `${i.file}:${i.line}: ${i.path}: ${i.message}`);
};
const settings = (text: string) => {
  const r = parse(text);
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  return r.config.supply;
};

describe('supply: in the gateway config', () => {
  it('defaults to 24 hours of notice and no protected window; 0 hours is allowed', () => {
    expect(settings('')).toEqual({ noticeMs: 86_400_000, protectedWindows: [] });
    expect(settings('supply: { noticeHours: 0 }').noticeMs).toBe(0);
    expect(settings('supply: { noticeHours: 1.5 }').noticeMs).toBe(5_400_000);
  });

  it('takes daily hours, a date and a range of dates', () => {
    const s = settings(`supply:
  noticeHours: 72
  protectedWindows:
    - { daily: "20:00-08:00" }
    - { date: "2027-02-06" }
    - { from: "2027-02-09", to: "2027-02-17" }
`);
    expect(s.noticeMs).toBe(72 * 3_600_000);
    expect(s.protectedWindows).toEqual([
      { kind: 'daily', fromMinute: 1200, toMinute: 480, text: '20:00-08:00' },
      { kind: 'dates', from: '2027-02-06', to: '2027-02-06', text: '2027-02-06' },
      { kind: 'dates', from: '2027-02-09', to: '2027-02-17', text: '2027-02-09..2027-02-17' },
    ]);
  });

  it('refuses bad values with the file, the line and the field', () => {
    expect(
      messages(`supply:
  noticeHours: -1
  protectedWindows:
    - { daily: "8pm-8am" }
    - { date: "2027-02-30" }
    - { from: "2027-02-17", to: "2027-02-09" }
    - { daily: "08:00-08:00" }
`),
    ).toEqual([
      'meterd.yaml:4: supply.noticeHours: noticeHours is 0 or more hours',
      expect.stringMatching(/^meterd\.yaml:6: supply\.protectedWindows\.0/),
      expect.stringMatching(/^meterd\.yaml:7: supply\.protectedWindows\.1/),
      expect.stringMatching(/^meterd\.yaml:8: supply\.protectedWindows\.2/),
      expect.stringMatching(/^meterd\.yaml:9: supply\.protectedWindows\.3/),
    ]);
    expect(messages('supply: { noticeHours: 24, windows: [] }')).toEqual([
      expect.stringMatching(/^meterd\.yaml:3: supply.*unknown field "windows"/),
    ]);
  });
});

describe('protected windows', () => {
  const tz = 'Asia/Shanghai';
  const at = (local: string) => Date.parse(`${local}+08:00`);
  const windows = settings(`supply:
  protectedWindows:
    - { daily: "20:00-08:00" }
    - { from: "2027-02-09", to: "2027-02-10" }
`).protectedWindows;

  it('a daily span past midnight covers the evening and the morning, not the day', () => {
    expect(protectedWindowAt(at('2026-12-08T21:30:00'), windows, tz)?.text).toBe('20:00-08:00');
    expect(protectedWindowAt(at('2026-12-08T07:59:00'), windows, tz)?.text).toBe('20:00-08:00');
    expect(protectedWindowAt(at('2026-12-08T08:00:00'), windows, tz)).toBeUndefined();
    expect(protectedWindowAt(at('2026-12-08T19:59:00'), windows, tz)).toBeUndefined();
  });

  it('a cut due in the evening goes at 08:00; one due in a protected range of dates after it, at 08:00 the day after', () => {
    expect(firstAllowedAt(at('2026-12-08T21:00:00'), windows, tz)).toBe(at('2026-12-09T08:00:00'));
    expect(firstAllowedAt(at('2026-12-08T10:00:00'), windows, tz)).toBe(at('2026-12-08T10:00:00'));
    // The range ends at midnight of the 11th, still inside the night: the night's end is the first allowed time.
    expect(firstAllowedAt(at('2027-02-09T10:00:00'), windows, tz)).toBe(at('2027-02-11T08:00:00'));
  });
});
