import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { MeterdError } from '../errors.js';
import { type Parsed, ok, refused } from '../values/index.js';
import { USER_ROLES, type Store, type UserRecord, type UserRole } from '../store/index.js';

export { USER_ROLES, type UserRole };

export type UsersErrorCode = 'USER_EXISTS' | 'USER_NOT_FOUND' | 'USER_INVALID';

export class UsersError extends MeterdError<UsersErrorCode> {
  override readonly name = 'UsersError';
}

/** Failed sign-ins in a row after which the account is locked (field practice: five tries). */
export const MAX_FAILED_SIGN_INS = 5;
/** The first lock-out; each further failure while over the limit doubles it, up to LOCK_MAX_MS. */
export const LOCK_BASE_MS = 60_000;
export const LOCK_MAX_MS = 60 * 60_000;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 256;

// scrypt's cost: about 50 ms and 16 MiB per hash on a gateway's ARM core; the parameters travel with each hash.
const SCRYPT = { N: 16384, r: 8, p: 1, keyLen: 32, saltLen: 16 } as const;

/** A login name: a letter or digit first, then letters, digits, dot, dash, underscore; up to 64 (Chinese names too). */
export function parseUserName(value: unknown): Parsed<string> {
  if (typeof value !== 'string' || value.length === 0) return refused('must be a user name');
  if (value.length > 64) return refused('is longer than 64 characters');
  if (!/^[\p{L}\p{N}][\p{L}\p{N}._-]*$/u.test(value))
    return refused('may hold letters, digits, dot, dash and underscore, starting with a letter or digit');
  return ok(value);
}

export function parseUserRole(value: unknown): Parsed<UserRole> {
  return USER_ROLES.includes(value as UserRole) ? ok(value as UserRole) : refused(`must be one of ${USER_ROLES.join(', ')}`);
}

export function parsePassword(value: unknown): Parsed<string> {
  if (typeof value !== 'string') return refused('must be text');
  if (value.length < MIN_PASSWORD_LENGTH) return refused(`must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (value.length > MAX_PASSWORD_LENGTH) return refused(`is longer than ${MAX_PASSWORD_LENGTH} characters`);
  return ok(value);
}

/** What a sign-in attempt came to. `locked` says until when; a wrong name and a wrong password read the same. */
export type SignInResult =
  | { readonly ok: true; readonly user: { readonly name: string; readonly role: UserRole } }
  | { readonly ok: false; readonly reason: 'wrong'; readonly triesLeft: number | null }
  | { readonly ok: false; readonly reason: 'locked'; readonly until: number };

export interface PublicUser {
  readonly name: string;
  readonly role: UserRole;
  readonly createdAt: number;
  readonly lockedUntil: number | null;
}

/**
 * The console's users: scrypt-hashed passwords (node:crypto), roles, and the lock-out after MAX_FAILED_SIGN_INS
 * wrong passwords in a row (doubling each further failure), kept in SQLite so a restart does not reset it.
 */
export class UserService {
  constructor(private readonly opts: { readonly store: Store; readonly clock: Clock }) {}

  async add(name: string, role: UserRole, password: string): Promise<void> {
    const hash = await hashPassword(checked('name', parseUserName(name)), checked('password', parsePassword(password)));
    if (!this.opts.store.users.add({ name, role: checked('role', parseUserRole(role)), passwordHash: hash }))
      throw new UsersError('USER_EXISTS', `a user named ${name} exists already; choose another name or use \`meterd user passwd\``);
  }

  async setPassword(name: string, password: string): Promise<void> {
    const hash = await hashPassword(name, checked('password', parsePassword(password)));
    if (!this.opts.store.users.setPassword(name, hash)) throw notFound(name);
  }

  remove(name: string): void {
    if (!this.opts.store.users.remove(name)) throw notFound(name);
  }

  list(): PublicUser[] {
    return this.opts.store.users.list().map(publicUser);
  }

  get(name: string): PublicUser | null {
    const u = this.opts.store.users.get(name);
    return u === null ? null : publicUser(u);
  }

  count(): number {
    return this.opts.store.users.count();
  }

  /** Checks a password. While locked, the password is not even compared: guessing goes nowhere. */
  async signIn(name: string, password: string): Promise<SignInResult> {
    const user = typeof name === 'string' ? this.opts.store.users.get(name) : null;
    const now = this.opts.clock.now();
    if (user === null) {
      // The same work as for a real user, so the time taken does not tell which names exist.
      await verifyPassword(DUMMY_HASH, String(password));
      return { ok: false, reason: 'wrong', triesLeft: null };
    }
    if (user.lockedUntil !== null && user.lockedUntil > now) return { ok: false, reason: 'locked', until: user.lockedUntil };
    if (await verifyPassword(user.passwordHash, String(password))) {
      this.opts.store.users.setSignInState(user.name, 0, null);
      return { ok: true, user: { name: user.name, role: user.role } };
    }
    const failed = user.failedCount + 1;
    if (failed >= MAX_FAILED_SIGN_INS) {
      const until = now + Math.min(LOCK_MAX_MS, LOCK_BASE_MS * 2 ** (failed - MAX_FAILED_SIGN_INS));
      this.opts.store.users.setSignInState(user.name, failed, until);
      return { ok: false, reason: 'locked', until };
    }
    this.opts.store.users.setSignInState(user.name, failed, null);
    return { ok: false, reason: 'wrong', triesLeft: MAX_FAILED_SIGN_INS - failed };
  }
}

function publicUser(u: UserRecord): PublicUser {
  return { name: u.name, role: u.role, createdAt: u.createdAt, lockedUntil: u.lockedUntil };
}

function notFound(name: string): UsersError {
  return new UsersError('USER_NOT_FOUND', `there is no user named ${name}; \`meterd user list\` shows them`);
}

function checked<T>(field: string, parsed: Parsed<T>): T {
  if (!parsed.ok) throw new UsersError('USER_INVALID', `${field} ${parsed.reason}`);
  return parsed.value;
}

function scryptAsync(password: string, salt: Buffer, keyLen: number, o: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keyLen, { ...o, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$salt$key` with base64 salt and key. */
export async function hashPassword(_name: string, password: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltLen);
  const key = await scryptAsync(password, salt, SCRYPT.keyLen, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || salt === undefined || key === undefined) return false;
  const expected = Buffer.from(key, 'base64');
  const got = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) });
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;
