import { z } from 'zod';
import { systemClock, type Clock } from '../../clock.js';
import type { GatewayConfig } from '../../config/load.js';
import { isMeterdError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import {
  enqueue,
  findCommand,
  finishCommand,
  openCommands,
  recordAcceptedCommand,
  type CommandRecord,
  type Store,
  type Tx,
} from '../../store/index.js';
import { UplinkError } from '../errors.js';
import type { InboundMessage, MqttSession, Subscription } from '../session.js';
import { withTimeout } from '../timeout.js';
import { isTopicSafeId, responseTopicRefusal } from '../topics.js';
import { commandAuthPolicy, unsignedRefusal, type CommandAuthPolicy } from './auth-policy.js';
import { isCommandName, parseCommand, requestIdSchema, RESERVED_COMMAND_NAMES, type CommandName, type ParsedCommand } from './schema.js';
import { parseRequestJson } from './request-json.js';
import { canonicalJson, DEFAULT_SIGNATURE_WINDOW_MS, signatureMatches } from './signature.js';
import type { CommandContext, CommandHandlers, CommandOutcome, CommandRejectionCode, CommandReply } from './types.js';

/**
 * What the router needs of the MQTT session: a subscription, the gateway's topic tree, and a direct publish for the
 * replies the store cannot take.
 */
export type CommandSession = Pick<MqttSession, 'subscribe' | 'topics' | 'publish'>;

export interface CommandRouterOptions {
  readonly session: CommandSession;
  readonly store: Store;
  /** Told after every commit that queued a reply (`OutboxDrain.notify`). */
  readonly drain: { notify(): void };
  readonly handlers: CommandHandlers;
  /** True for a meter id of the gateway's config. */
  readonly meterExists: (meterId: string) => boolean;
  /**
   * `config.commands`: the HMAC key (signatures required when set), whether unsigned commands that move money or cut
   * power run without one (`allowUnsigned`), where MQTT 5 response topics may point (`responseTopicPrefix`), and the
   * payload size limit.
   */
  readonly settings: Omit<GatewayConfig['commands'], 'keepForMs'>;
  /** How far a signed request's `ts` may be from the gateway's clock. Default 5 minutes. */
  readonly signatureWindowMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export interface CommandRouterStats {
  /** Messages on `cmd/+`, whatever became of them. */
  readonly received: number;
  readonly accepted: number;
  /** Requests answered from the record of an earlier one with the same request id. */
  readonly duplicates: number;
  /** Refused by the router (validation, authenticity, replay); changed nothing. */
  readonly rejected: number;
  /** Handlers running now. */
  readonly running: number;
}

/**
 * Where a reply goes: the request's MQTT 5 response topic with its correlation data, or `cmd/<command>/result`; or,
 * for a request of the local control socket (`socket`), back to the waiting client and never to the broker.
 */
interface ReplyRoute {
  readonly responseTopic?: string;
  readonly correlationData?: Buffer;
  readonly socket?: true;
}

const SOCKET_ROUTE: ReplyRoute = { socket: true };

/** Who sent a request that came through the local control socket. */
export interface LocalSender {
  /** Recorded with the command; the CLI's `--operator`, default the OS user name. */
  readonly operator: string;
}

/**
 * The router's answer to a local request: the first reply at once (`accepted`, or a final one when the request was
 * refused or answered from an earlier record), and the final one when the handler has finished. `final` resolves
 * `accepted` when the gateway stopped before the handler finished: the command resumes at the next start.
 */
export interface LocalSubmission {
  readonly first: CommandReply;
  readonly final: Promise<CommandReply>;
}

interface Rejection {
  readonly code: CommandRejectionCode;
  readonly message: string;
  readonly field?: string;
}

/** A request that passed the checks that need no database: well-formed, a known command, authentic. */
interface Screened {
  readonly requestId: string;
  readonly command: CommandName;
  /** The request as its schema read it (without `ts` and `signature`). */
  readonly parsed: ParsedCommand;
  /** Canonical JSON without `signature` and `ts`: equal for a duplicate, different for a reused request id. */
  readonly content: string;
}

interface RunningCommand {
  readonly controller: AbortController;
  /** Reply routes of duplicates that arrived while it ran and asked elsewhere than the first: they get the outcome too. */
  readonly extraRoutes: ReplyRoute[];
  /** Local clients waiting for the outcome (the first request's, and duplicates' that came through the socket). */
  readonly waiters: ((reply: CommandReply) => void)[];
  finished: Promise<void>;
}

type Verdict =
  | { readonly kind: 'accepted'; readonly record: CommandRecord; readonly parsed: ParsedCommand }
  | { readonly kind: 'duplicate'; readonly record: CommandRecord }
  | { readonly kind: 'rejected'; readonly rejection: Rejection };

const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const AUTH_CODES: readonly CommandRejectionCode[] = ['UNSIGNED', 'BAD_SIGNATURE', 'STALE', 'REPLAYED'];
const UTF8 = new TextDecoder('utf-8', { fatal: true });

const outcomeSchema = z.union([
  z.object({ status: z.literal('done'), result: z.record(z.string(), z.unknown()) }),
  z.object({
    status: z.enum(['failed', 'rejected']),
    error: z.object({ code: z.string().min(1), message: z.string() }),
    result: z.record(z.string(), z.unknown()).optional(),
  }),
]);

/**
 * The station's commands over MQTT: `<prefix>/<gatewayId>/cmd/<command>` in, replies out through the outbox.
 *
 * Each request is checked in this order, and the first failure is answered `rejected` with a code and a message
 * naming the field, changing nothing: size (before parsing), JSON (with nesting depth and repeated keys,
 * request-json.ts), `requestId`, command name, the presence of `signature` and `ts` (when `commands.hmacKey` is set;
 * without it, a command that moves money or cuts power is `UNSIGNED` unless `commands.allowUnsigned`, see
 * auth-policy.ts), schema, authenticity (signature, then `ts` within the window), de-duplication (a request id seen
 * before with other content is `REPLAYED`), meter, `expiresAt`. A request that passes is recorded `accepted` together with
 * its `accepted` reply in one durable commit, before the broker's PUBACK; then its handler runs, and its outcome is
 * recorded with the `done` / `failed` / `rejected` reply in another. A request id seen before with the same content
 * gets the recorded status (and result) again; its handler never runs twice.
 *
 * ```ts
 * const router = new CommandRouter({ session, store, drain, handlers, settings: config.commands, logger,
 *   meterExists: (id) => config.meters.some((m) => m.id === id) });
 * await router.start();          // resumes commands a restart interrupted, then subscribes to cmd/+
 * …
 * await router.stop();           // before drain.stop(): aborts running handlers; interrupted ones resume at next start
 * ```
 */
export class CommandRouter {
  readonly #session: CommandSession;
  readonly #store: Store;
  readonly #drain: { notify(): void };
  readonly #handlers: CommandHandlers;
  readonly #meterExists: (meterId: string) => boolean;
  readonly #auth: CommandAuthPolicy;
  readonly #responseTopicPrefix: string | undefined;
  readonly #maxPayloadBytes: number;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #running = new Map<string, RunningCommand>();
  #subscription: Subscription | undefined;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #stats = { received: 0, accepted: 0, duplicates: 0, rejected: 0 };

  constructor(options: CommandRouterOptions) {
    const { maxPayloadBytes, hmacKey } = options.settings;
    if (!Number.isSafeInteger(maxPayloadBytes) || maxPayloadBytes < 1)
      throw new TypeError('maxPayloadBytes is not a positive whole number of bytes');
    if (hmacKey !== undefined && hmacKey.length === 0) throw new TypeError('hmacKey is empty; leave it out to run without signatures');
    const windowMs = options.signatureWindowMs ?? DEFAULT_SIGNATURE_WINDOW_MS;
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new TypeError('signatureWindowMs is not greater than 0');
    this.#session = options.session;
    this.#store = options.store;
    this.#drain = options.drain;
    this.#handlers = options.handlers;
    this.#meterExists = options.meterExists;
    this.#auth = commandAuthPolicy(options.settings);
    this.#responseTopicPrefix = options.settings.responseTopicPrefix;
    this.#maxPayloadBytes = maxPayloadBytes;
    this.#windowMs = windowMs;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger).child({ component: 'uplink', part: 'commands' });
  }

  /** The filter the router listens on: `<prefix>/<gatewayId>/cmd/+`. */
  get filter(): string {
    return this.#session.topics.filter('cmd/+');
  }

  /**
   * Resumes the commands a stop or a crash left `accepted` (their handlers run again with `ctx.resumed`), then
   * subscribes to `cmd/+` at QoS 1. Resolves once the broker granted the subscription, or at once when offline.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new UplinkError('UPLINK_CLOSED', 'a command router starts once; make a new one');
    this.#state = 'running';
    const open = this.#store.transaction((tx) => openCommands(tx));
    for (const record of open) this.#resume(record);
    if (open.length > 0) this.#log.info({ count: open.length }, 'resuming commands that were running when the gateway stopped');
    this.#subscription = await this.#session.subscribe(this.filter, this.#onMessage, { qos: 1 });
  }

  /**
   * Aborts running handlers and waits up to `timeoutMs` for them. A handler that throws after the abort leaves its
   * command `accepted`, resumed at the next start. The broker subscription stays, so the persistent session keeps
   * queuing commands while the gateway is down; a request that still arrives is recorded and answered `accepted`,
   * and runs at the next start. Call it before `drain.stop()`, so the last replies go out.
   */
  async stop(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#state = 'stopping';
    const jobs = [...this.#running.values()];
    for (const job of jobs) job.controller.abort(new UplinkError('UPLINK_CLOSED', 'the gateway is stopping'));
    try {
      await withTimeout(
        Promise.allSettled(jobs.map((job) => job.finished)),
        options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
        'running commands',
      );
    } catch {
      this.#log.warn({ running: this.#running.size }, 'commands still running at shutdown stay accepted and resume at the next start');
    }
    this.#state = 'stopped';
  }

  /** Removes the router's subscription at the broker too: commands are no longer queued for this gateway. */
  async unsubscribe(): Promise<void> {
    await this.#subscription?.unsubscribe();
    this.#subscription = undefined;
  }

  stats(): CommandRouterStats {
    return { ...this.#stats, running: this.#running.size };
  }

  readonly #onMessage = (message: InboundMessage): void => {
    this.#stats.received++;
    const receivedAt = this.#clock.now();
    const name = this.#session.topics.relative(message.topic)?.split('/')[1] ?? '';
    const requested = this.#requestedRoute(message, name);
    const screened = this.#screen(message.payload, name, receivedAt, 'mqtt');
    if (!screened.ok) {
      const { requestId, rejection, authenticated } = screened;
      // A sender refused for want of authenticity does not choose where the gateway publishes.
      const trusted = authenticated || (this.#auth.mode !== 'signed' && rejection.code !== 'UNSIGNED');
      const route = trusted ? requested : {};
      this.#reject(name, route, requestId, rejection);
      return;
    }
    const request = screened.request;
    const log = this.#log.child({ requestId: request.requestId, command: request.command });
    let verdict: Verdict;
    try {
      verdict = this.#store.transaction((tx) => this.#decide(tx, request, requested, receivedAt, undefined), { durable: true });
    } catch (error) {
      // Nothing was recorded and no handler runs; the station must still hear it, or it retries for ever.
      log.error({ err: error }, 'the store could not record the command; answering failed INTERNAL directly');
      this.#replyDirect(request.command, requested, log, {
        requestId: request.requestId,
        status: 'failed',
        error: {
          code: 'INTERNAL',
          message: `the gateway could not record the request (${errorText(error)}); nothing was done, send it again later with the same requestId`,
        },
      });
      return;
    }
    this.#drain.notify();
    switch (verdict.kind) {
      case 'rejected':
        this.#stats.rejected++;
        this.#logRejection(log, verdict.rejection);
        return;
      case 'duplicate': {
        this.#stats.duplicates++;
        log.info({ status: verdict.record.status }, 'duplicate request answered from the record of the first');
        return;
      }
      case 'accepted':
        this.#stats.accepted++;
        log.info({ meter: verdict.record.meterId }, 'command accepted');
        if (this.#state === 'running') this.#run(verdict.record, verdict.parsed, false);
        else log.info('the gateway is stopping: the command runs at the next start');
        return;
    }
  };

  /**
   * A request of the local control socket, through the same checks, record, de-duplication, handlers and outcome
   * record as an MQTT one; only the signature is not asked for (the socket's file mode decides who may connect), the
   * sender is recorded as `operator`, and the replies come back here instead of going to the broker.
   *
   * ```ts
   * const { first, final } = router.submit('read', { requestId: 'cli-1', meter: 'room-101', points: ['voltage.a'] },
   *   { operator: 'alice' });
   * // first: { requestId: 'cli-1', status: 'accepted' }; await final: { …, status: 'done', result: { values: … } }
   * ```
   */
  submit(command: string, request: unknown, sender: LocalSender): LocalSubmission {
    this.#stats.received++;
    const receivedAt = this.#clock.now();
    const final = (reply: CommandReply): LocalSubmission => ({ first: reply, final: Promise.resolve(reply) });
    let payload: Buffer;
    try {
      payload = Buffer.from(JSON.stringify(request) ?? 'null', 'utf8');
    } catch (error) {
      this.#stats.rejected++;
      return final({
        requestId: null,
        status: 'rejected',
        error: { code: 'NOT_JSON', message: `the request is not JSON: ${errorText(error)}` },
      });
    }
    const screened = this.#screen(payload, command, receivedAt, 'socket');
    const log = this.#log.child({ command: command.slice(0, 64), origin: 'socket', operator: sender.operator });
    if (!screened.ok) {
      this.#stats.rejected++;
      this.#logRejection(log.child({ requestId: screened.requestId }), screened.rejection);
      return final({ requestId: screened.requestId, status: 'rejected', error: screened.rejection });
    }
    const request_ = screened.request;
    let verdict: Verdict;
    try {
      verdict = this.#store.transaction((tx) => this.#decide(tx, request_, SOCKET_ROUTE, receivedAt, sender), { durable: true });
    } catch (error) {
      log.error({ err: error, requestId: request_.requestId }, 'the store could not record the command; answering failed INTERNAL');
      return final({
        requestId: request_.requestId,
        status: 'failed',
        error: { code: 'INTERNAL', message: `the gateway could not record the request (${errorText(error)}); nothing was done` },
      });
    }
    switch (verdict.kind) {
      case 'rejected':
        this.#stats.rejected++;
        this.#logRejection(log.child({ requestId: request_.requestId }), verdict.rejection);
        return final({ requestId: request_.requestId, status: 'rejected', error: verdict.rejection });
      case 'duplicate': {
        this.#stats.duplicates++;
        const reply = replyOf(verdict.record);
        const running = this.#running.get(verdict.record.requestId);
        if (reply.status !== 'accepted' || running === undefined) return final(reply);
        return { first: reply, final: new Promise((resolve) => running.waiters.push(resolve)) };
      }
      case 'accepted': {
        this.#stats.accepted++;
        log.info({ requestId: request_.requestId, meter: verdict.record.meterId }, 'command accepted');
        const accepted: CommandReply = { requestId: request_.requestId, status: 'accepted' };
        if (this.#state !== 'running') return final(accepted);
        const job = this.#run(verdict.record, verdict.parsed, false);
        return { first: accepted, final: new Promise((resolve) => job.waiters.push(resolve)) };
      }
    }
  }

  /** The checks that need no database, in order. A socket request skips the signature (`door`). */
  #screen(
    raw: Buffer,
    name: string,
    now: number,
    door: 'mqtt' | 'socket',
  ): { ok: false; rejection: Rejection; requestId: string | null; authenticated: boolean } | { ok: true; request: Screened } {
    const reject = (code: CommandRejectionCode, text: string, requestId: string | null = null, field?: string, authenticated = false) => ({
      ok: false as const,
      rejection: field === undefined ? { code, message: text } : { code, message: text, field },
      requestId,
      authenticated,
    });
    if (raw.length > this.#maxPayloadBytes) {
      return reject('PAYLOAD_TOO_LARGE', `the payload is ${raw.length} bytes; commands.maxPayloadBytes allows ${this.#maxPayloadBytes}`);
    }
    const signed = door === 'mqtt' && this.#auth.mode === 'signed';
    let text: string;
    try {
      text = UTF8.decode(raw);
    } catch (error) {
      return reject('NOT_JSON', `the payload is not UTF-8 JSON: ${(error as Error).message}`);
    }
    const json = parseRequestJson(text);
    if (!json.ok && json.kind === 'syntax') return reject('NOT_JSON', `the payload is not UTF-8 JSON: ${json.message}`);
    const payload = json.value;
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      return reject(
        'NOT_AN_OBJECT',
        `the payload is ${Array.isArray(payload) ? 'an array' : `a JSON ${payload === null ? 'null' : typeof payload}`}; a request is a JSON object`,
      );
    }
    const fields = payload as Record<string, unknown>;
    if (!json.ok) {
      // Before anything walks the request (the schema, canonicalJson): refused as parsed, with its id when readable.
      const id = json.field === 'requestId' ? null : readableRequestId(fields.requestId);
      return reject('INVALID_FIELD', json.message, id, json.field);
    }
    if (fields.requestId === undefined)
      return reject('MISSING_REQUEST_ID', 'requestId is missing: every request carries a unique requestId', null, 'requestId');
    const requestIdCheck = requestIdSchema.safeParse(fields.requestId);
    if (!requestIdCheck.success) {
      return reject('INVALID_FIELD', `requestId ${requestIdCheck.error.issues[0]?.message ?? 'is not valid'}`, null, 'requestId');
    }
    const requestId = requestIdCheck.data;
    if ((RESERVED_COMMAND_NAMES as readonly string[]).includes(name)) {
      return reject('UNSUPPORTED_COMMAND', `${name} is reserved for card sales and not implemented by this gateway`, requestId);
    }
    if (!isCommandName(name)) {
      return reject(
        'UNKNOWN_COMMAND',
        `unknown command "${name.slice(0, 64)}"; the commands are topup, relay, read and time-sync`,
        requestId,
      );
    }
    const refusal = door === 'mqtt' ? unsignedRefusal(this.#auth, name) : undefined;
    if (refusal !== undefined) return reject('UNSIGNED', refusal, requestId, 'signature');
    if (signed) {
      if (fields.signature === undefined) {
        return reject(
          'UNSIGNED',
          'signature is missing: this gateway accepts only requests signed with HMAC-SHA256 (docs/mqtt-api.md)',
          requestId,
          'signature',
        );
      }
      if (fields.ts === undefined)
        return reject('UNSIGNED', 'ts is missing: a signed request carries the ISO time it was signed', requestId, 'ts');
    }
    // The schema before anything canonicalises the request (the signature check, the de-duplication key): only a
    // request of known fields, types and sizes is walked further. With a key, `ts` and `signature` are the
    // authenticity check's to judge (a malformed signature is BAD_SIGNATURE); without one the schema checks their form.
    const { signature: _signature, ts: _ts, ...content } = fields;
    const parsed = parseCommand(name, signed ? content : fields);
    if (!parsed.ok) return reject('INVALID_FIELD', parsed.problem.message, requestId, parsed.problem.field);
    if (signed) {
      const key = this.#auth.key;
      if (typeof fields.signature !== 'string' || !signatureMatches(fields, key, fields.signature)) {
        return reject(
          'BAD_SIGNATURE',
          'signature does not match the payload: check the key and the canonical form (docs/mqtt-api.md)',
          requestId,
          'signature',
        );
      }
      const signedAt =
        typeof fields.ts === 'string' && z.iso.datetime({ offset: true }).safeParse(fields.ts).success ? Date.parse(fields.ts) : Number.NaN;
      if (Number.isNaN(signedAt)) {
        return reject('INVALID_FIELD', 'ts must be an ISO 8601 time with a zone, e.g. 2025-03-01T08:00:00Z', requestId, 'ts', true);
      }
      const skewMs = now - signedAt;
      if (Math.abs(skewMs) > this.#windowMs) {
        const direction = skewMs > 0 ? 'old' : 'ahead of the gateway clock';
        return reject(
          'STALE',
          `ts ${String(fields.ts)} is ${Math.round(Math.abs(skewMs) / 1000)} s ${direction}; a signed request must be within ±${Math.round(this.#windowMs / 1000)} s (check the clocks)`,
          requestId,
          'ts',
          true,
        );
      }
    }
    return { ok: true, request: { requestId, command: name, parsed: parsed.value, content: canonicalJson(content) } };
  }

  /** The checks against the record, then meter and expiry; records and replies in the caller's commit. */
  #decide(tx: Tx, request: Screened, route: ReplyRoute, now: number, sender: LocalSender | undefined): Verdict {
    const { requestId, command } = request;
    const existing = findCommand(tx, requestId);
    if (existing !== null) {
      if (existing.command !== command || existing.requestJson !== request.content) {
        const rejection: Rejection = {
          code: 'REPLAYED',
          message: `requestId ${requestId} was already used for a different ${existing.command} request (received ${new Date(existing.receivedAt).toISOString()}); a new request needs a new requestId`,
          field: 'requestId',
        };
        this.#enqueueReply(tx, command, route, { requestId, status: 'rejected', error: rejection });
        return { kind: 'rejected', rejection };
      }
      const running = this.#running.get(requestId);
      if (
        existing.status === 'accepted' &&
        running !== undefined &&
        route.socket !== true &&
        !sameRoute(route, routeOf(existing)) &&
        !running.extraRoutes.some((r) => sameRoute(r, route))
      ) {
        running.extraRoutes.push(route);
      }
      this.#enqueueReply(tx, command, route, replyOf(existing));
      return { kind: 'duplicate', record: existing };
    }
    const { parsed } = request;
    const reject = (rejection: Rejection): Verdict => {
      this.#enqueueReply(tx, command, route, { requestId, status: 'rejected', error: rejection });
      return { kind: 'rejected', rejection };
    };
    const meter = 'meter' in parsed.payload ? parsed.payload.meter : undefined;
    // An allowance row may name a meter removed from the config since its plan: the service answers for it.
    if (
      meter !== undefined &&
      !(command === 'time-sync' && meter === 'all') &&
      command !== 'allowance-resolve' &&
      !this.#meterExists(meter)
    ) {
      return reject({ code: 'UNKNOWN_METER', message: `meter ${meter} is not configured on this gateway`, field: 'meter' });
    }
    const expiresAt = parsed.payload.expiresAt;
    if (expiresAt !== undefined && Date.parse(expiresAt) <= now) {
      return reject({
        code: 'EXPIRED',
        message: `expiresAt ${expiresAt} has passed (gateway time ${new Date(now).toISOString()})`,
        field: 'expiresAt',
      });
    }
    const { record } = recordAcceptedCommand(tx, {
      requestId,
      command,
      meterId: meter ?? null,
      requestJson: request.content,
      responseTopic: route.responseTopic,
      correlationData: route.correlationData,
      ...(sender === undefined ? {} : { origin: 'socket' as const, operator: sender.operator }),
      receivedAt: now,
    });
    this.#enqueueReply(tx, command, route, { requestId, status: 'accepted' });
    return { kind: 'accepted', record, parsed };
  }

  #reject(name: string, route: ReplyRoute, requestId: string | null, rejection: Rejection): void {
    this.#stats.rejected++;
    const log = this.#log.child({ requestId, command: name.slice(0, 64) });
    this.#logRejection(log, rejection);
    if (route.responseTopic === undefined && !isTopicSafeId(name)) {
      log.warn('no reply possible: the command level of the topic is not a valid topic level and no response topic was given');
      return;
    }
    const reply: CommandReply = { requestId, status: 'rejected', error: rejection };
    try {
      this.#store.transaction((tx) => this.#enqueueReply(tx, name, route, reply), { durable: true });
    } catch (error) {
      log.error({ err: error }, 'the store could not take the rejection; publishing it directly');
      this.#replyDirect(name, route, log, reply);
      return;
    }
    this.#drain.notify();
  }

  /**
   * For when the store cannot take a reply: published straight to the broker at QoS 1, not through the outbox, so it
   * is not kept across a broker outage (the station's retry with the same requestId is answered again).
   */
  #replyDirect(command: string, route: ReplyRoute, log: Logger, reply: CommandReply): void {
    let topic: string;
    try {
      topic = route.responseTopic ?? this.#session.topics.absolute(`cmd/${command}/result`);
    } catch (error) {
      log.error({ err: error }, 'no reply possible: no topic to publish it to');
      return;
    }
    let payload: string;
    try {
      payload = JSON.stringify(reply);
    } catch (error) {
      payload = JSON.stringify({
        requestId: reply.requestId,
        status: 'failed',
        error: { code: 'INTERNAL', message: `the ${command} result could not be written as JSON: ${errorText(error)}` },
      });
    }
    const correlationData = route.responseTopic === undefined ? undefined : route.correlationData;
    this.#session.publish(topic, payload, { qos: 1, correlationData }).then(
      () => log.warn({ status: reply.status, code: reply.error?.code }, 'reply published directly, without the store'),
      (error: unknown) => log.error({ err: error }, 'the reply could not be published either; the station has to send the request again'),
    );
  }

  #logRejection(log: Logger, rejection: Rejection): void {
    const fields = { code: rejection.code, field: rejection.field, reason: rejection.message };
    if (AUTH_CODES.includes(rejection.code)) log.warn(fields, 'command rejected: not authentic, stale or replayed');
    else log.info(fields, 'command rejected');
  }

  #enqueueReply(tx: Tx, command: string, route: ReplyRoute, reply: CommandReply): void {
    // A socket request's replies go back on the socket; the station never sees them.
    if (route.socket === true) return;
    enqueue(tx, {
      topic: `cmd/${command}/result`,
      class: 'reply',
      payload: reply,
      responseTopic: route.responseTopic,
      correlationData: route.responseTopic === undefined ? undefined : route.correlationData,
    });
  }

  /** The MQTT 5 response topic the request named, when the gateway may publish there (topics.ts). */
  #requestedRoute(message: InboundMessage, name: string): ReplyRoute {
    const topic = message.responseTopic;
    if (topic === undefined) return {};
    const refusal = responseTopicRefusal(topic, this.#session.topics, this.#responseTopicPrefix);
    if (refusal !== undefined) {
      this.#log.warn(
        { command: name.slice(0, 64), responseTopic: topic.slice(0, 120), reason: refusal },
        "ignoring the request's response topic; replying on cmd/<command>/result",
      );
      return {};
    }
    return message.correlationData === undefined
      ? { responseTopic: topic }
      : { responseTopic: topic, correlationData: message.correlationData };
  }

  #resume(record: CommandRecord): void {
    const name = record.command;
    let parsed: ReturnType<typeof parseCommand> | undefined;
    try {
      parsed = isCommandName(name) ? parseCommand(name, JSON.parse(record.requestJson)) : undefined;
    } catch {
      parsed = undefined;
    }
    if (parsed?.ok === true) {
      this.#run(record, parsed.value, true);
      return;
    }
    this.#log.error({ requestId: record.requestId, command: name }, 'a recorded command cannot be read back; ending it failed');
    this.#finish(
      record,
      {
        status: 'failed',
        error: {
          code: 'NOT_RESUMABLE',
          message: `the ${name} command was interrupted by a restart and its record could not be read back to resume it`,
        },
      },
      undefined,
    );
  }

  #run(record: CommandRecord, parsed: ParsedCommand, resumed: boolean): RunningCommand {
    const controller = new AbortController();
    const job: RunningCommand = { controller, extraRoutes: [], waiters: [], finished: Promise.resolve() };
    this.#running.set(record.requestId, job);
    const ctx: CommandContext = {
      requestId: record.requestId,
      command: record.command,
      receivedAt: record.receivedAt,
      signal: controller.signal,
      resumed,
      origin: record.origin,
      ...(record.operator === null ? {} : { operator: record.operator }),
    };
    job.finished = this.#execute(parsed, ctx)
      .then((outcome) => {
        if (outcome !== undefined) this.#finish(record, outcome, job);
      })
      .finally(() => {
        this.#running.delete(record.requestId);
        // Interrupted by a stop: still accepted, it resumes at the next start; a waiting client hears just that.
        for (const wake of job.waiters.splice(0)) wake({ requestId: record.requestId, status: 'accepted' });
      });
    return job;
  }

  /** Runs the handler; undefined when it gave up because the router is stopping (the command stays accepted). */
  async #execute(parsed: ParsedCommand, ctx: CommandContext): Promise<CommandOutcome | undefined> {
    const log = this.#log.child({ requestId: ctx.requestId, command: ctx.command });
    let outcome: unknown;
    try {
      // Through a promise, so a handler that throws before its first await is caught here too.
      outcome = await Promise.resolve().then(() => callHandler(this.#handlers, parsed, ctx));
    } catch (error) {
      if (ctx.signal.aborted && this.#state !== 'running') {
        log.info('command interrupted by shutdown; it stays accepted and resumes at the next start');
        return undefined;
      }
      // A named gateway error (the bus is down, the meter did not answer) is a fact the station can act on: it keeps
      // its code and is no fault of the gateway. Anything else is a defect: INTERNAL, logged with its stack.
      if (isMeterdError(error)) {
        log.warn({ code: error.code, reason: error.message }, 'command failed');
        return { status: 'failed', error: { code: error.code, message: error.message } };
      }
      log.error({ err: error }, 'command handler failed');
      return { status: 'failed', error: { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) } };
    }
    const checked = outcomeSchema.safeParse(outcome);
    if (!checked.success) {
      log.error({ outcome }, 'command handler returned something that is not a CommandOutcome');
      return {
        status: 'failed',
        error: {
          code: 'INTERNAL',
          message: `the ${ctx.command} handler returned an invalid outcome: ${checked.error.issues[0]?.message ?? ''}`,
        },
      };
    }
    return outcome as CommandOutcome;
  }

  #finish(record: CommandRecord, outcome: CommandOutcome, job: RunningCommand | undefined): void {
    const log = this.#log.child({ requestId: record.requestId, command: record.command });
    const extraRoutes = job?.extraRoutes ?? [];
    const wake = (reply: CommandReply) => {
      for (const w of job?.waiters.splice(0) ?? []) w(reply);
    };
    const commit = (final: CommandOutcome) =>
      this.#store.transaction(
        (tx) => {
          const finished = finishCommand(tx, record.requestId, final);
          for (const route of [routeOf(record), ...extraRoutes]) this.#enqueueReply(tx, record.command, route, replyOf(finished));
          return finished;
        },
        { durable: true },
      );
    let finished: CommandRecord;
    try {
      try {
        finished = commit(outcome);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error;
        // JSON.stringify refused the result (a BigInt, a cycle): the command still needs a final answer.
        log.error({ err: error }, 'the command result is not JSON');
        finished = commit({
          status: 'failed',
          error: { code: 'INTERNAL', message: `the ${record.command} result could not be stored as JSON: ${error.message}` },
        });
      }
    } catch (error) {
      // The outcome happened (a load may be on the meter): say so now; the record stays accepted and resumes at the
      // next start, where the handler finds its own earlier result and answers the same.
      log.error({ err: error }, 'could not record the command outcome; it stays accepted and resumes at the next start');
      const reply: CommandReply = { requestId: record.requestId, status: outcome.status };
      const full =
        outcome.status === 'done' ? { ...reply, result: outcome.result } : { ...reply, error: outcome.error, result: outcome.result };
      for (const route of [routeOf(record), ...extraRoutes]) if (route.socket !== true) this.#replyDirect(record.command, route, log, full);
      wake(full);
      return;
    }
    wake(replyOf(finished));
    this.#drain.notify();
    if (outcome.status === 'done') log.info('command done');
    else log.warn({ status: outcome.status, code: outcome.error.code, reason: outcome.error.message }, `command ${outcome.status}`);
  }
}

function callHandler(handlers: CommandHandlers, parsed: ParsedCommand, ctx: CommandContext): Promise<CommandOutcome> {
  switch (parsed.command) {
    case 'topup':
      return handlers.topup(parsed.payload, ctx);
    case 'relay':
      return handlers.relay(parsed.payload, ctx);
    case 'read':
      return handlers.read(parsed.payload, ctx);
    case 'time-sync':
      return handlers.timeSync(parsed.payload, ctx);
    case 'card-sell':
      return handlers.cardSell(parsed.payload, ctx);
    case 'card-read':
      return handlers.cardRead(parsed.payload, ctx);
    case 'alert-ack':
      return handlers.alertAck(parsed.payload, ctx);
    case 'allowance-run':
      return handlers.allowanceRun(parsed.payload, ctx);
    case 'card-open':
      return handlers.cardOpen(parsed.payload, ctx);
    case 'card-replace':
      return handlers.cardReplace(parsed.payload, ctx);
    case 'allowance-resolve':
      return handlers.allowanceResolve(parsed.payload, ctx);
    case 'recall':
      return handlers.recall(parsed.payload, ctx);
    case 'card-rewrite':
      return handlers.cardRewrite(parsed.payload, ctx);
    case 'card-param':
      return handlers.cardParam(parsed.payload, ctx);
    case 'supply-notice':
      return handlers.supplyNotice(parsed.payload, ctx);
    case 'supply-approve':
      return handlers.supplyApprove(parsed.payload, ctx);
    case 'supply-cancel':
      return handlers.supplyCancel(parsed.payload, ctx);
    case 'supply-restore':
      return handlers.supplyRestore(parsed.payload, ctx);
    case 'meter-replace':
      return handlers.meterReplace(parsed.payload, ctx);
    case 'account-open':
      return handlers.accountOpen(parsed.payload, ctx);
  }
}

function errorText(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}

/** The request id of a request refused as parsed, when it is one the station can match the reply with. */
function readableRequestId(value: unknown): string | null {
  return requestIdSchema.safeParse(value).success ? (value as string) : null;
}

function replyOf(record: CommandRecord): CommandReply {
  const reply: { -readonly [K in keyof CommandReply]: CommandReply[K] } = { requestId: record.requestId, status: record.status };
  if (record.error !== null) reply.error = record.error;
  if (record.result !== null) reply.result = { ...record.result };
  return reply;
}

function routeOf(record: CommandRecord): ReplyRoute {
  if (record.origin === 'socket') return SOCKET_ROUTE;
  if (record.responseTopic === null) return {};
  return record.correlationData === null
    ? { responseTopic: record.responseTopic }
    : { responseTopic: record.responseTopic, correlationData: record.correlationData };
}

function sameRoute(a: ReplyRoute, b: ReplyRoute): boolean {
  if (a.socket !== b.socket) return false;
  if (a.responseTopic !== b.responseTopic) return false;
  if (a.correlationData === undefined || b.correlationData === undefined) return a.correlationData === b.correlationData;
  return a.correlationData.equals(b.correlationData);
}
