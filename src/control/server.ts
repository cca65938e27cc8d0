import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../log.js';
import type { LocalSender, LocalSubmission } from '../uplink/commands/router.js';
import { ControlError } from './errors.js';
import { MAX_FRAME_BYTES, parseRequestFrame, type ReplyFrame } from './frames.js';
import type { DaemonStatus } from './status.js';

/**
 * What the socket serves: the command router's local door (the same handlers, record, de-duplication and outcome
 * record as MQTT) and the daemon's status. Built by the composition root.
 */
export interface ControlDesk {
  submit(command: string, request: unknown, sender: LocalSender): LocalSubmission;
  status(): DaemonStatus;
}

export interface ControlServerOptions {
  /** Absolute path of the Unix socket (`config.control.socketPath`). */
  readonly path: string;
  readonly logger?: Logger;
  /** Default MAX_FRAME_BYTES. */
  readonly maxFrameBytes?: number;
}

/** Owner and group read and write: the service user and the technicians of its group (connecting needs write). */
const SOCKET_MODE = 0o660;

/**
 * The daemon's local control socket: newline-delimited JSON frames (src/control/frames.ts), no network listener.
 * A command runs to its end in the daemon whatever the client does: a client that hangs up mid-command only misses
 * the reply; the outcome is recorded as for any command.
 *
 * ```ts
 * const control = new ControlServer({ path: config.control.socketPath, logger });
 * await control.start();   // refuses (DAEMON_RUNNING) when another daemon answers there; replaces a stale file
 * control.serve(desk);     // once the router runs; until then frames are answered DAEMON_STARTING
 * …
 * await control.stop();
 * ```
 */
export class ControlServer {
  readonly #path: string;
  #desk: ControlDesk | undefined;
  readonly #log: Logger;
  readonly #maxFrameBytes: number;
  readonly #clients = new Set<Socket>();
  #server: Server | undefined;
  #stopping = false;

  constructor(options: ControlServerOptions) {
    this.#path = options.path;
    this.#log = (options.logger ?? silentLogger).child({ component: 'control' });
    this.#maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  get path(): string {
    return this.#path;
  }

  async start(): Promise<void> {
    await claimSocketPath(this.#path);
    const server = createServer((socket) => this.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new ControlError(
            'CONTROL_SOCKET_UNUSABLE',
            `cannot listen on ${this.#path} (${err.code ?? err.message}): choose another control.socket`,
            { cause: err },
          ),
        ),
      );
      server.listen(this.#path, () => resolve());
    });
    chmodSync(this.#path, SOCKET_MODE);
    server.on('error', (err) => this.#log.error({ err }, 'control socket error'));
    this.#server = server;
    this.#log.info({ socket: this.#path }, 'control socket listening');
  }

  /** From now on frames are served by `desk`. */
  serve(desk: ControlDesk): void {
    this.#desk = desk;
  }

  /** No new connections; open ones are closed once their replies are written, and the socket file is removed. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const server = this.#server;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#clients) socket.end();
    const forced = setTimeout(() => {
      for (const socket of this.#clients) socket.destroy();
    }, 1000);
    await closed;
    clearTimeout(forced);
  }

  #serve(socket: Socket): void {
    this.#clients.add(socket);
    socket.on('close', () => this.#clients.delete(socket));
    socket.on('error', (err) => this.#log.debug({ err }, 'control client connection error'));
    let buffered = '';
    let bufferedBytes = 0;
    const decoder = new TextDecoder('utf-8');
    socket.on('data', (chunk: Buffer) => {
      let text = decoder.decode(chunk, { stream: true });
      for (;;) {
        const nl = text.indexOf('\n');
        if (nl < 0) break;
        const line = buffered + text.slice(0, nl);
        text = text.slice(nl + 1);
        buffered = '';
        bufferedBytes = 0;
        if (Buffer.byteLength(line) > this.#maxFrameBytes) {
          this.#tooLarge(socket);
          return;
        }
        if (line.trim() !== '') this.#onFrame(socket, line);
      }
      buffered += text;
      bufferedBytes += Buffer.byteLength(text);
      if (bufferedBytes > this.#maxFrameBytes) this.#tooLarge(socket);
    });
  }

  #tooLarge(socket: Socket): void {
    this.#send(socket, {
      type: 'error',
      error: { code: 'FRAME_TOO_LARGE', message: `a control frame is at most ${this.#maxFrameBytes} bytes up to its newline` },
    });
    socket.end();
    socket.removeAllListeners('data');
  }

  #onFrame(socket: Socket, line: string): void {
    const parsed = parseRequestFrame(line);
    if (!parsed.ok) {
      this.#send(socket, parsed.error);
      return;
    }
    const frame = parsed.frame;
    if (this.#stopping) {
      this.#send(socket, {
        type: 'error',
        error: { code: 'DAEMON_STOPPING', message: 'the daemon is stopping; try again when it is back' },
      });
      return;
    }
    const desk = this.#desk;
    if (desk === undefined) {
      this.#send(socket, {
        type: 'error',
        error: { code: 'DAEMON_STARTING', message: 'the daemon is starting; try again in a few seconds' },
      });
      return;
    }
    if (frame.type === 'status') {
      this.#send(socket, { type: 'status', status: desk.status() });
      return;
    }
    const { command, request, operator } = frame;
    const { first, final } = desk.submit(command, request, { operator });
    const done = first.status !== 'accepted';
    this.#send(socket, { type: 'reply', command, final: done, reply: first });
    if (done) return;
    // The job is the daemon's from here: a client that went away only misses this line.
    void final.then((reply) => this.#send(socket, { type: 'reply', command, final: true, reply }));
  }

  #send(socket: Socket, frame: ReplyFrame): void {
    if (socket.destroyed || !socket.writable) return;
    socket.write(`${JSON.stringify(frame)}\n`);
  }
}

/**
 * Makes the path free for this daemon: a live socket there means another daemon (refused); a socket nobody answers
 * on was left by a daemon that was killed (removed); anything else is not ours to remove.
 */
async function claimSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ControlError('CONTROL_SOCKET_UNUSABLE', `cannot check ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!isSocket)
    throw new ControlError('CONTROL_SOCKET_UNUSABLE', `${path} exists and is not a socket; remove it or choose another control.socket`);
  if (await answers(path))
    throw new ControlError(
      'DAEMON_RUNNING',
      `another meterd is running for this data directory (it answers on ${path}); stop it first (systemctl stop meterd), or use \`meterd status\``,
    );
  unlinkSync(path);
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
