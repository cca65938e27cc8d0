import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig } from '../../src/config/index.js';

const base = `gateway: { id: gw-web, dataDir: ./data }
mqtt: { url: "mqtt://127.0.0.1:1883" }
`;

function load(web: string) {
  const dir = mkdtempSync(join(tmpdir(), 'meterd-webcfg-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(file, base + web);
  return { file, dir, load: () => loadGatewayConfig(file, {}) };
}

function problems(web: string): string[] {
  try {
    load(web).load();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('expected the config to be refused');
}

describe('web: in the config', () => {
  it('defaults to 127.0.0.1:8080, a 30 minute idle session and no metrics', () => {
    expect(load('').load().web).toEqual({ listen: { host: '127.0.0.1', port: 8080 }, sessionIdleMs: 30 * 60_000, metrics: null });
  });

  it('takes host:port, [v6]:port, a bare port, off, and TLS files relative to the config', () => {
    const c = load('web: { listen: "[::1]:8443", tls: { cert: tls/c.pem, key: tls/k.pem }, sessionIdle: 8h, metrics: { listen: 9464 } }\n');
    expect(c.load().web).toEqual({
      listen: { host: '::1', port: 8443 },
      tls: { cert: join(c.dir, 'tls/c.pem'), key: join(c.dir, 'tls/k.pem') },
      sessionIdleMs: 8 * 3_600_000,
      metrics: { host: '127.0.0.1', port: 9464 },
    });
    expect(load('web: { listen: 9000 }\n').load().web.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(load('web: { listen: "off" }\n').load().web.listen).toBeNull();
  });

  it('says what is wrong with an address, an idle time, or metrics reachable from the network', () => {
    expect(problems('web: { listen: "8080:localhost" }\n')).toEqual([
      '3: web.listen: "8080:localhost" is not host:port (write e.g. 127.0.0.1:8080, 0.0.0.0:8443 or [::1]:8080)',
    ]);
    expect(problems('web: { sessionIdle: 5s }\n')).toEqual([
      '3: web.sessionIdle: "5s" is not a duration from 1m to 7d (write e.g. 30m, 8h)',
    ]);
    expect(problems('web: { metrics: { listen: "0.0.0.0:9464" } }\n')).toEqual([
      '3: web.metrics.listen: /metrics has no sign-in: it listens on this machine only (127.0.0.1:PORT or [::1]:PORT)',
    ]);
  });
});
