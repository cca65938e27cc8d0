import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { LOCK_BASE_MS, LOCK_MAX_MS, UserService } from '../../src/services/users.js';
import { openStore, type Store } from '../../src/store/index.js';
import { MAX_SESSION_MS, Sessions, sameToken, tokenHash } from '../../src/web/sessions.js';

let store: Store;
let clock: ManualClock;
let users: UserService;

beforeEach(() => {
  clock = new ManualClock(Date.UTC(2026, 11, 4, 8));
  store = openStore({ path: join(mkdtempSync(join(tmpdir(), 'meterd-users-')), 'meterd.db'), clock });
  users = new UserService({ store, clock });
});
afterEach(() => store.close());

describe('console users', () => {
  it('keeps only a salted scrypt hash, never the password', async () => {
    await users.add('wang', 'cashier', 'correct horse');
    await users.add('li', 'cashier', 'correct horse');
    const [li, wang] = store.users.list();
    expect(wang!.passwordHash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(wang!.passwordHash).not.toContain('correct horse');
    expect(wang!.passwordHash).not.toBe(li!.passwordHash);
    expect(await users.signIn('wang', 'correct horse')).toEqual({ ok: true, user: { name: 'wang', role: 'cashier' } });
  });

  it('refuses a short password, an unknown role, a bad name and a taken name, each with a sentence', async () => {
    await expect(users.add('wang', 'cashier', 'short')).rejects.toThrow('password must be at least 8 characters');
    await expect(users.add('wang', 'boss' as 'admin', 'long enough')).rejects.toThrow('role must be one of cashier, technician, admin');
    await expect(users.add('wang li', 'cashier', 'long enough')).rejects.toThrow(/name may hold letters/);
    await users.add('王芳', 'cashier', 'long enough');
    await expect(users.add('王芳', 'technician', 'long enough')).rejects.toThrow(/exists already/);
  });

  it('answers an unknown name exactly as a wrong password', async () => {
    expect(await users.signIn('nobody', 'whatever1')).toEqual({ ok: false, reason: 'wrong', triesLeft: null });
  });

  it('locks after five wrong passwords, doubles the lock with each further failure, and a new password lifts it', async () => {
    await users.add('wang', 'cashier', 'correct horse');
    const tries = [];
    for (let i = 0; i < 4; i++) tries.push(await users.signIn('wang', 'wrong one'));
    expect(tries.map((t) => (t.ok ? 'ok' : t.reason === 'wrong' ? t.triesLeft : 'locked'))).toEqual([4, 3, 2, 1]);
    expect(await users.signIn('wang', 'wrong one')).toEqual({ ok: false, reason: 'locked', until: clock.now() + LOCK_BASE_MS });
    // While locked, not even the right password gets in.
    expect(await users.signIn('wang', 'correct horse')).toMatchObject({ ok: false, reason: 'locked' });
    clock.advance(LOCK_BASE_MS);
    expect(await users.signIn('wang', 'wrong again')).toEqual({ ok: false, reason: 'locked', until: clock.now() + 2 * LOCK_BASE_MS });
    clock.advance(2 * LOCK_BASE_MS);
    expect(await users.signIn('wang', 'correct horse')).toMatchObject({ ok: true });
    expect(store.users.get('wang')).toMatchObject({ failedCount: 0, lockedUntil: null });

    for (let i = 0; i < 12; i++) {
      await users.signIn('wang', 'wrong');
      clock.advance(LOCK_MAX_MS);
    }
    const r = await users.signIn('wang', 'wrong');
    expect(r).toEqual({ ok: false, reason: 'locked', until: clock.now() + LOCK_MAX_MS });
    await users.setPassword('wang', 'a new password');
    expect(await users.signIn('wang', 'a new password')).toMatchObject({ ok: true });
  });

  it('removes a user, and says so when there is none', async () => {
    await users.add('wang', 'cashier', 'correct horse');
    users.remove('wang');
    expect(users.list()).toEqual([]);
    expect(() => users.remove('wang')).toThrow('there is no user named wang');
  });
});

describe('console sessions', () => {
  beforeEach(async () => {
    await users.add('wang', 'cashier', 'correct horse');
    await users.add('li', 'technician', 'battery staple');
  });
  const rows = () => store.webSessions.count();

  it('end after the idle time without a request, and after the longest shift however active; the expired row is deleted', () => {
    const sessions = new Sessions({ clock, idleMs: 30 * 60_000, records: store.webSessions });
    const s = sessions.open('wang', 'cashier');
    clock.advance(29 * 60_000);
    expect(sessions.touch(s.token)).toMatchObject({ user: 'wang', role: 'cashier', csrf: s.csrf });
    clock.advance(29 * 60_000);
    expect(sessions.peek(s.token)).toMatchObject({ user: 'wang', csrf: s.csrf });
    clock.advance(2 * 60_000);
    // peek() did not restart the idle time: the live-update stream does not keep a session alive.
    expect(rows()).toBe(1);
    expect(sessions.touch(s.token)).toBeUndefined();
    expect(rows()).toBe(0);

    const busy = sessions.open('li', 'technician');
    for (let t = 0; t < MAX_SESSION_MS; t += 10 * 60_000) {
      clock.advance(10 * 60_000);
      sessions.touch(busy.token);
    }
    clock.advance(10 * 60_000);
    expect(sessions.touch(busy.token)).toBeUndefined();
    expect(rows()).toBe(0);
  });

  it('keep the cookie token only as its SHA-256, and outlive the Sessions object (a restart of the daemon)', () => {
    const before = new Sessions({ clock, idleMs: 30 * 60_000, records: store.webSessions });
    const s = before.open('wang', 'cashier');
    const stored = store.webSessions.get(tokenHash(s.token))!;
    expect(stored).toMatchObject({ user: 'wang', role: 'cashier', csrf: s.csrf });
    expect(JSON.stringify(stored)).not.toContain(s.token);
    clock.advance(60_000);
    const after = new Sessions({ clock, idleMs: 30 * 60_000, records: store.webSessions });
    expect(after.touch(s.token)).toMatchObject({ user: 'wang', csrf: s.csrf, startedAt: s.startedAt });
    expect(after.touch('not-a-token')).toBeUndefined();
  });

  it('end at sign-out, for a removed user and at a new password: their rows are deleted', async () => {
    const sessions = new Sessions({ clock, idleMs: 60_000, records: store.webSessions });
    const out = sessions.open('wang', 'cashier');
    sessions.close(out.token);
    expect(sessions.touch(out.token)).toBeUndefined();
    expect(rows()).toBe(0);

    const a = sessions.open('wang', 'cashier');
    const b = sessions.open('li', 'technician');
    await users.setPassword('wang', 'a new password');
    expect(sessions.touch(a.token)).toBeUndefined();
    users.remove('li');
    expect(sessions.touch(b.token)).toBeUndefined();
    expect(rows()).toBe(0);
  });

  it('are closed for a user everywhere, and compare CSRF tokens exactly', () => {
    const sessions = new Sessions({ clock, idleMs: 60_000, records: store.webSessions });
    const a = sessions.open('wang', 'cashier');
    const b = sessions.open('wang', 'cashier');
    sessions.closeUser('wang');
    expect(sessions.touch(a.token)).toBeUndefined();
    expect(sessions.touch(b.token)).toBeUndefined();
    expect(sameToken(a.csrf, a.csrf)).toBe(true);
    expect(sameToken(a.csrf, b.csrf)).toBe(false);
    expect(sameToken(a.csrf, undefined)).toBe(false);
  });
});
