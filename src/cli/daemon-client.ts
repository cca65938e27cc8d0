import { connect, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import type { z } from 'zod';
import type { GatewayConfig } from '../config/index.js';
import type { DaemonStatus, ReplyFrame, RequestFrame } from '../control/index.js';
import type { COMMAND_SCHEMAS, CommandName } from '../uplink/commands/schema.js';
import type { CommandReply } from '../uplink/commands/types.js';
import { CliError } from './errors.js';

/**
 * The CLI's side of the daemon's control socket (src/control, docs/control-socket.md): find the daemon of a config,
 * send it a command as the station would send it over MQTT, and get the final reply.
 */

/** A daemon that answers on the config's control socket. */
export interface DaemonHandle {
  readonly socketPath: string;
}

/** A command's request as on MQTT (the input of its schema), without `signature` and `ts`. */
export type DaemonRequest<C extends CommandName> = Omit<z.input<(typeof COMMAND_SCHEMAS)[C]>, 'signature' | 'ts'>;

export interface SendOptions {
  /** Aborting closes the connection: the command still finishes in the daemon, with its record. */
  readonly signal?: AbortSignal;
  /** Recorded with the command; default the OS user name. */
  readonly operator?: string;
  /** Told when the daemon accepted the command and its handler runs. */
  readonly onAccepted?: () => void;
}

/** The OS user running the CLI: who a command through the socket is recorded as, unless `--operator` says otherwise. */
export function defaultOperator(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'technician';
  }
}

/**
 * The running daemon of `config`, or null when none runs (no socket, or a stale one of a killed daemon). A socket
 * this user may not open is an error, not "no daemon": working around the daemon would fight it for the port.
 */
export async function findDaemon(config: GatewayConfig): Promise<DaemonHandle | null> {
  const path = config.control.socketPath;
  try {
    (await open(path)).destroy();
    return { socketPath: path };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return null;
    throw connectError(path, err);
  }
}

/**
 * Sends one command to the daemon and resolves with its final reply (`done`, `failed` or `rejected`; `accepted` only
 * when the daemon stopped before the command finished: it then resumes at the next start). The request is the MQTT
 * request of the command (src/uplink/commands/schema.ts); the daemon checks it with the same schema.
 *
 * ```ts
 * const reply = await sendToDaemon(config, 'read', { requestId: 'cli-1', meter: 'room-101', points: ['voltage.a'] });
 * if (reply.status === 'done') console.log(reply.result);
 * ```
 */
export async function sendToDaemon<C extends CommandName>(
  config: GatewayConfig,
  command: C,
  request: DaemonRequest<C>,
  options: SendOptions = {},
): Promise<CommandReply> {
  const frame: RequestFrame = { type: 'command', command, operator: options.operator ?? defaultOperator(), request };
  let reply: CommandReply | undefined;
  await exchange(config.control.socketPath, frame, options.signal, (answer) => {
    if (answer.type === 'error') throw new CliError(answer.error.code, answer.error.message);
    if (answer.type !== 'reply') return false;
    reply = answer.reply;
    if (!answer.final) options.onAccepted?.();
    return answer.final;
  });
  if (reply === undefined)
    throw new CliError('DAEMON_GONE', 'the daemon closed the connection without a reply; see `meterd status` and its log');
  return reply;
}

/** What the daemon is doing now (`meterd status`). */
export async function daemonStatus(config: GatewayConfig, options: { signal?: AbortSignal } = {}): Promise<DaemonStatus> {
  let status: DaemonStatus | undefined;
  await exchange(config.control.socketPath, { type: 'status' }, options.signal, (answer) => {
    if (answer.type === 'error') throw new CliError(answer.error.code, answer.error.message);
    if (answer.type !== 'status') return false;
    status = answer.status;
    return true;
  });
  if (status === undefined) throw new CliError('DAEMON_GONE', 'the daemon closed the connection without a status');
  return status;
}

/**
 * Reads a command's final reply into a CLI result: the result of `done`; a CliError with the daemon's code for
 * `rejected` and `failed`, and for a command the daemon had to leave for its next start.
 */
export function resultOf(command: string, reply: CommandReply): Record<string, unknown> {
  if (reply.status === 'done') return reply.result ?? {};
  if (reply.status === 'accepted')
    throw new CliError(
      'DAEMON_STOPPED',
      `the daemon stopped while the ${command} ran (request ${reply.requestId}); it finishes when the daemon starts again`,
    );
  const error = reply.error ?? { code: reply.status.toUpperCase(), message: `the ${command} was ${reply.status}` };
  throw new CliError(error.code, `${error.message}${error.field ? ` (${error.field})` : ''}`);
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function connectError(path: string, err: unknown): CliError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM')
    return new CliError(
      'DAEMON_PERMISSION_DENIED',
      `${path}: permission denied; the control socket is for the service user and its group (add yourself to that group, or use sudo)`,
    );
  return new CliError('DAEMON_UNREACHABLE', `cannot reach the daemon at ${path}: ${(err as Error).message}`);
}

/** Writes one frame and reads answers until `take` says it had the last one (or throws). */
async function exchange(
  path: string,
  frame: RequestFrame,
  signal: AbortSignal | undefined,
  take: (answer: ReplyFrame) => boolean,
): Promise<void> {
  signal?.throwIfAborted();
  let socket: Socket;
  try {
    socket = await open(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED')
      throw new CliError(
        'DAEMON_NOT_RUNNING',
        `no daemon answers on ${path}; start it (systemctl start meterd) or leave out -c to work directly`,
      );
    throw connectError(path, err);
  }
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = () => finish(signal?.reason ?? new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          if (take(JSON.parse(line) as ReplyFrame)) return finish();
        } catch (err) {
          return finish(err);
        }
      }
    });
    socket.on('error', (err) => finish(new CliError('DAEMON_UNREACHABLE', `the connection to the daemon failed: ${err.message}`)));
    socket.on('close', () => finish());
    socket.write(`${JSON.stringify(frame)}\n`);
  });
}
