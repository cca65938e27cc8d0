import { topicSafeId } from '../config/schema.js';
import { UplinkError } from './errors.js';

/** MQTT caps a topic at 65,535 bytes of UTF-8. */
const MAX_TOPIC_BYTES = 65_535;
// Relative topics repeat (one per meter and kind); remembering the validated ones keeps the drain's hot path to a
// map lookup. Bounded so a bug that invents topics cannot grow it without limit.
const CACHE_LIMIT = 10_000;

/** True when `id` can be one topic level: the same rule the config applies to gateway, bus and meter ids. */
export function isTopicSafeId(id: string): boolean {
  return topicSafeId.safeParse(id).success;
}

/**
 * The gateway's topic tree: `<prefix>/<gatewayId>/…`. Everything the gateway publishes or subscribes to is built
 * here, so an id from a config or a command can never add a level, a wildcard or land in another gateway's tree.
 *
 * ```ts
 * const topics = new GatewayTopics('meterd', 'substation-7');
 * topics.status;                                  // 'meterd/substation-7/status'
 * topics.absolute('meters/room-101/readings');    // 'meterd/substation-7/meters/room-101/readings'
 * ```
 */
export class GatewayTopics {
  /** `<prefix>/<gatewayId>`, with no trailing slash. */
  readonly root: string;
  /** Retained birth / last-will topic. */
  readonly status: string;
  readonly #cache = new Map<string, string>();

  constructor(
    readonly prefix: string,
    readonly gatewayId: string,
  ) {
    checkLevels(prefix, 'topic prefix', false);
    if (prefix.startsWith('$')) {
      throw new UplinkError(
        'UPLINK_INVALID_TOPIC',
        `topic prefix "${prefix}" starts with "$", which brokers reserve for themselves ($SYS)`,
      );
    }
    if (!isTopicSafeId(gatewayId)) {
      throw new UplinkError(
        'UPLINK_INVALID_TOPIC',
        `gateway id "${gatewayId}" cannot be a topic level: use letters, digits, dot, dash and underscore, at most 64`,
      );
    }
    this.root = `${prefix}/${gatewayId}`;
    this.status = `${this.root}/status`;
  }

  /** The full topic of a relative one (as stored in the outbox). Throws UPLINK_INVALID_TOPIC for wildcards or empty levels. */
  absolute(relative: string): string {
    const cached = this.#cache.get(relative);
    if (cached !== undefined) return cached;
    checkLevels(relative, 'topic', false);
    const topic = `${this.root}/${relative}`;
    if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES)
      throw new UplinkError('UPLINK_INVALID_TOPIC', `topic ${topic.slice(0, 80)}… is over 65,535 bytes`);
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(relative, topic);
    return topic;
  }

  /** The full topic filter of a relative one; `+` and `#` are allowed as whole levels (`#` only last). */
  filter(relative: string): string {
    checkLevels(relative, 'topic filter', true);
    return `${this.root}/${relative}`;
  }

  /** The part of `topic` below the gateway's root, or undefined when the topic is not in this gateway's tree. */
  relative(topic: string): string | undefined {
    return topic.startsWith(`${this.root}/`) ? topic.slice(this.root.length + 1) : undefined;
  }
}

/** `meters/<meterId>/<leaf>`, the relative topic of a meter's readings, state, … Throws for an id that is not topic-safe. */
export function meterTopic(meterId: string, leaf: 'readings' | 'state'): string {
  if (!isTopicSafeId(meterId)) {
    throw new UplinkError(
      'UPLINK_INVALID_TOPIC',
      `meter id "${meterId}" cannot be a topic level: use letters, digits, dot, dash and underscore`,
    );
  }
  return `meters/${meterId}/${leaf}`;
}

/**
 * Why the gateway will not publish a reply on `topic`, the MQTT 5 response topic a request named, or undefined when it
 * will. A response topic is chosen by whoever sent the request, so it is used only under the prefix the operator
 * allowed (`commands.responseTopicPrefix`; none by default), never on a `$` topic the broker keeps for itself, and
 * never anywhere in the gateways' tree `<topicPrefix>/…`, where a reply could pose as a gateway's status or land on
 * another gateway's `cmd/` as a request.
 *
 * ```ts
 * responseTopicRefusal('station/replies/7', topics, 'station/replies'); // undefined: used
 * responseTopicRefusal('meterd/gw-2/cmd/topup', topics, 'meterd');      // "… lies in the gateways' tree …"
 * ```
 */
export function responseTopicRefusal(topic: string, gateway: GatewayTopics, allowedPrefix: string | undefined): string | undefined {
  if (allowedPrefix === undefined) return 'commands.responseTopicPrefix is not set, so the gateway uses no response topic';
  if (topic.length === 0 || /[+#]/.test(topic) || topic.includes('\u0000') || Buffer.byteLength(topic) > MAX_TOPIC_BYTES) {
    return 'it is not a topic one can publish to (empty, over 65,535 bytes, or holding +, # or NUL)';
  }
  if (topic.startsWith('$')) return 'topics starting with "$" belong to the broker';
  if (topic === gateway.prefix || isBelow(topic, gateway.prefix)) {
    return `it lies in the gateways' tree ${gateway.prefix}/…, where a reply could pose as a gateway's message or another gateway's command`;
  }
  if (!isBelow(topic, allowedPrefix)) return `it is not below commands.responseTopicPrefix ${allowedPrefix}/`;
  return undefined;
}

function isBelow(topic: string, prefix: string): boolean {
  return topic.length > prefix.length + 1 && topic.startsWith(`${prefix}/`);
}

/** MQTT topic matching: `+` is one level, a trailing `#` is that level and everything below (including nothing). */
export function matchesFilter(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

function checkLevels(value: string, what: string, wildcards: boolean): void {
  if (value.length === 0) throw new UplinkError('UPLINK_INVALID_TOPIC', `${what} is empty`);
  if (value.includes('\u0000')) throw new UplinkError('UPLINK_INVALID_TOPIC', `${what} "${value}" holds a NUL character`);
  const levels = value.split('/');
  levels.forEach((level, i) => {
    if (level.length === 0) {
      throw new UplinkError('UPLINK_INVALID_TOPIC', `${what} "${value}" has an empty level (leading, trailing or double "/")`);
    }
    if (!level.includes('+') && !level.includes('#')) return;
    const wholeLevelWildcard = level === '+' || (level === '#' && i === levels.length - 1);
    if (!wildcards || !wholeLevelWildcard) {
      throw new UplinkError(
        'UPLINK_INVALID_TOPIC',
        wildcards
          ? `${what} "${value}" uses "+" or "#" inside a level ("#" may only be the last level)`
          : `${what} "${value}" holds "+" or "#", which are wildcards and cannot appear in a topic`,
      );
    }
  });
}
