import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig } from '../../src/config/index.js';
import { GatewayTopics, responseTopicRefusal } from '../../src/uplink/topics.js';

const topics = new GatewayTopics('meterd', 'gw-1');

describe('responseTopicRefusal', () => {
  it('uses no response topic without a configured prefix', () => {
    expect(responseTopicRefusal('station/replies/1', topics, undefined)).toMatch(/responseTopicPrefix is not set/);
  });

  it('uses a topic below the prefix, and only below it', () => {
    expect(responseTopicRefusal('station/replies/1', topics, 'station/replies')).toBeUndefined();
    expect(responseTopicRefusal('station/replies/a/b', topics, 'station/replies')).toBeUndefined();
    expect(responseTopicRefusal('station/replies', topics, 'station/replies')).toMatch(/not below commands\.responseTopicPrefix/);
    expect(responseTopicRefusal('station/repliesX/1', topics, 'station/replies')).toMatch(/not below/);
    expect(responseTopicRefusal('other/1', topics, 'station/replies')).toMatch(/not below/);
  });

  it("never the gateway's own topics, another gateway's cmd/ or status, nor the broker's $ topics, whatever the prefix", () => {
    for (const topic of [
      'meterd/gw-1/status',
      'meterd/gw-1/cmd/read',
      'meterd/gw-1/cmd/read/result',
      'meterd/gw-2/cmd/topup',
      'meterd/gw-2/status',
      'meterd',
    ]) {
      expect(responseTopicRefusal(topic, topics, 'meterd')).toMatch(/gateways' tree meterd\//);
    }
    expect(responseTopicRefusal('$SYS/pwned', topics, '$SYS')).toMatch(/belong to the broker/);
  });

  it('never a topic one cannot publish to', () => {
    for (const topic of ['', 'station/+/x', 'station/#', 'station/a\u0000b', `station/${'x'.repeat(65_536)}`]) {
      expect(responseTopicRefusal(topic, topics, 'station')).toMatch(/not a topic one can publish to/);
    }
  });
});

describe('commands.responseTopicPrefix in the config', () => {
  const load = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'meterd-rtp-'));
    const file = join(dir, 'meterd.yaml');
    writeFileSync(
      file,
      `gateway: { id: gw-1 }\nmqtt: { url: "mqtt://127.0.0.1:1883" }\ncommands:\n  responseTopicPrefix: ${JSON.stringify(prefix)}\n`,
    );
    try {
      return loadGatewayConfig(file, {}).commands.responseTopicPrefix;
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}: ${i.path}: ${i.message}`);
      throw err;
    }
  };

  it('is a topic outside the gateways tree', () => {
    expect(load('station/replies')).toBe('station/replies');
    expect(load('meterd/station')).toEqual([
      expect.stringMatching(/^4: commands\.responseTopicPrefix: meterd\/station lies in the gateways' tree meterd\//),
    ]);
    expect(load('meterd')).toEqual([expect.stringMatching(/lies in the gateways' tree/)]);
    expect(load('station/#')).toEqual([expect.stringMatching(/no \+, # or NUL/)]);
    expect(load('$SYS')).toEqual([expect.stringMatching(/not starting with \$/)]);
    expect(load('station/')).toEqual([expect.stringMatching(/no empty level/)]);
  });
});
