import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { UserRole } from '../services/users.js';
import type { SessionRecords } from './backend.js';

export interface Session {
  /** The cookie's value; only its hash is stored. */
  readonly token: string;
  readonly user: string;
  readonly role: UserRole;
  /** Sent back in the `x-csrf-token` header of every state-changing request. */
  readonly csrf: string;
  readonly startedAt: number;
  readonly lastSeen: number;
}

/** However active, a session ends after this: a shift, not a week. */
export const MAX_SESSION_MS = 12 * 3_600_000;
/**
 * A request moves the stored last-seen time only when it is this much older: one write per session every 15 s at most,
 * not one per request. The idle limit (at least a minute) can then come up to this much early.
 */
export const TOUCH_WRITE_MS = 15_000;

/** The SHA-256 of a cookie token, the only form in which it is stored. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/**
 * Signed-in sessions, kept in the gateway's database through `records` (hashed tokens), so a restart of the daemon
 * does not sign the counter out. A session ends after `idleMs` without a request, MAX_SESSION_MS after sign-in, at
 * sign-out, and when its user is removed or given a new password; its row is deleted then.
 */
export class Sessions {
  constructor(private readonly opts: { readonly clock: Clock; readonly idleMs: number; readonly records: SessionRecords }) {
    this.#sweep(opts.clock.now());
  }

  open(user: string, role: UserRole): Session {
    const now = this.opts.clock.now();
    this.#sweep(now);
    const token = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    this.opts.records.add({ tokenHash: tokenHash(token), user, role, csrf, startedAt: now, lastSeen: now });
    return { token, user, role, csrf, startedAt: now, lastSeen: now };
  }

  /** The live session of a cookie, its idle time restarted; undefined when unknown or expired (an expired one is deleted). */
  touch(token: string | undefined): Session | undefined {
    const s = this.#live(token);
    if (s === undefined) return undefined;
    const now = this.opts.clock.now();
    if (now - s.lastSeen >= TOUCH_WRITE_MS) this.opts.records.touch(tokenHash(s.token), now);
    return { ...s, lastSeen: now };
  }

  /** The live session of a cookie without restarting its idle time (the live-update stream must not keep it alive). */
  peek(token: string | undefined): Session | undefined {
    return this.#live(token);
  }

  close(token: string | undefined): void {
    if (token !== undefined) this.opts.records.remove(tokenHash(token));
  }

  /** A user removed or given a new password is signed out everywhere. */
  closeUser(user: string): void {
    this.opts.records.removeUser(user);
  }

  #live(token: string | undefined): Session | undefined {
    if (token === undefined || token === '') return undefined;
    const hash = tokenHash(token);
    const r = this.opts.records.get(hash);
    if (r === null) return undefined;
    const now = this.opts.clock.now();
    if (now - r.lastSeen > this.opts.idleMs || now - r.startedAt > MAX_SESSION_MS) {
      this.opts.records.remove(hash);
      return undefined;
    }
    return { token, user: r.user, role: r.role, csrf: r.csrf, startedAt: r.startedAt, lastSeen: r.lastSeen };
  }

  #sweep(now: number): void {
    this.opts.records.removeExpired(now - this.opts.idleMs, now - MAX_SESSION_MS);
  }
}

/** Constant-time comparison of a CSRF token. */
export function sameToken(expected: string, got: unknown): boolean {
  if (typeof got !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(got);
  return a.length === b.length && timingSafeEqual(a, b);
}
