import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig, parseDuration } from '../../src/config/index.js';
import { hostTimeZone } from '../../src/time-zone.js';

const minimal = `gateway:
  id: gw-demo
  dataDir: ./data
mqtt:
  url: mqtt://127.0.0.1:1883
buses:
  - id: bus1
    port: /dev/ttyUSB0        # or tcp://10.0.0.7:8899 for a serial-over-TCP converter
    baudRate: 2400
    parity: even
meters:
  - id: room-101
    bus: bus1
    address: "000012345678"
    profile: dlt645-2007-single-phase-prepaid
polling:
  intervals:
    instant: 10s             # overrides the profile's group interval by group name
`;

function write(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-config-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(file, text);
  return file;
}

function issues(text: string, env: NodeJS.ProcessEnv = {}) {
  try {
    loadGatewayConfig(write(text), env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected the config to be refused');
}

describe('gateway configuration', () => {
  it('the minimal file of the README works exactly as written, everything else defaulted', () => {
    const file = write(minimal);
    const c = loadGatewayConfig(file, {});
    expect(c.gateway.id).toBe('gw-demo');
    expect(c.gateway.dataDir).toBe(join(file, '..', 'data'));
    expect(c.mqtt).toMatchObject({ url: 'mqtt://127.0.0.1:1883', topicPrefix: 'meterd', protocolVersion: 5, clientId: 'meterd-gw-demo' });
    expect(c.buses[0]).toMatchObject({
      id: 'bus1',
      protocol: 'dlt645',
      line: { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 },
      retries: 2,
      gapMs: 20,
    });
    expect(c.meters[0]).toMatchObject({ id: 'room-101', busId: 'bus1', address: '000012345678' });
    expect(c.meters[0]!.profile.id).toBe('dlt645-2007-single-phase-prepaid');
    expect(c.polling.intervalsMs).toEqual({ instant: 10_000 });
    expect(c.credentials.dlt645.password).toEqual({ level: 2, code: '000000' });
  });

  it('lists every problem with its line, not just the first', () => {
    const bad = minimal
      .replace('id: room-101', 'id: room/101')
      .replace('bus: bus1', 'bus: bus9')
      .replace('profile: dlt645-2007-single-phase-prepaid', 'profile: no-such-model')
      .replace('instant: 10s', 'instant: soon');
    const found = issues(bad);
    expect(found.map((i) => [i.line, i.path])).toEqual([[12, 'meters.0.id']]);
    // Schema errors come first; once the ids are fixed, the cross-references are all reported together.
    const refs = issues(
      minimal.replace('bus: bus1', 'bus: bus9').replace('profile: dlt645-2007-single-phase-prepaid', 'profile: no-such-model'),
    );
    expect(refs.map((i) => [i.line, i.path])).toEqual([
      [13, 'meters.0.bus'],
      [15, 'meters.0.profile'],
    ]);
    expect(refs[1]!.message).toMatch(/unknown profile "no-such-model"; known: .*eastron-sdm630/);
  });

  it('refuses ids that would break MQTT topics: +, #, / and empty', () => {
    for (const id of ['a+b', 'a#', 'a/b', '']) {
      const found = issues(minimal.replace('id: gw-demo', `id: "${id}"`));
      expect(found[0]).toMatchObject({ line: 2, path: 'gateway.id' });
    }
  });

  it('a time zone that does not exist is named with its line; without one the machine zone is used', () => {
    const found = issues(minimal.replace('  dataDir: ./data\n', '  dataDir: ./data\n  timeZone: Asia/Beijing\n'));
    expect(found[0]).toMatchObject({ line: 4, path: 'gateway.timeZone' });
    expect(found[0]!.message).toMatch(/"Asia\/Beijing" is not a time zone: write an IANA name such as Asia\/Shanghai/);
    expect(
      loadGatewayConfig(write(minimal.replace('  dataDir: ./data\n', '  dataDir: ./data\n  timeZone: Asia/Calcutta\n')), {}).gateway
        .timeZone,
    ).toBe('Asia/Calcutta');
    expect(loadGatewayConfig(write(minimal), {}).gateway.timeZone).toBe(hostTimeZone());
  });

  it('a DL/T 645 meter without an address, and a bad interval, are named with their lines', () => {
    const found = issues(minimal.replace('    address: "000012345678"\n', '').replace('instant: 10s', 'instant: soon'));
    expect(found.map((i) => i.line)).toEqual([12, 17]);
    expect(found[0]!.message).toMatch(/give its address/);
    expect(found[1]!.message).toMatch(/not a duration/);
  });

  it('secrets come from environment variables, and a missing one is an error', () => {
    const text = minimal.replace(
      '  url: mqtt://127.0.0.1:1883',
      '  url: mqtt://127.0.0.1:1883\n  username: gw\n  password: { env: METERD_MQTT_PASSWORD }',
    );
    expect(loadGatewayConfig(write(text), { METERD_MQTT_PASSWORD: 's3cret' }).mqtt.password).toBe('s3cret');
    expect(issues(text)[0]!.message).toBe('environment variable METERD_MQTT_PASSWORD is not set');
  });

  it('an unknown field is reported where it stands', () => {
    const found = issues(minimal.replace('    parity: even', '    parity: even\n    speed: fast'));
    expect(found[0]).toMatchObject({ line: 11, message: 'unknown field "speed"' });
  });

  it('a duration below its minimum is answered with examples that would be accepted there', () => {
    const [tooShort] = issues(minimal.replace('instant: 10s', 'instant: 100ms'));
    expect(tooShort!.message).toBe('"100ms" is not a duration of at least 1s (write e.g. 2s, 10s, 5m)');
    const [timeout] = issues(minimal.replace('    parity: even', '    parity: even\n    timeout: 5ms'));
    expect(timeout!.message).toBe('"5ms" is not a duration of at least 10ms (write e.g. 20ms, 500ms, 2s)');
    // Every example offered passes where it was offered.
    for (const example of ['2s', '10s', '5m']) {
      expect(loadGatewayConfig(write(minimal.replace('instant: 10s', `instant: ${example}`)), {}).polling.intervalsMs.instant).toBe(
        parseDuration(example),
      );
    }
  });

  it('mqtt.reconnectMaxDelay caps the reconnect backoff: 30 s by default, 1 s to 1 h', () => {
    expect(loadGatewayConfig(write(minimal), {}).mqtt.reconnectMaxDelayMs).toBe(30_000);
    const withDelay = (d: string) =>
      minimal.replace('  url: mqtt://127.0.0.1:1883', `  url: mqtt://127.0.0.1:1883\n  reconnectMaxDelay: ${d}`);
    expect(loadGatewayConfig(write(withDelay('10s')), {}).mqtt.reconnectMaxDelayMs).toBe(10_000);
    expect(issues(withDelay('500ms'))[0]).toMatchObject({ line: 6, path: 'mqtt.reconnectMaxDelay' });
    expect(issues(withDelay('2h'))[0]!.message).toMatch(/at most 1h/);
  });
});
