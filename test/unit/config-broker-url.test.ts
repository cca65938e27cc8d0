import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { parseBrokerUrl, redactUrl } from '../../src/config/broker-url.js';
import { ConfigError, loadGatewayConfig } from '../../src/config/index.js';

function configFile(url: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-url-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(file, `gateway: { id: gw-url, dataDir: ./data }\nmqtt:\n  url: ${JSON.stringify(url)}\n`);
  return file;
}

async function configCheck(file: string): Promise<{ lines: string[]; error?: { code?: string } }> {
  const lines: string[] = [];
  try {
    const program = await buildProgram({ stdin: Readable.from([]), out: (l) => lines.push(l) }, 'config');
    await program.parseAsync(['config', 'check', '-c', file], { from: 'user' });
    return { lines };
  } catch (err) {
    return { lines, error: err as { code?: string } };
  }
}

describe('the broker url', () => {
  it('accepts the four schemes with a host and a port', () => {
    expect(parseBrokerUrl('mqtt://127.0.0.1:1883')).toEqual({ ok: true, value: { protocol: 'mqtt:', host: '127.0.0.1', port: 1883 } });
    expect(parseBrokerUrl('mqtts://gw7:s3cret@broker.example.com:8883')).toMatchObject({ ok: true, value: { port: 8883 } });
    expect(parseBrokerUrl('ws://broker:80/mqtt')).toMatchObject({ ok: true, value: { protocol: 'ws:', port: 80 } });
    expect(parseBrokerUrl('wss://broker:443/mqtt')).toMatchObject({ ok: true, value: { port: 443 } });
    expect(parseBrokerUrl('mqtt://[::1]:1883')).toMatchObject({ ok: true, value: { host: '[::1]', port: 1883 } });
    expect(parseBrokerUrl('MQTT://Broker:1')).toMatchObject({ ok: true, value: { protocol: 'mqtt:', port: 1 } });
  });

  it('refuses what mqtt.js would quietly send to localhost:1883, and ports outside 1–65535, with the reason', () => {
    const reason = (url: string) => {
      const r = parseBrokerUrl(url);
      return r.ok ? 'accepted' : r.message;
    };
    expect(reason('mqtt:// bad host:99999')).toMatch(/host holds a space/);
    expect(reason('mqtt://:18850')).toMatch(/has no host/);
    expect(reason('mqtt://127.0.0.1:99999')).toMatch(/port 99999 is not a number from 1 to 65535/);
    expect(reason('mqtt://127.0.0.1:0')).toMatch(/port 0 is not a number from 1 to 65535/);
    expect(reason('mqtt://127.0.0.1:')).toMatch(/has no port/);
    expect(reason('mqtt://broker.example.com')).toMatch(/has no port: write it out, often 1883/);
    expect(reason('mqtts://broker.example.com')).toMatch(/often 8883 or 443/);
    expect(reason('mqtt://127.0.0.1:18x')).toMatch(/port 18x is not a number/);
    expect(reason('http://broker:1883')).toMatch(/http:\/\/ is not a broker scheme/);
    expect(reason('broker:1883')).toMatch(/starts with mqtt:\/\//);
    expect(reason('mqtt://127.0.0.1:18850/extra path')).toMatch(/has no path/);
    expect(reason('mqtt://127.0.0.1:18850?x=1')).toMatch(/no \?query/);
  });

  it('never repeats the url (which may hold a password) in its messages', () => {
    for (const url of ['mqtt://u:Secret-1@:1883', 'mqtt://u:Secret-1@h:99999', 'http://u:Secret-1@h:1', 'mqtt://u:Secret-1@h:1/p']) {
      const r = parseBrokerUrl(url);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).not.toContain('Secret-1');
    }
  });

  it('is named with its line by config check, which exits CONFIG_INVALID', async () => {
    const r = await configCheck(configFile('mqtt://127.0.0.1:99999'));
    expect(r.error).toMatchObject({ code: 'CONFIG_INVALID' });
    expect(r.lines).toEqual([
      expect.stringMatching(/meterd\.yaml:3: mqtt\.url: the broker url's port 99999 is not a number from 1 to 65535$/),
    ]);
    expect(() => loadGatewayConfig(configFile('mqtt://:18850'), {})).toThrow(ConfigError);
  });
});

describe('redactUrl', () => {
  it('masks the password and keeps the rest as written', () => {
    expect(redactUrl('mqtt://meterd:UrlPw-SECRET-3@127.0.0.1:18852')).toBe('mqtt://meterd:***@127.0.0.1:18852');
    expect(redactUrl('wss://gw:p%40ss@broker:443/mqtt')).toBe('wss://gw:***@broker:443/mqtt');
    expect(redactUrl('mqtt://u:p@ss@host:1883')).toBe('mqtt://u:***@host:1883');
    expect(redactUrl('mqtt://user@host:1883')).toBe('mqtt://user@host:1883');
    expect(redactUrl('mqtt://host:1883')).toBe('mqtt://host:1883');
    expect(redactUrl('mqtt://host:1883/a@b')).toBe('mqtt://host:1883/a@b');
  });

  it('config check prints the broker url with its password masked', async () => {
    const r = await configCheck(configFile('mqtt://meterd:UrlPw-SECRET-3@127.0.0.1:18852'));
    expect(r.error).toBeUndefined();
    expect(r.lines.join('\n')).not.toContain('UrlPw-SECRET-3');
    expect(r.lines[0]).toContain('broker mqtt://meterd:***@127.0.0.1:18852');
  });
});
