import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { formatIssue } from '../../src/config/yaml-source.js';
import { loadProfiles } from '../../src/profiles/registry.js';

const profiles = loadProfiles();

const head = `gateway: { id: gw-a, dataDir: ./data, timeZone: Asia/Shanghai }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses:
  - { id: bus1, port: /dev/ttyUSB0 }
districts:
  - { id: d1, supplyMeter: room-101 }
meters:
  - { id: room-101, bus: bus1, address: "000012345678", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm], district: d1 }
  - { id: room-102, bus: bus1, address: "000012345679", profile: dlt645-2007-single-phase-prepaid, tags: [dorm] }
`;

function parse(allowances: string) {
  return parseConfig(`${head}allowances:\n${allowances}`, 'meterd.yaml', { env: {}, profiles });
}

const issues = (allowances: string) => {
  const r = parse(allowances);
  if (r.ok) throw new Error('expected the config to be refused');
  return r.issues.map(formatIssue);
};

describe('allowances in the gateway config', () => {
  it('takes the contract shape of the issue and resolves amounts to ledger units and durations to ms', () => {
    const r = parse(`  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1500
    at: "08:00"
    deadline: 14d
    terms:
      - id: 2026-autumn
        rounds:
          - { id: r1, date: "2026-09-07" }
          - { id: r2, date: "2026-11-16" }
`);
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    expect(r.config.allowances).toEqual([
      {
        id: 'dorm-free',
        meters: { tags: ['dorm'], ids: [], districts: [] },
        unit: 'money',
        amount: 1500,
        at: '08:00',
        deadlineMs: 14 * 86_400_000,
        retryMs: 300_000,
        terms: [
          {
            id: '2026-autumn',
            rounds: [
              { id: 'r1', date: '2026-09-07' },
              { id: 'r2', date: '2026-11-16' },
            ],
          },
        ],
      },
    ]);
    // room-102 takes kWh credit: its row would be parked, never converted; config check says so beforehand.
    expect(r.config.warnings.map(formatIssue)).toEqual([
      expect.stringMatching(/^meterd\.yaml:\d+: allowances\.0\.amountFen: 1 targeted meter\(s\) take no money credit \(room-102\)/),
    ]);
  });

  it('a round date that is not a date and two rounds with one id are errors with file and line', () => {
    expect(
      issues(`  - id: dorm-free
    meters: { ids: [room-101] }
    amountFen: 1500
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2026-02-30" }
          - { id: r1, date: "2026-03-01" }
`),
    ).toEqual([
      'meterd.yaml:17: allowances.0.terms.0.rounds.0.date: a round date is a calendar date written YYYY-MM-DD, e.g. "2026-09-07"',
    ]);
    expect(
      issues(`  - id: dorm-free
    meters: { ids: [room-101] }
    amountFen: 1500
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "2026-02-28" }
          - { id: r1, date: "2026-03-01" }
`),
    ).toEqual(['meterd.yaml:18: allowances.0.terms.0.rounds.1.id: duplicate round id "r1" in term t1 (first at rounds[0])']);
  });

  it('a tag no meter carries is a warning; an unknown meter or district, no amount, or both amounts are errors', () => {
    const r = parse(`  - id: a1
    meters: { tags: [dorm, dormm] }
    amountFen: 100
    terms: [{ id: t1, rounds: [{ id: r1, date: "2026-09-07" }] }]
`);
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    expect(r.config.warnings.map((w) => w.message)).toContain('no meter carries the tag "dormm": it selects nothing');
    expect(
      issues(`  - id: a1
    meters: { ids: [room-999], districts: [d9] }
    terms: [{ id: t1, rounds: [{ id: r1, date: "2026-09-07" }] }]
  - id: a2
    meters: { districts: [d1] }
    amountFen: 100
    energyKwh: 1
    terms: [{ id: t1, rounds: [{ id: r1, date: "2026-09-07" }] }]
`),
    ).toEqual([
      'meterd.yaml:12: allowances.0.meters.ids.0: no meter "room-999" in meters',
      'meterd.yaml:12: allowances.0.meters.districts.0: no district "d9" in districts',
      'meterd.yaml:11: allowances.0: give exactly one of amountFen (whole fen, for money meters) or energyKwh (kWh, for kWh meters)',
      'meterd.yaml:14: allowances.1: give exactly one of amountFen (whole fen, for money meters) or energyKwh (kWh, for kWh meters)',
    ]);
  });
});
