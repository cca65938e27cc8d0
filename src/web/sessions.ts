import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { UserRole } from '../services/users.js';

export interface Session {
  readonly token: string;
  readonly user: string;
  readonly role: UserRole;
  /** Sent back in the `x-csrf-token` header of every state-changing request. */
  readonly csrf: string;
  readonly startedAt: number;
  lastSeen: number;
}

/** However active, a session ends after this: a shift, not a week. */
export const MAX_SESSION_MS = 12 * 3_600_000;

/**
 * Signed-in sessions, in memory: a restart of the daemon signs everyone out, which is what a counter PC left open
 * over a restart should see. A session ends after `idleMs` without a request, or MAX_SESSION_MS after sign-in.
 */
export class Sessions {
  readonly #byToken = new Map<string, Session>();

  constructor(private readonly opts: { readonly clock: Clock; readonly idleMs: number }) {}

  open(user: string, role: UserRole): Session {
    const now = this.opts.clock.now();
    this.#sweep(now);
    const session: Session = {
      token: randomBytes(32).toString('base64url'),
      user,
      role,
      csrf: randomBytes(24).toString('base64url'),
      startedAt: now,
      lastSeen: now,
    };
    this.#byToken.set(session.token, session);
    return session;
  }

  /** The live session of a cookie, its idle time restarted; undefined when unknown or expired. */
  touch(token: string | undefined): Session | undefined {
    if (token === undefined) return undefined;
    const s = this.#byToken.get(token);
    if (s === undefined) return undefined;
    const now = this.opts.clock.now();
    if (this.#expired(s, now)) {
      this.#byToken.delete(token);
      return undefined;
    }
    s.lastSeen = now;
    return s;
  }

  /** The live session of a cookie without restarting its idle time (the live-update stream must not keep it alive). */
  peek(token: string | undefined): Session | undefined {
    const s = token === undefined ? undefined : this.#byToken.get(token);
    return s === undefined || this.#expired(s, this.opts.clock.now()) ? undefined : s;
  }

  close(token: string | undefined): void {
    if (token !== undefined) this.#byToken.delete(token);
  }

  /** A user removed or given a new password is signed out everywhere. */
  closeUser(user: string): void {
    for (const [token, s] of this.#byToken) if (s.user === user) this.#byToken.delete(token);
  }

  #expired(s: Session, now: number): boolean {
    return now - s.lastSeen > this.opts.idleMs || now - s.startedAt > MAX_SESSION_MS;
  }

  #sweep(now: number): void {
    for (const [token, s] of this.#byToken) if (this.#expired(s, now)) this.#byToken.delete(token);
  }
}

/** Constant-time comparison of a CSRF token. */
export function sameToken(expected: string, got: unknown): boolean {
  if (typeof got !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(got);
  return a.length === b.length && timingSafeEqual(a, b);
}
