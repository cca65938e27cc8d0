import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realTimers, systemClock } from '../../src/clock.js';
import { consoleBackend } from '../../src/daemon/console.js';
import { silentLogger } from '../../src/log.js';
import { UserService } from '../../src/services/users.js';
import { findCommand, openStore } from '../../src/store/index.js';
import { startWebConsole } from '../../src/web/server.js';
import { ConsoleClient, eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/**
 * The console's HTTP API on a real gateway with simulated prepaid meters: sign-in, sessions, CSRF, roles, and the
 * actions going through the command router's local door (the MQTT commands' validation and exactly-once rules).
 */
let rig: ConsoleRig;

beforeAll(async () => {
  rig = await startConsoleRig();
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.online, 'room-101 online');
}, 30_000);

afterAll(async () => {
  await rig?.close();
});

async function as(user: string): Promise<ConsoleClient> {
  const c = new ConsoleClient(rig.url);
  const res = await c.signIn(user, rig.passwords[user]!);
  expect(res.status).toBe(200);
  return c;
}

describe('signing in', () => {
  it('serves the page with a strict content security policy, and the API only to a session', async () => {
    const page = await fetch(rig.url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const anon = new ConsoleClient(rig.url);
    expect((await anon.request('GET', '/api/meters')).status).toBe(401);
    expect((await anon.request('POST', '/api/meters/room-101/relay', { requestId: 'anon-1', action: 'trip', reason: 'test' })).status).toBe(
      401,
    );
  });

  it('sets an HttpOnly, SameSite=Strict session cookie and answers who is signed in', async () => {
    const c = new ConsoleClient(rig.url);
    const res = await c.signIn('cashier', rig.passwords.cashier!);
    expect(res.headers.get('set-cookie')).toMatch(/^meterd_session=[^;]+;.*HttpOnly;.*SameSite=Strict/);
    const me = await c.json('GET', '/api/session');
    expect(me.body).toMatchObject({ user: 'cashier', role: 'cashier', gatewayId: rig.gateway.config.gateway.id });
    await c.request('DELETE', '/api/session');
    expect((await c.request('GET', '/api/meters')).status).toBe(401);
  });

  it('locks an account after five wrong passwords, even against the right one, and says so in a sentence', async () => {
    const users = new UserService({ store: rig.gateway.store, clock: systemClock });
    await users.add('lockme', 'cashier', 'right-password');
    const c = new ConsoleClient(rig.url);
    const answers: number[] = [];
    for (let i = 0; i < 5; i++) answers.push((await c.signIn('lockme', 'wrong-password')).status);
    expect(answers).toEqual([401, 401, 401, 401, 429]);
    const locked = await c.signIn('lockme', 'right-password');
    expect(locked.status).toBe(429);
    expect(((await locked.json()) as { error: { message: string } }).error.message).toMatch(
      /too many wrong passwords: lockme is locked for \d+ min/,
    );
    expect(c.cookie).toBe('');
  });
});

describe('actions', () => {
  it('a cashier tops up a meter once, recorded with her name, and the same request id again loads nothing more', async () => {
    const c = await as('cashier');
    const request = { requestId: 'web-topup-1', unit: 'money', amount: '5.00' };
    const first = await c.json<{ status: string; result: Record<string, unknown> }>('POST', '/api/meters/room-101/topup', request);
    expect(first.status).toBe(200);
    expect(first.body.status).toBe('done');
    const again = await c.json<{ status: string }>('POST', '/api/meters/room-101/topup', request);
    expect(again.body.status).toBe('done');
    const entries = rig.gateway.store.ledger.list({ meterId: 'room-101' }).filter((e) => e.requestId === 'web-topup-1');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ amount: 500, unit: 'money', operator: 'cashier', channel: 'operator', state: 'applied' });
  });

  it('refuses an amount with three decimals before anything is recorded, in a sentence', async () => {
    const c = await as('cashier');
    const r = await c.json<{ error: { message: string } }>('POST', '/api/meters/room-101/topup', {
      requestId: 'web-topup-bad',
      unit: 'money',
      amount: '12.345',
    });
    expect(r.status).toBe(422);
    expect(r.body.error.message).toMatch(/^amount .*decimals/);
    expect(rig.gateway.store.ledger.get('web-topup-bad')).toBeNull();
  });

  it('a cashier cannot trip a relay: the server refuses and records nothing', async () => {
    const c = await as('cashier');
    const r = await c.json<{ error: { code: string } }>('POST', '/api/meters/room-102/relay', {
      requestId: 'web-cashier-trip',
      action: 'trip',
      reason: 'trying',
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('FORBIDDEN');
    expect(rig.gateway.store.transaction((tx) => findCommand(tx, 'web-cashier-trip'))).toBeNull();
    expect(rig.gateway.store.meterStates.get('room-102')?.relayState).not.toBe('open');
  });

  it('a request without the CSRF token changes nothing', async () => {
    const c = await as('tech');
    const res = await c.request(
      'POST',
      '/api/meters/room-102/relay',
      { requestId: 'web-no-csrf', action: 'trip', reason: 'forged' },
      { 'x-csrf-token': 'not-the-token' },
    );
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('CSRF');
    expect(rig.gateway.store.transaction((tx) => findCommand(tx, 'web-no-csrf'))).toBeNull();
  });

  it('a technician trips and closes a relay with a reason, kept in the command record with his name', async () => {
    const c = await as('tech');
    const noReason = await c.json('POST', '/api/meters/room-103/relay', { requestId: 'web-trip-0', action: 'trip', reason: '' });
    expect(noReason.status).toBe(422);
    const trip = await c.json<{ status: string }>('POST', '/api/meters/room-103/relay', {
      requestId: 'web-trip-1',
      action: 'trip',
      reason: 'wiring check',
    });
    expect(trip.body.status).toBe('done');
    expect(rig.gateway.store.meterStates.get('room-103')?.relayState).toBe('open');
    const record = rig.gateway.store.transaction((tx) => findCommand(tx, 'web-trip-1'))!;
    expect(record).toMatchObject({ origin: 'socket', operator: 'tech', status: 'done' });
    expect(JSON.parse(record.requestJson)).toMatchObject({ reason: 'wiring check' });
    const close = await c.json<{ status: string }>('POST', '/api/meters/room-103/relay', {
      requestId: 'web-close-1',
      action: 'close',
      reason: 'done',
    });
    expect(close.body.status).toBe('done');
    expect(rig.gateway.store.meterStates.get('room-103')?.relayState).toBe('closed');
  });

  it('read now asks the meter and answers with its values', async () => {
    const c = await as('tech');
    const r = await c.json<{ status: string; result: { values: Record<string, unknown> } }>('POST', '/api/meters/room-101/read', {
      requestId: 'web-read-1',
    });
    expect(r.body.status).toBe('done');
    expect(r.body.result.values['voltage.a']).toMatchObject({ unit: 'V' });
  });
});

describe('reading', () => {
  it('lists the meters with balance and relay, and a meter page with its ledger and readings', async () => {
    const c = await as('cashier');
    const meters = await c.json<{ id: string; online: boolean; balance: Record<string, number> | null }[]>('GET', '/api/meters');
    expect(meters.body.map((m) => m.id)).toEqual(['room-101', 'room-102', 'room-103']);
    expect(meters.body[0]).toMatchObject({ online: true, balance: { moneyYuan: expect.any(Number) } });
    const page = await c.json<{ ledger: { requestId: string }[] }>('GET', '/api/meters/room-101');
    expect(page.body.ledger.map((e) => e.requestId)).toContain('web-topup-1');
    const readings = await c.json<{ voltage: number | null }[]>('GET', '/api/meters/room-101/readings?days=1');
    expect(readings.body.some((p) => typeof p.voltage === 'number')).toBe(true);
    const overview = await c.json<{ meters: { total: number }; sales: { moneyFen: number } }>('GET', '/api/overview');
    expect(overview.body.meters.total).toBe(3);
    expect(overview.body.sales.moneyFen).toBeGreaterThanOrEqual(500);
  });
});

describe('listening beyond this machine', () => {
  it('is refused while no user exists', async () => {
    const empty = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-web-empty-')), 'meterd.db'), clock: systemClock });
    try {
      const backend = { ...consoleBackend(rig.gateway, systemClock), users: new UserService({ store: empty, clock: systemClock }) };
      await expect(
        startWebConsole({
          web: { ...rig.gateway.config.web, listen: { host: '0.0.0.0', port: 0 } },
          backend,
          logger: silentLogger,
          clock: systemClock,
          timers: realTimers,
        }),
      ).rejects.toThrow(/WEB_NO_USERS|no console user exists: add one first \(meterd user add NAME --role admin\)/);
    } finally {
      empty.close();
    }
  });
});
