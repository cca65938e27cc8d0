import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import { systemClock, type Clock } from '../clock.js';
import { parseBrokerUrl, redactUrl } from '../config/broker-url.js';
import type { BrokerEndpoint, GatewayConfig } from '../config/load.js';
import { silentLogger, type Logger } from '../log.js';
import { ReconnectBackoff, type BackoffOptions } from './backoff.js';
import { UplinkError } from './errors.js';
import { OFFLINE_SHUTDOWN, OFFLINE_WILL, onlineStatus, type BirthInfo } from './status.js';
import { withTimeout } from './timeout.js';
import { GatewayTopics, matchesFilter } from './topics.js';

/** The mqtt section; `brokers` may be left out for one broker at `url` (tests, tools). */
export type MqttSettings = Omit<GatewayConfig['mqtt'], 'brokers'> & { readonly brokers?: readonly BrokerEndpoint[] };

/** Runs `reconnect` after `delayMs`; returns a function that cancels it. Injected so tests can see the delays. */
export type ReconnectScheduler = (delayMs: number, reconnect: () => void) => () => void;

export interface MqttSessionOptions {
  readonly mqtt: MqttSettings;
  readonly gatewayId: string;
  /** Asked at every connect, so the retained birth message carries the bus states of that moment. */
  readonly birth: () => BirthInfo;
  readonly logger?: Logger;
  /** Decides whether a connection held long enough to reset the backoff. */
  readonly clock?: Clock;
  readonly backoff?: BackoffOptions;
  readonly scheduleReconnect?: ReconnectScheduler;
  /** A connection that stayed up this long starts the next outage from the first delay again. Default 30 s. */
  readonly stableAfterMs?: number;
  /** TCP + TLS + CONNACK deadline per attempt. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** MQTT 5: how long the broker keeps the session (subscriptions, queued commands) after a disconnect. Default 1 day. */
  readonly sessionExpirySeconds?: number;
}

export interface PublishOptions {
  /** Default 1. */
  readonly qos?: 0 | 1 | 2;
  readonly retain?: boolean;
  /** MQTT 5: correlation data to send with the message (an answer to a request); left out on MQTT 3.1.1. */
  readonly correlationData?: Buffer;
}

export interface InboundMessage {
  /** The full topic, e.g. `meterd/substation-7/meters/room-101/cmd/req`. */
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  /** MQTT 5 request/response: where the sender wants the answer. */
  readonly responseTopic?: string;
  /** MQTT 5 request/response: to be echoed in the answer. */
  readonly correlationData?: Buffer;
}

/**
 * Called for each message on a subscribed filter. The broker's PUBACK waits until the promise settles, so a handler
 * that records the message before resolving gets it again after a crash. It runs on the receive path (later packets,
 * including PUBACKs for the outbox, wait behind it): keep it short.
 */
export type MessageHandler = (message: InboundMessage) => void | Promise<void>;

export interface Subscription {
  readonly filter: string;
  /** Stops calling the handler; unsubscribes at the broker when it was the filter's last handler. */
  unsubscribe(): Promise<void>;
}

export interface MqttSessionEvents {
  connected: [{ readonly sessionPresent: boolean }];
  disconnected: [{ readonly reason: string }];
}

const MAX_RECEIVE_MAXIMUM = 65_535;
const DEFAULT_STABLE_AFTER_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_SESSION_EXPIRY_S = 86_400;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** A connection the broker closes within this of accepting it was refused in all but name. */
const QUICK_DROP_MS = 2_000;
/** Quick drops in a row after which the gateway gives up its old session. */
const QUICK_DROPS_FOR_NEW_SESSION = 3;
/** The pause before trying the next node of a cluster: the next node is another broker, not the one that just failed. */
const FAILOVER_DELAY_MS = 100;

const defaultScheduler: ReconnectScheduler = (delayMs, reconnect) => {
  const timer = setTimeout(reconnect, delayMs);
  return () => clearTimeout(timer);
};

interface Pending {
  reject(error: UplinkError): void;
}

/** One TCP connection and the mqtt.js client that owns it. A reconnect makes a new one. */
interface Link {
  readonly client: MqttClient;
  /** Requests sent on this link and not yet answered; rejected when the link dies. */
  readonly pending: Set<Pending>;
  up: boolean;
  closed: boolean;
  connectedAt: number;
  receiveMaximum: number;
  lastError: string | undefined;
}

interface FilterEntry {
  readonly qos: 0 | 1 | 2;
  readonly handlers: Set<MessageHandler>;
}

/**
 * The gateway's MQTT connection: persistent session, retained birth and last will, capped exponential backoff.
 *
 * Each connection attempt gets a fresh mqtt.js client with `reconnectPeriod: 0`; the session schedules the next
 * attempt itself. mqtt.js only knows a fixed reconnect period, and a client that is reused keeps its unacknowledged
 * QoS 1 publishes in memory and resends them on reconnect, with promises that never settle when `clean: false`.
 * Dropping the client instead rejects everything in flight (UPLINK_CONNECTION_LOST), and the outbox drain re-reads
 * the outbox, which is the only copy that matters (duplicates allowed, losses not).
 *
 * ```ts
 * const session = new MqttSession({ mqtt: config.mqtt, gatewayId: config.gateway.id, logger,
 *   birth: () => ({ version, startedAt, buses: arbiters.map(busStatus) }) });
 * session.start();
 * await session.waitConnected({ timeoutMs: 10_000 });
 * await session.publish(session.topics.absolute('gateway/hello'), '{}');
 * await session.close();   // retained { state: 'offline', reason: 'shutdown' }, then DISCONNECT
 * ```
 */
export class MqttSession extends EventEmitter<MqttSessionEvents> {
  readonly topics: GatewayTopics;
  readonly #settings: MqttSettings;
  readonly #clientOptions: IClientOptions;
  readonly #endpoints: readonly BrokerEndpoint[];
  /** The node dialled last (or connected now). */
  #index = 0;
  /** Nodes tried since the last connection that held: a whole round of failures waits the backoff. */
  #failedInRound = 0;
  /** Connections in a row that the broker closed right after accepting them. */
  #quickDrops = 0;
  /** Sessions given up because their broker node is gone: the client id then carries `-r<n>`. */
  #sessionsAbandoned = 0;
  readonly #birth: () => BirthInfo;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #backoff: ReconnectBackoff;
  readonly #schedule: ReconnectScheduler;
  readonly #stableAfterMs: number;
  readonly #subscriptions = new Map<string, FilterEntry>();
  #link: Link | undefined;
  #cancelReconnect: (() => void) | undefined;
  #started = false;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(options: MqttSessionOptions) {
    super();
    const settings = options.mqtt;
    this.#endpoints =
      settings.brokers !== undefined && settings.brokers.length > 0
        ? settings.brokers
        : [
            {
              url: settings.url,
              username: settings.username,
              password: settings.password,
              ca: settings.ca,
              cert: settings.cert,
              key: settings.key,
            },
          ];
    for (const e of this.#endpoints) {
      const address = parseBrokerUrl(e.url);
      if (!address.ok) throw new TypeError(`mqtt url ${redactUrl(e.url)}: ${address.message}`);
    }
    if (settings.protocolVersion !== 4 && settings.protocolVersion !== 5) throw new TypeError('protocolVersion is not 4 or 5');
    this.topics = new GatewayTopics(settings.topicPrefix, options.gatewayId);
    this.#settings = settings;
    this.#birth = options.birth;
    this.#log = (options.logger ?? silentLogger).child({
      component: 'uplink',
      clientId: settings.clientId,
    });
    this.#clock = options.clock ?? systemClock;
    this.#backoff = new ReconnectBackoff({ maxMs: settings.reconnectMaxDelayMs, ...options.backoff });
    this.#schedule = options.scheduleReconnect ?? defaultScheduler;
    this.#stableAfterMs = options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS;
    this.#clientOptions = {
      clientId: settings.clientId,
      keepalive: settings.keepalive,
      protocolVersion: settings.protocolVersion,
      // A persistent session keeps our subscriptions, and QoS 1 commands sent to us while offline, at the broker.
      clean: false,
      reconnectPeriod: 0,
      resubscribe: false,
      queueQoSZero: false,
      // mqtt-packet's default pre-builds a Buffer for each of the 65,536 packet ids: 6 MB of heap on a gateway that
      // publishes a few messages a second (issue 18). Built per packet instead.
      writeCache: false,
      connectTimeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      will: { topic: this.topics.status, payload: Buffer.from(JSON.stringify(OFFLINE_WILL)), qos: 1, retain: true },
      properties:
        settings.protocolVersion === 5 ? { sessionExpiryInterval: options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_S } : undefined,
    };
    // Read now: a missing TLS file is a start-up error, not a reconnect loop.
    this.#tls = this.#endpoints.map((e) => ({
      ca: readTlsFile(e.ca, 'ca'),
      cert: readTlsFile(e.cert, 'cert'),
      key: readTlsFile(e.key, 'key'),
    }));
  }

  readonly #tls: readonly { ca?: Buffer; cert?: Buffer; key?: Buffer }[];

  /** The client id of the session: `mqtt.clientId`, with `-r<n>` once a session was given up to a lost node. */
  get clientId(): string {
    return this.#sessionsAbandoned === 0 ? this.#settings.clientId : `${this.#settings.clientId}-r${this.#sessionsAbandoned}`;
  }

  /** The broker node connected to now, or dialled last (the password masked). */
  get brokerUrl(): string {
    return redactUrl(this.#endpoints[this.#index]!.url);
  }

  /** True between CONNACK and the loss of the connection (`connected` is emitted once subscriptions are renewed). */
  get connected(): boolean {
    return this.#link?.up === true;
  }

  /** How many QoS 1/2 publishes the broker accepts in flight (MQTT 5 CONNACK Receive Maximum; 65,535 otherwise). */
  get receiveMaximum(): number {
    return this.#link?.receiveMaximum ?? MAX_RECEIVE_MAXIMUM;
  }

  /** Starts connecting; reconnects on its own from then on until close(). */
  start(): void {
    if (this.#closing) throw new UplinkError('UPLINK_CLOSED', 'the MQTT session was closed; make a new one');
    if (this.#started) return;
    this.#started = true;
    this.#dial();
  }

  /** Resolves at once when connected, otherwise at the next `connected`. */
  waitConnected(options: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        this.off('connected', onConnected);
        if (timer !== undefined) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve();
      };
      const onConnected = () => done();
      const onAbort = () =>
        done(new UplinkError('UPLINK_NOT_CONNECTED', 'waiting for the broker connection was aborted', { cause: options.signal?.reason }));
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () => done(new UplinkError('UPLINK_TIMEOUT', `no connection to ${this.brokerUrl} within ${options.timeoutMs} ms`)),
              options.timeoutMs,
            );
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.on('connected', onConnected);
    });
  }

  /**
   * Publishes on the current connection. Resolves when the broker has acknowledged (PUBACK for QoS 1, PUBCOMP for
   * QoS 2, written for QoS 0). Rejects with UPLINK_NOT_CONNECTED when offline (nothing is queued in memory: the
   * outbox is the queue), UPLINK_CONNECTION_LOST when the connection drops first, UPLINK_REJECTED on an MQTT 5 error.
   */
  publish(topic: string, payload: string | Buffer, options: PublishOptions = {}): Promise<void> {
    const link = this.#link;
    if (link === undefined || !link.up) {
      return Promise.reject(new UplinkError('UPLINK_NOT_CONNECTED', `not connected to ${this.brokerUrl}; cannot publish ${topic}`));
    }
    const properties =
      options.correlationData !== undefined && this.#settings.protocolVersion === 5
        ? { correlationData: options.correlationData }
        : undefined;
    return this.#request<void>(link, (settle) =>
      link.client.publish(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false, properties }, (error) => settle(error)),
    );
  }

  /**
   * Calls `handler` for messages on `filter` (a full topic filter, e.g. `session.topics.filter('meters/+/cmd/req')`),
   * now and after every reconnect. Resolves once the broker granted the subscription, or at once when offline: it is
   * then made at the next connect, before `connected` is emitted.
   */
  async subscribe(filter: string, handler: MessageHandler, options: { readonly qos?: 0 | 1 | 2 } = {}): Promise<Subscription> {
    if (this.#closing) throw new UplinkError('UPLINK_CLOSED', `the MQTT session is closed; cannot subscribe to ${filter}`);
    const existing = this.#subscriptions.get(filter);
    const entry = existing ?? { qos: options.qos ?? 1, handlers: new Set<MessageHandler>() };
    entry.handlers.add(handler);
    this.#subscriptions.set(filter, entry);
    const link = this.#link;
    if (existing === undefined && link?.up === true) await this.#sendSubscribe(link, [[filter, entry]]);
    return {
      filter,
      unsubscribe: async () => {
        entry.handlers.delete(handler);
        if (entry.handlers.size > 0 || this.#subscriptions.get(filter) !== entry) return;
        this.#subscriptions.delete(filter);
        const current = this.#link;
        if (current?.up === true) {
          await this.#request<void>(current, (settle) => current.client.unsubscribe(filter, (error) => settle(error ?? undefined)));
        }
      },
    };
  }

  /**
   * Clean shutdown: publishes the retained `{ state: 'offline', reason: 'shutdown' }`, then sends DISCONNECT so the
   * broker drops the will. Stop the outbox drain first, so its last PUBACKs are not cut off. Bounded by `timeoutMs`.
   */
  close(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    this.#closed ??= this.#close(options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
    return this.#closed;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#cancelReconnect?.();
    this.#cancelReconnect = undefined;
    const link = this.#link;
    if (link === undefined) return;
    const deadline = this.#clock.now() + timeoutMs;
    const remaining = () => Math.max(1, deadline - this.#clock.now());
    if (link.up) {
      try {
        await withTimeout(
          this.publish(this.topics.status, JSON.stringify(OFFLINE_SHUTDOWN), { qos: 1, retain: true }),
          remaining(),
          'publishing the shutdown status',
        );
      } catch (error) {
        this.#log.warn({ err: error }, 'the shutdown status was not acknowledged; the broker will publish the last will instead');
      }
      try {
        await withTimeout(link.client.endAsync(false), remaining(), 'MQTT DISCONNECT');
      } catch (error) {
        this.#log.warn({ err: error }, 'clean disconnect failed; dropping the connection');
        link.client.end(true);
      }
    } else {
      link.client.end(true);
    }
    this.#onClose(link);
    this.#log.info('MQTT session closed');
  }

  #dial(): void {
    this.#cancelReconnect = undefined;
    if (this.#closing) return;
    const endpoint = this.#endpoints[this.#index]!;
    const tls = this.#tls[this.#index]!;
    const client = mqtt.connect(endpoint.url, {
      ...this.#clientOptions,
      clientId: this.clientId,
      username: endpoint.username,
      password: endpoint.password,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
    });
    const link: Link = {
      client,
      pending: new Set(),
      up: false,
      closed: false,
      connectedAt: 0,
      receiveMaximum: MAX_RECEIVE_MAXIMUM,
      lastError: undefined,
    };
    this.#link = link;
    client.handleMessage = (packet, done) => {
      this.#dispatch(packet).then(() => done());
    };
    client.on('connect', (connack) => this.#onConnect(link, connack));
    client.on('error', (error) => {
      link.lastError = error.message;
      // mqtt.js reports a packet it cannot parse (e.g. a PUBACK reason code MQTT 5 does not define, which Mosquitto 2.0
      // sends for an oversized message) and keeps reading a byte stream that is now out of step, answering nothing
      // until the keepalive gives up. Drop the connection instead: the reconnect starts clean, and the outbox drain
      // finds the message that caused it.
      if (link.up && !link.closed) {
        this.#log.warn({ err: error }, 'protocol error on the MQTT connection; dropping it');
        client.end(true);
      }
    });
    client.on('disconnect', (packet) => {
      link.lastError = `the broker sent DISCONNECT (reason code ${packet.reasonCode ?? 0})`;
    });
    client.on('close', () => this.#onClose(link));
  }

  #onConnect(link: Link, connack: IConnackPacket): void {
    if (link.closed || this.#link !== link) return;
    link.up = true;
    link.connectedAt = this.#clock.now();
    // A command reply or a PUBACK is one small packet: send it now, not after Nagle's ~40 ms wait for more.
    (link.client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    link.receiveMaximum = connack.properties?.receiveMaximum ?? MAX_RECEIVE_MAXIMUM;
    this.#log.info(
      { broker: this.brokerUrl, sessionPresent: connack.sessionPresent, protocolVersion: this.#settings.protocolVersion },
      'connected to the MQTT broker',
    );
    void this.#publishBirth();
    const announce = () => {
      if (this.#link === link && link.up) this.emit('connected', { sessionPresent: connack.sessionPresent });
    };
    if (this.#subscriptions.size === 0) {
      announce();
      return;
    }
    // Subscribing again is harmless when the session survived, and repairs it when the broker lost it (restart
    // without persistence, or session expiry). `connected` waits for the SUBACK, so whoever reacts to it knows the
    // broker routes our topics to us from then on.
    this.#sendSubscribe(link, [...this.#subscriptions]).then(announce, (error: unknown) => {
      this.#log.error({ err: error }, 'could not renew the subscriptions after connecting');
      announce();
    });
  }

  #onClose(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    const wasUp = link.up;
    link.up = false;
    const lost = new UplinkError(
      'UPLINK_CONNECTION_LOST',
      `the connection to ${this.brokerUrl} closed before the broker answered${link.lastError ? ` (${link.lastError})` : ''}`,
    );
    for (const pending of link.pending) pending.reject(lost);
    link.pending.clear();
    // The dead client must not resend anything on its own, nor report errors nobody listens to.
    link.client.on('error', () => {});
    link.client.end(true);
    if (this.#link === link) this.#link = undefined;

    const reason = this.#closing ? 'shutdown' : (link.lastError ?? (wasUp ? 'connection closed' : 'connection closed before CONNACK'));
    const broker = this.brokerUrl;
    if (wasUp) {
      if (this.#closing) this.#log.info({ broker }, 'disconnected from the MQTT broker (shutdown)');
      else this.#log.warn({ broker, reason }, 'lost the MQTT connection');
      this.emit('disconnected', { reason });
    }
    if (this.#closing) return;
    const heldMs = wasUp ? this.#clock.now() - link.connectedAt : 0;
    if (wasUp && heldMs >= this.#stableAfterMs) {
      this.#backoff.reset();
      this.#failedInRound = 0;
    }
    if (wasUp && heldMs >= QUICK_DROP_MS) this.#quickDrops = 0;
    // Accepted, then closed at once, on every node of a cluster in turn: a clustered broker whose copy of our session lives on a
    // node that is down (RabbitMQ keeps an MQTT session's queue on one node and refuses the session elsewhere, clean
    // or not, while that node is away). Waiting for that node is what a gateway must not do; a session under another
    // client id starts on a node that is up.
    if (
      this.#endpoints.length > 1 &&
      wasUp &&
      heldMs < QUICK_DROP_MS &&
      ++this.#quickDrops >= Math.max(QUICK_DROPS_FOR_NEW_SESSION, this.#endpoints.length)
    ) {
      this.#quickDrops = 0;
      this.#sessionsAbandoned++;
      this.#log.warn(
        { broker, clientId: this.clientId },
        'the broker keeps closing the connection right after accepting it (our session is on a node that is down): continuing with a new session under this client id; commands queued in the old session are not received, subscriptions are made again, the outbox sends what was not acknowledged',
      );
    }
    // A cluster is one broker: the next node is tried at once, and only a whole round of failures waits the backoff.
    const n = this.#endpoints.length;
    this.#failedInRound++;
    this.#index = (this.#index + 1) % n;
    const delayMs = n > 1 && this.#failedInRound % n !== 0 ? FAILOVER_DELAY_MS : this.#backoff.next();
    const next = this.brokerUrl;
    if (wasUp) this.#log.info({ broker: next, delayMs, attempt: this.#backoff.attempts }, 'reconnecting to the MQTT broker');
    else
      this.#log.warn({ broker, next, delayMs, attempt: this.#backoff.attempts, reason }, 'cannot connect to the MQTT broker; trying again');
    this.#cancelReconnect = this.#schedule(delayMs, () => this.#dial());
  }

  /** Publishes the retained online status again, now, when something it carries changed (`storage`, `health`). */
  refreshStatus(): void {
    if (this.connected) void this.#publishBirth();
  }

  async #publishBirth(): Promise<void> {
    let payload: string;
    try {
      payload = JSON.stringify(onlineStatus(this.#birth()));
    } catch (error) {
      this.#log.error({ err: error }, 'the birth callback failed; no online status published');
      return;
    }
    try {
      await this.publish(this.topics.status, payload, { qos: 1, retain: true });
    } catch (error) {
      this.#log.warn({ err: error }, 'the online status was not acknowledged; it goes again at the next connect');
    }
  }

  async #sendSubscribe(link: Link, entries: [string, FilterEntry][]): Promise<void> {
    const map = Object.fromEntries(entries.map(([filter, entry]) => [filter, { qos: entry.qos }]));
    const granted = await this.#request<{ topic: string; qos: number }[]>(link, (settle) =>
      link.client.subscribe(map, (error, grants) => settle(error ?? undefined, grants)),
    );
    const refused = granted.filter((grant) => grant.qos >= 128).map((grant) => grant.topic);
    if (refused.length > 0) {
      throw new UplinkError(
        'UPLINK_REJECTED',
        `the broker refused the subscription to ${refused.join(', ')}; check its ACL for ${this.#settings.clientId}`,
      );
    }
  }

  /** Sends a request on `link` and ties its answer to the link's life, so it settles even if the link dies. */
  #request<T>(link: Link, send: (settle: (error: Error | undefined, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = { reject };
      link.pending.add(pending);
      send((error, value) => {
        if (!link.pending.delete(pending)) return;
        if (error) reject(toUplinkError(error));
        else resolve(value as T);
      });
    });
  }

  async #dispatch(packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const message: InboundMessage = {
      topic,
      payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      responseTopic: packet.properties?.responseTopic,
      correlationData: packet.properties?.correlationData,
    };
    for (const [filter, entry] of this.#subscriptions) {
      if (!matchesFilter(filter, topic)) continue;
      for (const handler of entry.handlers) {
        try {
          await handler(message);
        } catch (error) {
          // Acknowledged anyway: a message that breaks its handler would otherwise come back after every reconnect.
          this.#log.error({ err: error, topic }, 'a message handler failed');
        }
      }
    }
  }
}

function toUplinkError(error: Error): UplinkError {
  if (error instanceof UplinkError) return error;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'number') return new UplinkError('UPLINK_REJECTED', `${error.message} (reason code ${code})`, { cause: error });
  return new UplinkError('UPLINK_CONNECTION_LOST', error.message, { cause: error });
}

function readTlsFile(path: string | undefined, what: string): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UplinkError('UPLINK_TLS_FILE', `cannot read the TLS ${what} file ${path}: ${(error as Error).message}`, { cause: error });
  }
}
