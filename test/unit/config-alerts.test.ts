import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig, thresholdsFor } from '../../src/config/index.js';

const base = `gateway: { id: gw-a, dataDir: ./data }
mqtt: { url: "mqtt://127.0.0.1:1883" }
buses: [{ id: bus1, port: /dev/ttyUSB0 }]
meters:
  - { id: room-101, bus: bus1, address: "000000000101", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }
  - { id: shop-1, bus: bus1, address: "000000000201", profile: dlt645-2007-single-phase-prepaid-money, district: d2 }
  - { id: d2-general, bus: bus1, address: "000000000900", profile: dlt645-2007-three-phase, district: d2 }
districts: [{ id: d2, supplyMeter: d2-general }]
`;

function load(extra: string) {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-config-alerts-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(file, base + extra);
  return loadGatewayConfig(file, {});
}

function problems(extra: string): string[] {
  try {
    load(extra);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('alerts: and clock: in the config', () => {
  it('default to the concentrator thresholds when left out', () => {
    const config = load('');
    expect(config.alerts.defaults).toMatchObject({
      stuckAfterMs: 900_000,
      runawayFactor: 6,
      overDifferenceFactor: 4,
      clockDriftMs: 300_000,
      clearAfter: 3,
    });
    expect(config.clock).toEqual({ sync: 'auto', settlementTimes: [] });
  });

  it('apply overrides by tag, district or meter, later ones winning', () => {
    const config = load(`alerts:
  balanceLow: 20
  severity: { comm-loss: critical }
  overrides:
    - { tags: [dorm], balanceLow: 5 }
    - { districts: [d2], stuckAfter: 1h }
    - { meters: [room-101], balanceLow: 2, severity: { balance-low: warning } }
`);
    const room = thresholdsFor(config.alerts, config.meters[0]!);
    const shop = thresholdsFor(config.alerts, config.meters[1]!);
    expect(room).toMatchObject({ balanceLow: 2, stuckAfterMs: 900_000 });
    expect(room.severity).toMatchObject({ 'balance-low': 'warning', 'comm-loss': 'critical' });
    expect(shop).toMatchObject({ balanceLow: 20, stuckAfterMs: 3_600_000 });
    expect(shop.severity['balance-low']).toBe('info');
  });

  it('say what is wrong, with the line, for bad thresholds, kinds and times', () => {
    const found = problems(`alerts:
  stuckAfter: soon
  runawayFactor: 3
  severity: { kettle: warning }
  overrides:
    - { balanceLow: 5 }
clock: { sync: sometimes, settlementTimes: ["25:00"] }
`);
    const text = found.join('\n');
    expect(text).toMatch(/severity/);
    expect(text).toMatch(/sync/);
    expect(text).toMatch(/settlementTimes/);
  });

  it('refuse an over-difference factor at or above the runaway factor, and an override that names no meters', () => {
    const text = problems(`alerts:
  runawayFactor: 3
  stuckAfter: 30s
  overrides:
    - { balanceLow: 5 }
`).join('\n');
    expect(text).toMatch(/overDifferenceFactor: must be below runawayFactor \(3\)/);
    expect(text).toMatch(/stuckAfter: "30s" is not a duration of at least 1m/);
    expect(text).toMatch(/overrides.0: name the meters it applies to: tags, districts or meters/);
  });
});
