import type { Connection } from './connection.js';

export const USER_ROLES = ['cashier', 'technician', 'admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** A console user as stored: the hash only, never the password. */
export interface UserRecord {
  readonly name: string;
  readonly role: UserRole;
  /** `scrypt$N$r$p$salt$hash`, base64 parts (src/services/users.ts). */
  readonly passwordHash: string;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Failed sign-ins since the last good one. */
  readonly failedCount: number;
  /** Epoch ms until which sign-in is refused, or null. */
  readonly lockedUntil: number | null;
}

interface UserRow {
  name: string;
  role: UserRole;
  password_hash: string;
  created_at: number;
  updated_at: number;
  failed_count: number;
  locked_until: number | null;
}

/** The users table. Each write is one statement, so it needs no transaction of its own. */
export class UserStore {
  constructor(private readonly connection: Connection) {}

  get(name: string): UserRecord | null {
    const row = this.connection.statement<[string], UserRow>('SELECT * FROM users WHERE name = ?').get(name);
    return row === undefined ? null : toUser(row);
  }

  list(): UserRecord[] {
    return this.connection.statement<[], UserRow>('SELECT * FROM users ORDER BY name').all().map(toUser);
  }

  count(): number {
    return this.connection.statement<[], { n: number }>('SELECT count(*) AS n FROM users').get()?.n ?? 0;
  }

  /** False when the name is taken. */
  add(user: { name: string; role: UserRole; passwordHash: string }): boolean {
    const now = this.connection.clock.now();
    const r = this.connection
      .statement<[string, string, string, number, number]>(
        'INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING',
      )
      .run(user.name, user.role, user.passwordHash, now, now);
    return r.changes === 1;
  }

  /** False when there is no such user. Its console sessions go with it (ON DELETE CASCADE). */
  remove(name: string): boolean {
    return this.connection.statement<[string]>('DELETE FROM users WHERE name = ?').run(name).changes === 1;
  }

  /** A new password also lifts a lock-out and ends the user's console sessions. False when there is no such user. */
  setPassword(name: string, passwordHash: string): boolean {
    return this.connection.db.transaction(() => {
      const changed =
        this.connection
          .statement<[string, number, string]>(
            'UPDATE users SET password_hash = ?, updated_at = ?, failed_count = 0, locked_until = NULL WHERE name = ?',
          )
          .run(passwordHash, this.connection.clock.now(), name).changes === 1;
      this.connection.statement<[string]>('DELETE FROM web_sessions WHERE user_name = ?').run(name);
      return changed;
    })();
  }

  /** After a sign-in: the failure count and lock-out as the service decided them. */
  setSignInState(name: string, failedCount: number, lockedUntil: number | null): void {
    this.connection
      .statement<[number, number | null, string]>('UPDATE users SET failed_count = ?, locked_until = ? WHERE name = ?')
      .run(failedCount, lockedUntil, name);
  }
}

function toUser(r: UserRow): UserRecord {
  return {
    name: r.name,
    role: r.role,
    passwordHash: r.password_hash,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    failedCount: r.failed_count,
    lockedUntil: r.locked_until,
  };
}
