import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import compress from '@fastify/compress';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { repeat, type Clock, type Timers } from '../clock.js';
import { isLocalAddress, type ListenAddress, type WebConfig } from '../config/index.js';
import { MeterdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { UserRole } from '../services/users.js';
import type { CommandReply } from '../uplink/commands/types.js';
import { pageShell, STATIC_DIR, vendorFiles } from './assets.js';
import type { ConsoleBackend, MeterRow } from './backend.js';
import { registerApi } from './api.js';
import { type ApiContext, overviewOf, SESSION_COOKIE } from './context.js';
import { type Session, Sessions, sameToken } from './sessions.js';

export { SESSION_COOKIE };

/** How long a web request waits for a command's final reply before it answers `accepted` (the command goes on). */
export const COMMAND_WAIT_MS = 25_000;
const TICK_MS = 1_000;
const HEARTBEAT_TICKS = 15;

export class WebError extends MeterdError<'WEB_NO_USERS'> {
  override readonly name = 'WebError';
}

export interface WebConsoleOptions {
  readonly web: WebConfig;
  readonly backend: ConsoleBackend;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly timers: Timers;
}

export interface WebConsole {
  /** http(s)://host:port/ of the console; undefined when `web.listen: off`. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    session?: Session;
  }
  interface FastifyContextConfig {
    /** Roles allowed; absent: any signed-in user. */
    roles?: readonly UserRole[];
    /** Reachable without a session (the sign-in itself). */
    public?: boolean;
  }
}

/**
 * The local web console (docs/web-console.md): fastify serving the pages (ES modules, no build step), the JSON API
 * behind them, and server-sent events for live updates. Every route but the sign-in needs a session; every
 * state-changing request needs the session's CSRF token; roles are checked here, on the server.
 */
export async function startWebConsole(opts: WebConsoleOptions): Promise<WebConsole> {
  const { web, backend } = opts;
  const log = opts.logger.child({ component: 'web' });
  if (web.listen !== null && !isLocalAddress(web.listen) && backend.users.count() === 0)
    throw new WebError(
      'WEB_NO_USERS',
      `web.listen ${web.listen.host}:${web.listen.port} reaches beyond this machine, but no console user exists: ` +
        'add one first (meterd user add NAME --role admin), or listen on 127.0.0.1',
    );
  if (web.listen === null) return { url: undefined, close: async () => {} };
  const sessions = new Sessions({ clock: opts.clock, idleMs: web.sessionIdleMs, records: backend.sessions });
  const https = web.tls ? { key: readFileSync(web.tls.key), cert: readFileSync(web.tls.cert) } : null;
  const app: FastifyInstance = (
    https ? Fastify({ https, logger: false, bodyLimit: 32 * 1024 }) : Fastify({ logger: false, bodyLimit: 32 * 1024 })
  ) as FastifyInstance;
  const shell = pageShell();
  const vendor = vendorFiles();

  await app.register(cookie);
  // Before the static files (the plugin's rule): the modules, the CSS and the JSON answers go out compressed to a
  // browser that asks (brotli at the plugin's quality 4, else gzip), each answer as it is made; the live-update stream
  // is hijacked and never compressed. Request bodies are small JSON: no inflating of compressed requests.
  await app.register(compress, { global: true, encodings: ['br', 'gzip', 'deflate'], globalDecompression: false });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('content-security-policy', shell.csp);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) log.error({ err, url: req.url }, 'web request failed');
    const message =
      status === 415
        ? 'send the request as JSON (content-type: application/json)'
        : status === 400
          ? `the request could not be read: ${err.message}`
          : status === 413
            ? 'the request is too large'
            : 'the console could not answer; the error is in the gateway log';
    void reply.code(status).send({ error: { code: status === 500 ? 'INTERNAL' : (err.code ?? 'BAD_REQUEST'), message } });
  });
  app.setNotFoundHandler((_req, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'there is no such page or API path' } });
  });

  // Sign-in, CSRF and roles, before any API handler.
  app.addHook('preHandler', async (req, reply) => {
    if (!req.url.startsWith('/api/')) return;
    const cfg = req.routeOptions.config;
    if (cfg?.public === true) return;
    const session = sessions.touch(req.cookies[SESSION_COOKIE]);
    if (session === undefined)
      return reply.code(401).send({ error: { code: 'SIGNED_OUT', message: 'you are signed out (or the session expired): sign in again' } });
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameToken(session.csrf, req.headers['x-csrf-token']))
      return reply
        .code(403)
        .send({ error: { code: 'CSRF', message: 'the request did not carry this session’s CSRF token; reload the page and try again' } });
    if (cfg?.roles !== undefined && !cfg.roles.includes(session.role))
      return reply.code(403).send({
        error: {
          code: 'FORBIDDEN',
          message: `a ${session.role} may not do this; it needs a ${cfg.roles.join(' or ')} (signed in as ${session.user})`,
        },
      });
    req.session = session;
  });

  app.get('/', (_req, reply) => reply.type('text/html; charset=utf-8').send(shell.html));
  app.get('/favicon.ico', (_req, reply) => reply.code(204).send());
  app.get<{ Params: { file: string } }>('/vendor/:file', (req, reply) => {
    const f = vendor.get(req.params.file);
    if (f === undefined) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'no such file' } });
    return reply.type(f.type).header('cache-control', 'public, max-age=86400').send(f.body);
  });
  await app.register(fastifyStatic, { root: STATIC_DIR, prefix: '/app/', decorateReply: false, cacheControl: false });

  const ctx: ApiContext = {
    backend,
    sessions,
    clock: opts.clock,
    secureCookie: https !== null,
    log,
    newRequestId: () => `web-${randomBytes(9).toString('base64url')}`,
    run: async (command, request, session) => {
      const { first, final } = backend.submit(command, request, { operator: session.user });
      if (first.status !== 'accepted') return first;
      let timer: unknown;
      const late = new Promise<CommandReply>((resolve) => {
        timer = opts.timers.setTimeout(() => resolve(first), COMMAND_WAIT_MS);
      });
      try {
        return await Promise.race([final, late]);
      } finally {
        opts.timers.clearTimeout(timer);
      }
    },
  };
  registerApi(app, ctx);
  const events = liveEvents(app, ctx, opts.timers);

  const address = await app.listen({ host: web.listen.host, port: web.listen.port });
  const url = `${https ? 'https' : 'http'}://${urlHost(web.listen, address)}/`;
  log.info({ url }, 'web console listening');
  return {
    url,
    close: async () => {
      events.stop();
      await app.close();
    },
  };
}

function urlHost(listen: ListenAddress, address: string): string {
  const port = new URL(address).port;
  const host = listen.host === '0.0.0.0' || listen.host === '::' ? '127.0.0.1' : listen.host;
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `GET /api/events`: server-sent events. One ticker for all clients: the overview when it changed, the meters whose
 * row changed (a page first loads the table, then applies these). A connection whose session has expired is ended,
 * and the page goes back to the sign-in; the stream itself does not keep a session alive.
 */
function liveEvents(app: FastifyInstance, ctx: ApiContext, timers: Timers): { stop(): void } {
  const clients = new Set<{ res: ServerResponse; token: string }>();
  let lastOverview = '';
  let lastRows = new Map<string, string>();
  let ticks = 0;
  app.get('/api/events', (req: FastifyRequest, reply: FastifyReply) => {
    const token = req.cookies[SESSION_COOKIE]!;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    res.write('retry: 3000\n\n');
    const client = { res, token };
    clients.add(client);
    req.raw.on('close', () => clients.delete(client));
  });
  const send = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const c of clients) c.res.write(frame);
  };
  const tick = () => {
    ticks++;
    for (const c of clients) {
      if (ctx.sessions.peek(c.token) === undefined) {
        c.res.write('event: signed-out\ndata: {}\n\n');
        c.res.end();
        clients.delete(c);
      }
    }
    if (clients.size === 0) {
      lastOverview = '';
      lastRows = new Map();
      return;
    }
    try {
      const overview = JSON.stringify(overviewOf(ctx.backend));
      if (overview !== lastOverview) {
        lastOverview = overview;
        send('overview', JSON.parse(overview));
      }
      const rows = ctx.backend.meters();
      const changed: MeterRow[] = [];
      const next = new Map<string, string>();
      for (const r of rows) {
        const j = JSON.stringify(r);
        next.set(r.id, j);
        if (lastRows.get(r.id) !== j) changed.push(r);
      }
      lastRows = next;
      if (changed.length > 0) send('meters', changed);
      else if (ticks % HEARTBEAT_TICKS === 0) for (const c of clients) c.res.write(': alive\n\n');
    } catch (err) {
      ctx.log.error({ err }, 'live update failed');
    }
  };
  const timer = repeat(timers, TICK_MS, tick);
  return {
    stop: () => {
      timer.stop();
      for (const c of clients) c.res.end();
      clients.clear();
    },
  };
}
