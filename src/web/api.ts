import type { FastifyInstance, FastifyReply } from 'fastify';
import { parsePassword, parseUserName, parseUserRole } from '../services/users.js';
import type { CommandReply } from '../uplink/commands/types.js';
import { type Parsed, parseCustomerNo, parseKwhText, parseMeterAddress, parseRequestId, parseYuanText } from '../values/index.js';
import { overviewOf, SESSION_COOKIE, type ApiContext } from './context.js';
import type { Session } from './sessions.js';

const CASHIER = ['cashier'] as const;
const TECHNICIAN = ['technician'] as const;
const ADMIN = ['admin'] as const;
const BOOKS = ['cashier', 'admin'] as const;
const ALLOWANCES = ['cashier', 'technician'] as const;
const MAX_CHART_DAYS = 31;

type Body = Record<string, unknown>;

/** A refusal at the edge: the field and a sentence, nothing done. */
function invalid(reply: FastifyReply, field: string, reason: string) {
  return reply.code(422).send({ error: { code: 'INVALID', field, message: `${field} ${reason}` } });
}

function bodyOf(raw: unknown): Body {
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Body) : {};
}

/** HTTP status of a command reply: the body is the reply itself, with its sentence. */
function statusOf(reply: CommandReply): number {
  switch (reply.status) {
    case 'done':
      return 200;
    case 'accepted':
      return 202;
    case 'rejected':
      return 422;
    default:
      return 502;
  }
}

export function registerApi(app: FastifyInstance, ctx: ApiContext): void {
  const { backend } = ctx;
  const me = (s: Session) => ({ user: s.user, role: s.role, csrf: s.csrf, gatewayId: backend.gatewayId, timeZone: backend.timeZone });

  // The session's answers carry its CSRF token: sent uncompressed, so that no compressed size can leak it (BREACH).
  app.get('/api/session', { config: { public: true }, compress: false }, (req, reply) => {
    const s = ctx.sessions.touch(req.cookies[SESSION_COOKIE]);
    if (s === undefined)
      return reply
        .code(401)
        .send({ error: { code: 'SIGNED_OUT', message: 'not signed in' }, users: backend.users.count(), gatewayId: backend.gatewayId });
    return me(s);
  });

  app.post('/api/session', { config: { public: true }, compress: false }, async (req, reply) => {
    const b = bodyOf(req.body);
    const name = typeof b.name === 'string' ? b.name : '';
    const password = typeof b.password === 'string' ? b.password : '';
    const r = await backend.users.signIn(name, password);
    if (!r.ok) {
      if (r.reason === 'locked') {
        ctx.log.warn({ user: name, until: new Date(r.until).toISOString() }, 'console sign-in refused: locked out');
        const minutes = Math.max(1, Math.ceil((r.until - ctx.clock.now()) / 60_000));
        return reply.code(429).send({
          error: {
            code: 'LOCKED',
            until: r.until,
            message: `too many wrong passwords: ${name} is locked for ${minutes} min; an admin can set a new password (meterd user passwd ${name})`,
          },
        });
      }
      ctx.log.warn({ user: name }, 'console sign-in refused: wrong name or password');
      return reply.code(401).send({
        error: {
          code: 'WRONG_PASSWORD',
          triesLeft: r.triesLeft,
          message:
            r.triesLeft === null || r.triesLeft > 2
              ? 'wrong user name or password'
              : `wrong user name or password: ${r.triesLeft} more wrong tries lock the account`,
        },
      });
    }
    const s = ctx.sessions.open(r.user.name, r.user.role);
    ctx.log.info({ user: s.user, role: s.role }, 'console sign-in');
    void reply.setCookie(SESSION_COOKIE, s.token, { httpOnly: true, sameSite: 'strict', path: '/', secure: ctx.secureCookie });
    return me(s);
  });

  app.delete('/api/session', (req, reply) => {
    ctx.sessions.close(req.cookies[SESSION_COOKIE]);
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return { signedOut: true };
  });

  app.get('/api/overview', () => overviewOf(backend));
  app.get('/api/meters', () => backend.meters());

  app.get<{ Params: { id: string } }>('/api/meters/:id', (req, reply) => {
    const meter = backend.meter(req.params.id);
    if (meter === null) return reply.code(404).send({ error: { code: 'UNKNOWN_METER', message: `there is no meter ${req.params.id}` } });
    return { meter, ledger: backend.ledger(meter.id, 50) };
  });

  app.get<{ Params: { id: string }; Querystring: { days?: string } }>('/api/meters/:id/readings', (req, reply) => {
    if (backend.meter(req.params.id) === null)
      return reply.code(404).send({ error: { code: 'UNKNOWN_METER', message: `there is no meter ${req.params.id}` } });
    const days = Math.min(MAX_CHART_DAYS, Math.max(1, Number.parseInt(req.query.days ?? '7', 10) || 7));
    return backend.readings(req.params.id, ctx.clock.now() - days * 86_400_000);
  });

  /** A meter action: the request id the browser made for this click (a retry is de-duplicated by the router). */
  const action = (
    path: string,
    roles: readonly ('cashier' | 'technician' | 'admin')[],
    command: string,
    build: (id: string, b: Body, reply: FastifyReply) => Record<string, unknown> | undefined,
  ) =>
    app.post<{ Params: { id: string } }>(path, { config: { roles } }, async (req, reply) => {
      const b = bodyOf(req.body);
      const requestId = parseRequestId(b.requestId);
      if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
      if (backend.meter(req.params.id) === null)
        return reply.code(404).send({ error: { code: 'UNKNOWN_METER', message: `there is no meter ${req.params.id}` } });
      const request = build(req.params.id, b, reply);
      if (request === undefined) return reply;
      const r = await ctx.run(command, { requestId: requestId.value, ...request }, req.session!);
      return reply.code(statusOf(r)).send(r);
    });

  action('/api/meters/:id/topup', CASHIER, 'topup', (meter, b, reply) => {
    const amount = typeof b.amount === 'string' ? b.amount.trim() : String(b.amount ?? '');
    if (b.unit === 'energy') {
      const kwh: Parsed<number> = parseKwhText(amount);
      if (!kwh.ok) return void invalid(reply, 'amount', kwh.reason);
      return { meter, energyKwh: kwh.value / 100 };
    }
    if (b.unit !== 'money') return void invalid(reply, 'unit', 'must be money or energy');
    const fen = parseYuanText(amount);
    if (!fen.ok) return void invalid(reply, 'amount', fen.reason);
    return { meter, amountFen: fen.value };
  });

  action('/api/meters/:id/relay', TECHNICIAN, 'relay', (meter, b, reply) => {
    if (b.action !== 'trip' && b.action !== 'close') return void invalid(reply, 'action', 'must be trip or close');
    const reason = typeof b.reason === 'string' ? b.reason.trim() : '';
    if (reason.length < 3) return void invalid(reply, 'reason', 'must say why (at least 3 characters): it is kept with the command');
    if (reason.length > 200) return void invalid(reply, 'reason', 'is longer than 200 characters');
    return { meter, action: b.action, reason };
  });

  action('/api/meters/:id/read', TECHNICIAN, 'read', (meter) => ({ meter, points: backend.readPoints(meter) }));
  action('/api/meters/:id/time-sync', TECHNICIAN, 'time-sync', (meter) => ({ meter }));

  // 停(限)电 with a second person's approval and 复电, through the station's supply commands (docs/lifecycle.md).
  app.get<{ Params: { id: string } }>('/api/meters/:id/supply', (req, reply) => {
    if (backend.meter(req.params.id) === null)
      return reply.code(404).send({ error: { code: 'UNKNOWN_METER', message: `there is no meter ${req.params.id}` } });
    return backend.supplyNotices(req.params.id);
  });
  const supplyCommand = (
    path: string,
    command: string,
    build: (id: string, b: Body, reply: FastifyReply) => Record<string, unknown> | undefined,
    byNotice = false,
  ) =>
    app.post<{ Params: { id: string } }>(path, { config: { roles: TECHNICIAN } }, async (req, reply) => {
      const b = bodyOf(req.body);
      const requestId = parseRequestId(b.requestId);
      if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
      const known = byNotice
        ? /^\d{1,12}$/.test(req.params.id) && backend.supplyNoticeMeter(Number(req.params.id)) !== null
        : backend.meter(req.params.id) !== null;
      if (!known)
        return reply.code(404).send({
          error: {
            code: byNotice ? 'UNKNOWN_NOTICE' : 'UNKNOWN_METER',
            message: `there is no ${byNotice ? 'notice' : 'meter'} ${req.params.id}`,
          },
        });
      const request = build(req.params.id, b, reply);
      if (request === undefined) return reply;
      const session = req.session!;
      const r = await ctx.run(command, { requestId: requestId.value, ...request, operator: session.user }, session);
      return reply.code(statusOf(r)).send(r);
    });
  supplyCommand('/api/meters/:id/supply/notice', 'supply-notice', (meter, b) => ({
    meter,
    reason: b.reason,
    ...(typeof b.note === 'string' && b.note.trim() !== '' ? { note: b.note.trim() } : {}),
  }));
  supplyCommand('/api/meters/:id/supply/restore', 'supply-restore', (meter, b, reply) => {
    const reason = typeof b.reason === 'string' ? b.reason.trim() : '';
    if (reason.length < 3) return void invalid(reply, 'reason', 'must say why (at least 3 characters): it is kept in the supply record');
    return { meter, reason };
  });
  supplyCommand('/api/supply/:id/approve', 'supply-approve', (id) => ({ noticeId: Number(id) }), true);
  supplyCommand('/api/supply/:id/cancel', 'supply-cancel', (id) => ({ noticeId: Number(id) }), true);
  // 拆旧换新: the point moves onto the meter at newAddress, its credit with it, through the station's meter-replace.
  app.post<{ Params: { id: string } }>('/api/meters/:id/replace', { config: { roles: TECHNICIAN } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    if (backend.meter(req.params.id) === null)
      return reply.code(404).send({ error: { code: 'UNKNOWN_METER', message: `there is no meter ${req.params.id}` } });
    const text = (v: unknown) => (typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : '');
    // Digits are a DL/T 645 address as on the nameplate (left-padded); `unit N` a Modbus meter's unit id.
    const typed = text(b.newAddress);
    const newAddress = parseMeterAddress(typed, /^\d+$/.test(typed) ? 'dlt645' : undefined);
    if (!newAddress.ok) return invalid(reply, 'newAddress', newAddress.reason);
    const reason = text(b.reason);
    if (reason.length < 3) return invalid(reply, 'reason', 'must say why (at least 3 characters): it is kept with the replacement');
    const optional: Record<string, string> = {};
    if (text(b.newProfile) !== '') optional.newProfile = text(b.newProfile);
    if (text(b.newAssetNo) !== '') optional.newAssetNo = text(b.newAssetNo);
    // The old meter's display, only when it does not answer; the router's schema checks each figure.
    // A meter without a wallet shows only its energy: balance and count may be left out (the job asks for them when
    // the meter keeps a wallet, FINAL_READING_NEEDED).
    const finalFields = ['importKwh', 'balance', 'purchaseCount'] as const;
    const given = finalFields.filter((k) => text((b.final as Body | undefined)?.[k]) !== '');
    let final: Record<string, number> | undefined;
    if (given.length > 0) {
      const missing = (given.length === 1 && given[0] === 'importKwh' ? [] : finalFields).filter((k) => !given.includes(k));
      if (missing.length > 0)
        return invalid(reply, `final.${missing[0]}`, 'is needed with the other figures read off the old meter’s display');
      final = {};
      for (const k of given) {
        const v = text((b.final as Body)[k]);
        if (!/^\d{1,9}(\.\d{1,2})?$/.test(v)) return invalid(reply, `final.${k}`, 'must be a number as the display shows it, e.g. 5123.40');
        final[k] = Number(v);
      }
    }
    const session = req.session!;
    const r = await ctx.run(
      'meter-replace',
      {
        requestId: requestId.value,
        meter: req.params.id,
        newAddress: newAddress.value,
        ...optional,
        operator: session.user,
        reason,
        ...(final ? { final } : {}),
      },
      session,
    );
    return reply.code(statusOf(r)).send(r);
  });

  app.get('/api/alerts', () => backend.alerts());
  app.get<{ Params: { id: string } }>('/api/alerts/:id/notes', (req) => backend.alertNotes(req.params.id));
  app.post<{ Params: { id: string } }>('/api/alerts/:id/ack', { config: { roles: TECHNICIAN } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const note = typeof b.note === 'string' ? b.note.trim() : '';
    if (note.length === 0) return invalid(reply, 'note', 'must say what was found and done (the repair note)');
    const session = req.session!;
    const r = await ctx.run('alert-ack', { requestId: requestId.value, alertId: req.params.id, operator: session.user, note }, session);
    return reply.code(statusOf(r)).send(r);
  });

  const booksOf = (q: { kind?: string; period?: string; operator?: string }, reply: FastifyReply) => {
    if (q.kind !== 'daily' && q.kind !== 'monthly') return void invalid(reply, 'kind', 'must be daily or monthly');
    const operator = q.operator === undefined || q.operator === '' ? undefined : q.operator;
    try {
      return backend.books(q.kind, q.period ?? '', operator);
    } catch (err) {
      return void reply.code(422).send({ error: { code: (err as { code?: string }).code ?? 'INVALID', message: (err as Error).message } });
    }
  };
  app.get<{ Querystring: { kind?: string; period?: string; operator?: string } }>(
    '/api/books',
    { config: { roles: BOOKS } },
    (req, reply) => booksOf(req.query, reply)?.json ?? reply,
  );
  app.get<{ Querystring: { kind?: string; period?: string; operator?: string } }>(
    '/api/books.csv',
    { config: { roles: BOOKS } },
    (req, reply) => {
      const view = booksOf(req.query, reply);
      if (view === undefined) return reply;
      const name = `meterd-${backend.gatewayId}-${req.query.kind}-${req.query.period}${req.query.operator ? `-${req.query.operator}` : ''}.csv`;
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}"`)
        .send(`\ufeff${view.csv.join('\r\n')}\r\n`);
    },
  );

  // The counter: the card in the encoder, read and sold through the same commands the station sends.
  app.post('/api/counter/read', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const encoder = typeof b.encoder === 'string' && b.encoder !== '' ? { encoder: b.encoder } : {};
    const r = await ctx.run('card-read', { requestId: requestId.value, ...encoder }, req.session!);
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const { memory: _memory, ...card } = (r.result ?? {}) as Record<string, unknown>;
    const meter = typeof card.meterNumber === 'string' ? backend.meterByNumber(card.meterNumber) : null;
    const purchase = card.purchase as { unit?: string } | undefined;
    return { ...card, meterId: meter?.id ?? null, unit: purchase?.unit === 'fen' ? 'money' : 'energy' };
  });

  app.post('/api/counter/sell', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const meter = typeof b.meter === 'string' ? backend.meter(b.meter) : null;
    if (meter === null)
      return invalid(reply, 'meter', 'is not a configured meter: this card belongs to a meter this gateway does not serve');
    const amount = typeof b.amount === 'string' ? b.amount.trim() : String(b.amount ?? '');
    let credit: Record<string, number>;
    if (b.unit === 'energy') {
      const kwh = parseKwhText(amount);
      if (!kwh.ok) return invalid(reply, 'amount', kwh.reason);
      credit = { energyKwh: kwh.value / 100 };
    } else {
      const fen = parseYuanText(amount);
      if (!fen.ok) return invalid(reply, 'amount', fen.reason);
      credit = { amountFen: fen.value };
    }
    const encoder = typeof b.encoder === 'string' && b.encoder !== '' ? { encoder: b.encoder } : {};
    const session = req.session!;
    const r = await ctx.run(
      'card-sell',
      { requestId: requestId.value, meter: meter.id, ...credit, operator: session.user, ...encoder },
      session,
    );
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const sale = (r.result ?? {}) as {
      purchaseCount: number;
      amount: number;
      unit: string;
      customerNumber?: string;
      at: string;
      operator: string;
    };
    const id = backend.cardSaleId(meter.id, sale.purchaseCount);
    return {
      ...r,
      receipt: {
        receiptNo: id === null ? `${meter.id}-${sale.purchaseCount}` : `R${String(id).padStart(8, '0')}`,
        meter: meter.id,
        customerNumber: sale.customerNumber ?? meter.customerNo,
        amount: sale.amount,
        unit: sale.unit === 'fen' ? 'money' : 'energy',
        purchaseCount: sale.purchaseCount,
        operator: sale.operator,
        at: sale.at,
      },
    };
  });

  // Line loss per transformer district: read-only, for every role (the station's monthly meeting asks anyone).
  app.get('/api/lineloss', () => ({ districts: backend.districts() }));
  const knownDistrict = (id: string, reply: FastifyReply) => {
    if (backend.districts().some((d) => d.id === id)) return true;
    void reply.code(404).send({
      error: { code: 'UNKNOWN_DISTRICT', message: `there is no district ${id} with a supply meter in this gateway's config` },
    });
    return false;
  };
  app.get<{ Params: { district: string }; Querystring: { month?: string } }>('/api/lineloss/:district', (req, reply) => {
    if (!knownDistrict(req.params.district, reply)) return reply;
    const month = req.query.month === undefined || req.query.month === '' ? undefined : req.query.month;
    try {
      return backend.lineloss(req.params.district, month);
    } catch (err) {
      return reply.code(422).send({ error: { code: 'INVALID', field: 'month', message: (err as Error).message } });
    }
  });
  app.get<{ Params: { district: string; date: string } }>('/api/lineloss/:district/days/:date', (req, reply) => {
    if (!knownDistrict(req.params.district, reply)) return reply;
    let day: ReturnType<typeof backend.linelossDay>;
    try {
      day = backend.linelossDay(req.params.district, req.params.date);
    } catch (err) {
      return reply.code(422).send({ error: { code: 'INVALID', field: 'date', message: (err as Error).message } });
    }
    if (day === null)
      return reply.code(404).send({
        error: {
          code: 'NO_FIGURE',
          message: `no figure for district ${req.params.district} on ${req.params.date}: the day has not been computed (yet)`,
        },
      });
    return day;
  });

  // The counter's provisioning: an account opened on a blank card, a lost card replaced, through the station's
  // commands; card health, re-issue and check cards (nothing moves in the books) through the counter desk.
  const counterDesk = (reply: FastifyReply) => {
    if (backend.counter === null)
      void reply.code(422).send({
        error: { code: 'UNKNOWN_ENCODER', message: 'the gateway config has no encoders: add the counter’s encoder under encoders:' },
      });
    return backend.counter;
  };
  /** A refusal of the encoder or the card rules: its code and its sentence; anything else is the gateway's failure. */
  const cardRefused = (reply: FastifyReply, err: unknown) => {
    const code = (err as { code?: string }).code;
    if (typeof code !== 'string') throw err;
    return reply.code(422).send({ error: { code, message: (err as Error).message } });
  };
  const encoderOf = (b: Body) => (typeof b.encoder === 'string' && b.encoder !== '' ? b.encoder : undefined);

  app.get('/api/counter', { config: { roles: CASHIER } }, async (_req, reply) => {
    const desk = counterDesk(reply);
    if (desk === null) return reply;
    try {
      return { unit: await desk.unit() };
    } catch (err) {
      return cardRefused(reply, err);
    }
  });

  app.post('/api/counter/open', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const meter = typeof b.meter === 'string' ? (backend.meter(b.meter.trim()) ?? backend.meterByNumber(b.meter.trim())) : null;
    if (meter === null) return invalid(reply, 'meter', 'is not a meter of this gateway: give its id or its 12-digit number');
    const customerNo = parseCustomerNo(typeof b.customerNo === 'string' ? b.customerNo.trim() : b.customerNo);
    if (!customerNo.ok) return invalid(reply, 'customerNo', customerNo.reason);
    const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
    const person: Record<string, string> = {};
    if (text(b.name) !== undefined) person.name = text(b.name)!;
    if (text(b.room) !== undefined) person.room = text(b.room)!;
    const serial = text(b.cardSerial);
    if (serial !== undefined && !/^\d{1,9}$/.test(serial))
      return invalid(reply, 'cardSerial', 'must be a whole number (up to 9 digits), or empty for the next free one');
    let first: Record<string, number> = {};
    const amount = text(typeof b.amount === 'number' ? String(b.amount) : b.amount);
    if (amount !== undefined) {
      if (b.unit === 'energy') {
        const kwh = parseKwhText(amount);
        if (!kwh.ok) return invalid(reply, 'amount', kwh.reason);
        first = { energyKwh: kwh.value / 100 };
      } else {
        const fen = parseYuanText(amount);
        if (!fen.ok) return invalid(reply, 'amount', fen.reason);
        first = { amountFen: fen.value };
      }
    }
    const session = req.session!;
    const encoder = encoderOf(b);
    const r = await ctx.run(
      'card-open',
      {
        requestId: requestId.value,
        meter: meter.id,
        customerNo: customerNo.value,
        ...person,
        ...(serial !== undefined ? { cardSerial: Number(serial) } : {}),
        ...first,
        operator: session.user,
        ...(encoder ? { encoder } : {}),
      },
      session,
    );
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const opened = (r.result ?? {}) as {
      cardSerial: number;
      customerNo: string;
      meterNumber: string;
      purchaseCount: number;
      amount: number;
      sale?: { at: string };
    };
    const id = opened.sale ? backend.cardSaleId(meter.id, opened.purchaseCount) : null;
    return {
      ...r,
      slip: {
        kind: 'open',
        receiptNo: id === null ? null : `R${String(id).padStart(8, '0')}`,
        meter: meter.id,
        meterNumber: opened.meterNumber,
        customerNumber: opened.customerNo,
        cardSerial: String(opened.cardSerial),
        purchaseCount: opened.purchaseCount,
        amount: opened.sale ? opened.amount : 0,
        sale: opened.sale !== undefined,
        unit: first.energyKwh !== undefined ? 'energy' : first.amountFen !== undefined ? 'money' : null,
        operator: session.user,
        at: opened.sale?.at ?? new Date(ctx.clock.now()).toISOString(),
      },
    };
  });

  app.post('/api/counter/replace', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const customerNo = parseCustomerNo(typeof b.customerNo === 'string' ? b.customerNo.trim() : b.customerNo);
    if (!customerNo.ok) return invalid(reply, 'customerNo', customerNo.reason);
    if (b.reason !== 'lost' && b.reason !== 'broken') return invalid(reply, 'reason', 'must be lost or broken');
    const serial = typeof b.cardSerial === 'string' && b.cardSerial.trim() !== '' ? b.cardSerial.trim() : undefined;
    if (serial !== undefined && !/^\d{1,9}$/.test(serial))
      return invalid(reply, 'cardSerial', 'must be a whole number (up to 9 digits), or empty for the next free one');
    const session = req.session!;
    const encoder = encoderOf(b);
    const r = await ctx.run(
      'card-replace',
      {
        requestId: requestId.value,
        customerNo: customerNo.value,
        reason: b.reason,
        ...(serial !== undefined ? { cardSerial: Number(serial) } : {}),
        operator: session.user,
        ...(encoder ? { encoder } : {}),
      },
      session,
    );
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const replaced = (r.result ?? {}) as {
      cardSerial: number;
      oldSerial: string | null;
      customerNo: string;
      meterNumber: string;
      purchaseCount: number;
      amount: number;
    };
    const meter = backend.meterByNumber(replaced.meterNumber);
    return {
      ...r,
      slip: {
        kind: 'replace',
        meter: meter?.id ?? replaced.meterNumber,
        meterNumber: replaced.meterNumber,
        customerNumber: replaced.customerNo,
        cardSerial: String(replaced.cardSerial),
        oldSerial: replaced.oldSerial,
        reason: b.reason,
        purchaseCount: replaced.purchaseCount,
        amount: replaced.amount,
        // The card's unit (the encoder's layout), which is not the meter's own credit unit on every installation.
        unit: (await backend.counter?.unit(encoder).catch(() => null)) ?? null,
        operator: session.user,
        at: new Date(ctx.clock.now()).toISOString(),
      },
    };
  });

  app.post('/api/counter/rewrite', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const named: Record<string, string> = {};
    const customerText = typeof b.customerNo === 'string' ? b.customerNo.trim() : '';
    if (customerText !== '') {
      const customerNo = parseCustomerNo(customerText);
      if (!customerNo.ok) return invalid(reply, 'customerNo', customerNo.reason);
      named.customerNo = customerNo.value;
    }
    const meterText = typeof b.meter === 'string' ? b.meter.trim() : '';
    if (meterText !== '') {
      const meter = backend.meter(meterText) ?? backend.meterByNumber(meterText);
      if (meter === null)
        return invalid(reply, 'meter', 'is not a meter of this gateway: give its id or its 12-digit number, or leave it empty');
      named.meter = meter.id;
    }
    const session = req.session!;
    const encoder = encoderOf(b);
    const r = await ctx.run(
      'card-rewrite',
      { requestId: requestId.value, ...named, operator: session.user, ...(encoder ? { encoder } : {}) },
      session,
    );
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const rw = (r.result ?? {}) as {
      meterNumber: string;
      customerNo: string;
      cardSerial: string;
      purchaseCount: number;
      amount: number;
      problems?: string[];
    };
    return {
      ...r,
      slip: {
        kind: 'rewrite',
        meter: backend.meterByNumber(rw.meterNumber)?.id ?? rw.meterNumber,
        meterNumber: rw.meterNumber,
        customerNumber: rw.customerNo,
        cardSerial: String(rw.cardSerial),
        purchaseCount: rw.purchaseCount,
        amount: rw.amount,
        unit: (await backend.counter?.unit(encoder).catch(() => null)) ?? null,
        problems: rw.problems ?? [],
        operator: session.user,
        at: new Date(ctx.clock.now()).toISOString(),
      },
    };
  });

  app.post('/api/counter/param', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    const values: Record<string, number> = {};
    for (const field of ['priceYuan', 'alarm1', 'alarm2', 'overdraft', 'hoarding'] as const) {
      const text = typeof b[field] === 'string' ? (b[field] as string).trim() : String(b[field] ?? '');
      // The digits only; the command's schema then applies the parameter card's own limits (src/values).
      if (!/^\d{1,9}(\.\d{1,4})?$/.test(text)) return invalid(reply, field, 'must be a number such as 0.5288 or 20.00');
      values[field] = Number(text);
    }
    const meterText = typeof b.meter === 'string' ? b.meter.trim() : '';
    let meter: string | undefined;
    if (meterText !== '') {
      const m = backend.meter(meterText) ?? backend.meterByNumber(meterText);
      if (m === null)
        return invalid(
          reply,
          'meter',
          'is not a meter of this gateway: give its id or its 12-digit number, or leave it empty for every meter',
        );
      meter = m.id;
    }
    const session = req.session!;
    const encoder = encoderOf(b);
    const r = await ctx.run(
      'card-param',
      { requestId: requestId.value, ...(meter ? { meter } : {}), ...values, operator: session.user, ...(encoder ? { encoder } : {}) },
      session,
    );
    if (r.status !== 'done') return reply.code(statusOf(r)).send(r);
    const p = (r.result ?? {}) as {
      id: number;
      at: number;
      meterAddress: string | null;
      cardSerial: string | null;
      unit: string;
      price: number;
      alarm1: number;
      alarm2: number;
      overdraft: number;
      hoarding: number;
      operator: string;
    };
    return {
      ...r,
      slip: {
        kind: 'param',
        receiptNo: `P${String(p.id).padStart(8, '0')}`,
        meter: p.meterAddress === null ? null : (backend.meterByNumber(p.meterAddress)?.id ?? p.meterAddress),
        anyMeter: p.meterAddress === null,
        cardSerial: p.cardSerial,
        unit: p.unit === 'fen' ? 'money' : 'energy',
        price: p.price,
        limits: { alarm1: p.alarm1, alarm2: p.alarm2, overdraft: p.overdraft, hoarding: p.hoarding },
        operator: p.operator,
        at: new Date(p.at).toISOString(),
      },
    };
  });

  app.post('/api/counter/health', { config: { roles: CASHIER } }, async (req, reply) => {
    const desk = counterDesk(reply);
    if (desk === null) return reply;
    try {
      return await desk.health(encoderOf(bodyOf(req.body)));
    } catch (err) {
      return cardRefused(reply, err);
    }
  });

  app.post('/api/counter/reissue', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const desk = counterDesk(reply);
    if (desk === null) return reply;
    const meter = typeof b.meter === 'string' ? (backend.meter(b.meter.trim()) ?? backend.meterByNumber(b.meter.trim())) : null;
    if (meter === null) return invalid(reply, 'meter', 'is not a meter of this gateway: give its id or its 12-digit number');
    try {
      const r = await desk.reissue(meter.id, encoderOf(b));
      ctx.log.info({ meter: meter.id, purchaseCount: r.count, operator: req.session!.user }, 'card re-issued at the console');
      return {
        slip: {
          kind: 'reissue',
          meter: meter.id,
          meterNumber: r.meterNumber,
          customerNumber: meter.customerNo,
          purchaseCount: r.count,
          amount: r.amount,
          unit: r.unit,
          operator: req.session!.user,
          at: new Date(ctx.clock.now()).toISOString(),
        },
      };
    } catch (err) {
      return cardRefused(reply, err);
    }
  });

  app.post('/api/counter/check', { config: { roles: CASHIER } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const desk = counterDesk(reply);
    if (desk === null) return reply;
    try {
      const r = await desk.checkCard(b.anyMeter === true, encoderOf(b));
      ctx.log.info({ meterNumber: r.meterNumber, operator: req.session!.user }, 'check card made at the console');
      return { meterNumber: r.meterNumber, anyMeter: b.anyMeter === true, role: r.role };
    } catch (err) {
      return cardRefused(reply, err);
    }
  });

  app.get('/api/allowances', () => backend.allowances());
  app.post('/api/allowances/resolve', { config: { roles: ALLOWANCES } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const requestId = parseRequestId(b.requestId);
    if (!requestId.ok) return invalid(reply, 'requestId', requestId.reason);
    // The router's schema checks the rest (allowance, term, round, meter, action) and words the refusals.
    const { allowance, term, round, meter, action } = b;
    const r = await ctx.run('allowance-resolve', { requestId: requestId.value, allowance, term, round, meter, action }, req.session!);
    return reply.code(statusOf(r)).send(r);
  });

  app.get('/api/users', { config: { roles: ADMIN } }, () => backend.users.list());
  app.post('/api/users', { config: { roles: ADMIN } }, async (req, reply) => {
    const b = bodyOf(req.body);
    const name = parseUserName(b.name);
    if (!name.ok) return invalid(reply, 'name', name.reason);
    const role = parseUserRole(b.role);
    if (!role.ok) return invalid(reply, 'role', role.reason);
    const password = parsePassword(b.password);
    if (!password.ok) return invalid(reply, 'password', password.reason);
    try {
      await backend.users.add(name.value, role.value, password.value);
    } catch (err) {
      return reply.code(409).send({ error: { code: (err as { code?: string }).code ?? 'USER', message: (err as Error).message } });
    }
    ctx.log.info({ user: name.value, role: role.value, by: req.session!.user }, 'console user added');
    return reply.code(201).send(backend.users.get(name.value));
  });
  app.delete<{ Params: { name: string } }>('/api/users/:name', { config: { roles: ADMIN } }, (req, reply) => {
    if (req.params.name === req.session!.user)
      return reply.code(409).send({ error: { code: 'SELF', message: 'you cannot remove yourself; sign in as another admin' } });
    try {
      backend.users.remove(req.params.name);
    } catch (err) {
      return reply.code(404).send({ error: { code: 'USER_NOT_FOUND', message: (err as Error).message } });
    }
    ctx.sessions.closeUser(req.params.name);
    ctx.log.info({ user: req.params.name, by: req.session!.user }, 'console user removed');
    return { removed: req.params.name };
  });
}
