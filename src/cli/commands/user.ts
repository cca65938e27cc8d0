import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../clock.js';
import { ensureDataDir } from '../../config/data-dir.js';
import { localDateTime } from '../../services/books/periods.js';
import { parseUserRole, UserService, UsersError } from '../../services/users.js';
import { openStore } from '../../store/index.js';
import { loadConfigFile } from '../config-file.js';
import { CliError, usageError } from '../errors.js';

interface Io {
  stdin: NodeJS.ReadableStream;
  out: (line: string) => void;
}

/** `meterd user add|list|remove|passwd`: the web console's users, in the gateway's SQLite store. */
export function registerUserCommand(program: Command, io: Io): void {
  const user = program
    .command('user')
    .description("the web console's users: add, list, remove, passwd (roles cashier, technician, admin)")
    .addHelpText(
      'after',
      `
Examples:
  meterd user add wang --role cashier -c /etc/meterd/meterd.yaml          # asks for the password twice
  meterd user add li --role technician --password-file /root/li.pw -c /etc/meterd/meterd.yaml
  meterd user list -c /etc/meterd/meterd.yaml
  meterd user passwd wang -c /etc/meterd/meterd.yaml                       # also lifts a lock-out
  meterd user remove wang -c /etc/meterd/meterd.yaml

Roles: cashier (top-up, card sales, books), technician (relay, read now, time sync, alerts), admin (users).
Passwords: at least 8 characters, stored only as scrypt hashes. The running daemon sees changes at once.`,
    );
  const withConfig = (c: Command) => c.option('-c, --config <file>', 'the gateway config (default $METERD_CONFIG)');

  withConfig(user.command('add <name>'))
    .description('add a user')
    .requiredOption('--role <role>', 'cashier, technician or admin')
    .option('--password-file <file>', 'read the password from the first line of this file instead of asking')
    .action(async (name: string, opts: { config?: string; role: string; passwordFile?: string }) => {
      const role = parseUserRole(opts.role);
      if (!role.ok) throw usageError(`--role ${role.reason}`);
      const password = await passwordOf(opts.passwordFile, io);
      await withUsers(opts.config, async (users) => {
        await users.add(name, role.value, password);
        io.out(`user ${name} added (${role.value})`);
      });
    });

  withConfig(user.command('list'))
    .description('list the users')
    .action(async (opts: { config?: string }) => {
      await withUsers(opts.config, (users, tz) => {
        const list = users.list();
        for (const u of list) {
          const lock = u.lockedUntil !== null && u.lockedUntil > Date.now() ? `  locked until ${localDateTime(u.lockedUntil, tz)}` : '';
          io.out(`${u.name.padEnd(20)} ${u.role.padEnd(11)} added ${localDateTime(u.createdAt, tz)}${lock}`);
        }
        io.out(`${list.length} user${list.length === 1 ? '' : 's'}`);
      });
    });

  withConfig(user.command('remove <name>'))
    .description('remove a user (signed out at the next request)')
    .action(async (name: string, opts: { config?: string }) => {
      await withUsers(opts.config, (users) => {
        users.remove(name);
        io.out(`user ${name} removed`);
      });
    });

  withConfig(user.command('passwd <name>'))
    .description('set a new password (and lift a lock-out)')
    .option('--password-file <file>', 'read the password from the first line of this file instead of asking')
    .action(async (name: string, opts: { config?: string; passwordFile?: string }) => {
      const password = await passwordOf(opts.passwordFile, io);
      await withUsers(opts.config, async (users) => {
        await users.setPassword(name, password);
        io.out(`password of ${name} changed`);
      });
    });
}

async function withUsers(config: string | undefined, fn: (users: UserService, timeZone: string) => unknown): Promise<void> {
  const path = config ?? process.env.METERD_CONFIG;
  if (path === undefined || path === '') throw usageError('name the gateway config: -c FILE (or set METERD_CONFIG)');
  const cfg = loadConfigFile(path);
  ensureDataDir(cfg.gateway.dataDir);
  const store = openStore({ path: join(cfg.gateway.dataDir, 'meterd.db'), clock: systemClock });
  try {
    await fn(new UserService({ store, clock: systemClock }), cfg.gateway.timeZone);
  } catch (err) {
    if (err instanceof UsersError) throw new CliError(err.code, err.message, err.code === 'USER_INVALID' ? 2 : 1);
    throw err;
  } finally {
    store.close();
  }
}

/** From --password-file, else asked twice on the terminal (not echoed), else the first line of piped stdin. */
async function passwordOf(file: string | undefined, io: Io): Promise<string> {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw usageError(`--password-file ${file}: ${(err as Error).message}`);
    }
    return text.split(/\r?\n/)[0] ?? '';
  }
  const stdin = io.stdin as NodeJS.ReadStream;
  if (stdin.isTTY !== true) return (await readAll(stdin)).split(/\r?\n/)[0] ?? '';
  const first = await ask('password: ');
  const again = await ask('again: ');
  if (first !== again) throw usageError('the two passwords differ; nothing was changed');
  return first;
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => {
      text += c;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

/** One line from the terminal without echo. */
function ask(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let line = '';
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new CliError('INTERRUPTED', 'cancelled; nothing was changed', 130));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}
