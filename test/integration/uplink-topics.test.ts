// Pure (no broker): kept beside the other uplink specifications it underpins.
import { describe, expect, it } from 'vitest';
import { GatewayTopics, matchesFilter, meterTopic } from '../../src/uplink/topics.js';

describe('gateway topics', () => {
  const topics = new GatewayTopics('meterd', 'substation-7');

  it('puts everything under <prefix>/<gatewayId>/', () => {
    expect(topics.status).toBe('meterd/substation-7/status');
    expect(topics.absolute('meters/room-101/readings')).toBe('meterd/substation-7/meters/room-101/readings');
    expect(topics.filter('meters/+/cmd/req')).toBe('meterd/substation-7/meters/+/cmd/req');
    expect(topics.relative('meterd/substation-7/meters/room-101/state')).toBe('meters/room-101/state');
    expect(topics.relative('meterd/substation-8/status')).toBeUndefined();
    expect(new GatewayTopics('site-a/meterd', 'gw.1').status).toBe('site-a/meterd/gw.1/status');
  });

  it('refuses a relative topic with a wildcard or an empty level', () => {
    for (const bad of ['meters/+/readings', 'meters/#', '/meters/a', 'meters//a', 'meters/a/', '', 'a\u0000b']) {
      expect(() => topics.absolute(bad), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'UPLINK_INVALID_TOPIC' }));
    }
  });

  it('allows + and a final # in a filter, as whole levels only', () => {
    expect(topics.filter('#')).toBe('meterd/substation-7/#');
    for (const bad of ['meters/room+/x', 'meters/#/x', 'meters/a#']) {
      expect(() => topics.filter(bad), bad).toThrow(expect.objectContaining({ code: 'UPLINK_INVALID_TOPIC' }));
    }
  });

  it('refuses ids and prefixes that would change the tree', () => {
    for (const id of ['a/b', 'a+', '#', '', 'room 101', '-lead']) {
      expect(() => new GatewayTopics('meterd', id), id).toThrow(/cannot be a topic level/);
      expect(() => meterTopic(id, 'readings'), id).toThrow(/cannot be a topic level/);
    }
    expect(() => new GatewayTopics('$SYS', 'gw')).toThrow(/reserve/);
    expect(() => new GatewayTopics('meterd/', 'gw')).toThrow(/empty level/);
    expect(meterTopic('room-101', 'state')).toBe('meters/room-101/state');
  });
});

describe('matchesFilter', () => {
  it('follows MQTT: + is one level, a final # is that level and everything below', () => {
    expect(matchesFilter('a/+/c', 'a/b/c')).toBe(true);
    expect(matchesFilter('a/+/c', 'a/b/c/d')).toBe(false);
    expect(matchesFilter('a/+', 'a')).toBe(false);
    expect(matchesFilter('a/#', 'a')).toBe(true);
    expect(matchesFilter('a/#', 'a/b/c')).toBe(true);
    expect(matchesFilter('#', 'a/b')).toBe(true);
    expect(matchesFilter('a/b', 'a/b')).toBe(true);
    expect(matchesFilter('a/b', 'a/c')).toBe(false);
  });
});
