/**
 * A gateway's command side for the commands-*.test.ts specifications: a real SQLite store, MqttSession, OutboxDrain
 * and CommandRouter on a real broker, handlers that record their calls (a test double of our own CommandHandlers
 * interface, not of a library), and a station client that sends requests and records replies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import { systemClock, type Clock } from '../../src/clock.js';
import type { GatewayConfig } from '../../src/config/load.js';
import type { Logger } from '../../src/log.js';
import { listCommands, openStore, type CommandRecord, type Store } from '../../src/store/index.js';
import { CommandRouter } from '../../src/uplink/commands/router.js';
import { commandSignature } from '../../src/uplink/commands/signature.js';
import type { CommandContext, CommandHandlers, CommandOutcome, CommandReply } from '../../src/uplink/commands/types.js';
import { OutboxDrain } from '../../src/uplink/drain.js';
import { MqttSession } from '../../src/uplink/session.js';
import { eventually, testMqttSettings, uniqueId } from '../helpers/broker.js';

export const METERS = ['room-101', 'room-102'] as const;

export interface HandlerCall {
  readonly handler: keyof CommandHandlers;
  readonly cmd: Record<string, unknown>;
  readonly ctx: CommandContext;
}

/** What a recording handler answers; by default `done` with `{ handled: <handler>, meter }`. */
export type Respond = (call: HandlerCall) => Promise<CommandOutcome>;

export const answerDone: Respond = async (call) => ({ status: 'done', result: { handled: call.handler, meter: call.cmd.meter } });

/** Handlers that record every call and answer with `respond` (changeable mid-test). */
export class RecordingHandlers implements CommandHandlers {
  readonly calls: HandlerCall[] = [];
  constructor(public respond: Respond = answerDone) {}
  topup = (cmd: object, ctx: CommandContext) => this.#call('topup', cmd, ctx);
  relay = (cmd: object, ctx: CommandContext) => this.#call('relay', cmd, ctx);
  read = (cmd: object, ctx: CommandContext) => this.#call('read', cmd, ctx);
  timeSync = (cmd: object, ctx: CommandContext) => this.#call('timeSync', cmd, ctx);
  cardSell = (cmd: object, ctx: CommandContext) => this.#call('cardSell', cmd, ctx);
  cardRead = (cmd: object, ctx: CommandContext) => this.#call('cardRead', cmd, ctx);
  alertAck = (cmd: object, ctx: CommandContext) => this.#call('alertAck', cmd, ctx);
  allowanceRun = (cmd: object, ctx: CommandContext) => this.#call('allowanceRun', cmd, ctx);
  allowanceResolve = (cmd: object, ctx: CommandContext) => this.#call('allowanceResolve', cmd, ctx);
  cardOpen = (cmd: object, ctx: CommandContext) => this.#call('cardOpen', cmd, ctx);
  cardReplace = (cmd: object, ctx: CommandContext) => this.#call('cardReplace', cmd, ctx);
  meterReplace = (cmd: object, ctx: CommandContext) => this.#call('meterReplace', cmd, ctx);
  recall = (cmd: object, ctx: CommandContext) => this.#call('recall', cmd, ctx);
  cardRewrite = (cmd: object, ctx: CommandContext) => this.#call('cardRewrite', cmd, ctx);
  cardParam = (cmd: object, ctx: CommandContext) => this.#call('cardParam', cmd, ctx);
  supplyNotice = (cmd: object, ctx: CommandContext) => this.#call('supplyNotice', cmd, ctx);
  supplyApprove = (cmd: object, ctx: CommandContext) => this.#call('supplyApprove', cmd, ctx);
  supplyCancel = (cmd: object, ctx: CommandContext) => this.#call('supplyCancel', cmd, ctx);
  supplyRestore = (cmd: object, ctx: CommandContext) => this.#call('supplyRestore', cmd, ctx);
  accountOpen = (cmd: object, ctx: CommandContext) => this.#call('accountOpen', cmd, ctx);
  #call(handler: keyof CommandHandlers, cmd: object, ctx: CommandContext): Promise<CommandOutcome> {
    const call = { handler, cmd: cmd as Record<string, unknown>, ctx };
    this.calls.push(call);
    return this.respond(call);
  }
}

/** A promise the test settles by hand: a handler that waits for it stays "running". */
export function gate(): { readonly promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

export interface SeenReply {
  readonly topic: string;
  readonly reply: CommandReply;
  readonly correlationData?: Buffer;
}

export interface Station {
  readonly replies: SeenReply[];
  /** Publishes a request (an object is sent as JSON). */
  send(
    command: string,
    payload: object | string | Buffer,
    options?: { readonly responseTopic?: string; readonly correlationData?: Buffer },
  ): Promise<void>;
  /** Subscribes to another topic (e.g. a response topic) and records what arrives there too. */
  listen(filter: string): Promise<void>;
  /** Replies for `requestId` (all replies when undefined), in arrival order. */
  repliesFor(requestId: string | null | undefined): SeenReply[];
  waitForReplies(count: number, what: string, requestId?: string | null): Promise<SeenReply[]>;
  close(): Promise<void>;
}

export async function connectStation(url: string, gatewayId: string, protocolVersion: 4 | 5): Promise<Station> {
  const client: MqttClient = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: uniqueId('station'), protocolVersion }, false);
  const replies: SeenReply[] = [];
  client.on('message', (topic, payload, packet) => {
    const correlationData = packet.properties?.correlationData;
    replies.push({ topic, reply: JSON.parse(payload.toString('utf8')) as CommandReply, ...(correlationData ? { correlationData } : {}) });
  });
  await client.subscribeAsync(`meterd/${gatewayId}/cmd/+/result`, { qos: 1 });
  const repliesFor = (requestId: string | null | undefined) =>
    replies.filter((r) => requestId === undefined || r.reply.requestId === requestId);
  return {
    replies,
    async send(command, payload, options = {}) {
      const body = typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload);
      const publishOptions: IClientPublishOptions = { qos: 1 };
      if (options.responseTopic !== undefined) {
        publishOptions.properties = {
          responseTopic: options.responseTopic,
          ...(options.correlationData ? { correlationData: options.correlationData } : {}),
        };
      }
      await client.publishAsync(`meterd/${gatewayId}/cmd/${command}`, body, publishOptions);
    },
    async listen(filter) {
      await client.subscribeAsync(filter, { qos: 1 });
    },
    repliesFor,
    async waitForReplies(count, what, requestId) {
      await eventually(
        () => repliesFor(requestId).length >= count,
        `${what} (${replies.length} replies so far: ${JSON.stringify(replies.map((r) => r.reply))})`,
      );
      return repliesFor(requestId);
    },
    close: () => client.endAsync(),
  };
}

export interface GatewayOptions {
  readonly url: string;
  readonly protocolVersion?: 4 | 5;
  readonly settings?: Partial<GatewayConfig['commands']>;
  readonly handlers?: RecordingHandlers;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Reuse the data folder and gateway id of a gateway that stopped (a restart). */
  readonly restartOf?: TestGateway;
}

export interface TestGateway {
  readonly gatewayId: string;
  readonly dir: string;
  readonly store: Store;
  readonly session: MqttSession;
  readonly drain: OutboxDrain;
  readonly router: CommandRouter;
  readonly handlers: RecordingHandlers;
  /** Every row of the commands table, newest first. */
  commands(): CommandRecord[];
  /** Stops the way the daemon does (router, drain, session, store); the data folder stays for a restart. */
  stop(): Promise<void>;
  /** stop(), then deletes the data folder. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<TestGateway> {
  const gatewayId = options.restartOf?.gatewayId ?? uniqueId('gw');
  const dir = options.restartOf?.dir ?? mkdtempSync(join(tmpdir(), 'meterd-commands-'));
  const store = openStore({ path: join(dir, 'meterd.db'), clock: systemClock });
  const session = new MqttSession({
    mqtt: testMqttSettings(options.url, { protocolVersion: options.protocolVersion ?? 4, clientId: `meterd-${gatewayId}` }),
    gatewayId,
    birth: () => ({ version: '0.0.0-test', startedAt: '2025-03-01T08:00:00.000Z', buses: [] }),
    backoff: { initialMs: 10, maxMs: 100 },
  });
  const drain = new OutboxDrain({ outbox: store.outbox, session });
  const handlers = options.handlers ?? new RecordingHandlers();
  const router = new CommandRouter({
    session,
    store,
    drain,
    handlers,
    meterExists: (id) => (METERS as readonly string[]).includes(id),
    // These specifications are about routing and records: unsigned commands run unless a test asks for the default
    // (commands-auth.test.ts), so allowUnsigned is set here explicitly.
    // The station of these specifications names its MQTT 5 response topics below station/.
    settings: {
      maxPayloadBytes: 16_384,
      responseTopicPrefix: 'station',
      ...options.settings,
      allowUnsigned: options.settings?.allowUnsigned ?? true,
    },
    clock: options.clock,
    logger: options.logger,
  });
  session.start();
  drain.start();
  await router.start();
  await session.waitConnected({ timeoutMs: 10_000 });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await router.stop({ timeoutMs: 2_000 });
      await drain.stop({ timeoutMs: 2_000 });
      await session.close({ timeoutMs: 2_000 });
      store.close();
    })());
  return {
    gatewayId,
    dir,
    store,
    session,
    drain,
    router,
    handlers,
    commands: () => store.transaction((tx) => listCommands(tx)),
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pino logger at `info` whose lines (parsed JSON) land in `lines`. */
export function capturingLogger(): { readonly logger: Logger; readonly lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
  return { logger: pino({ level: 'info' }, stream), lines };
}

/** A request signed the way the station signs it: `ts` now (or as given), then `signature` over the rest. */
export function signed(payload: Record<string, unknown>, key: string, ts: string = new Date().toISOString()): Record<string, unknown> {
  const withTs = { ...payload, ts };
  return { ...withTs, signature: commandSignature(withTs, key) };
}
