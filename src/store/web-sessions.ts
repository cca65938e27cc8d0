import type { Connection } from './connection.js';
import type { UserRole } from './users.js';

/**
 * A signed-in session of the web console as stored: the SHA-256 of its cookie token, never the token itself, so a
 * copy of the database file signs nobody in. The CSRF token is kept as it is: the page needs it back after a reload,
 * and it is worth nothing without the cookie.
 */
export interface WebSessionRecord {
  /** base64url SHA-256 of the cookie token. */
  readonly tokenHash: string;
  readonly user: string;
  readonly role: UserRole;
  readonly csrf: string;
  readonly startedAt: number;
  readonly lastSeen: number;
}

interface SessionRow {
  token_hash: string;
  user_name: string;
  role: UserRole;
  csrf: string;
  started_at: number;
  last_seen: number;
}

/**
 * The web console's sessions (migration 15), so a daemon restart does not sign the counter out. A user's sessions go
 * with the user (ON DELETE CASCADE) and with a new password (UserStore.setPassword). Each write is one statement.
 */
export class WebSessionStore {
  constructor(private readonly connection: Connection) {}

  add(s: WebSessionRecord): void {
    this.connection
      .statement<[string, string, string, string, number, number]>(
        'INSERT INTO web_sessions (token_hash, user_name, role, csrf, started_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(s.tokenHash, s.user, s.role, s.csrf, s.startedAt, s.lastSeen);
  }

  get(tokenHash: string): WebSessionRecord | null {
    const r = this.connection.statement<[string], SessionRow>('SELECT * FROM web_sessions WHERE token_hash = ?').get(tokenHash);
    return r === undefined ? null : toRecord(r);
  }

  touch(tokenHash: string, lastSeen: number): void {
    this.connection.statement<[number, string]>('UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?').run(lastSeen, tokenHash);
  }

  remove(tokenHash: string): boolean {
    return this.connection.statement<[string]>('DELETE FROM web_sessions WHERE token_hash = ?').run(tokenHash).changes === 1;
  }

  removeUser(user: string): number {
    return this.connection.statement<[string]>('DELETE FROM web_sessions WHERE user_name = ?').run(user).changes;
  }

  /** Deletes the sessions idle since before `lastSeenBefore` or started before `startedBefore`; returns how many. */
  removeExpired(lastSeenBefore: number, startedBefore: number): number {
    return this.connection
      .statement<[number, number]>('DELETE FROM web_sessions WHERE last_seen < ? OR started_at < ?')
      .run(lastSeenBefore, startedBefore).changes;
  }

  count(): number {
    return this.connection.statement<[], { n: number }>('SELECT count(*) AS n FROM web_sessions').get()?.n ?? 0;
  }
}

function toRecord(r: SessionRow): WebSessionRecord {
  return { tokenHash: r.token_hash, user: r.user_name, role: r.role, csrf: r.csrf, startedAt: r.started_at, lastSeen: r.last_seen };
}
