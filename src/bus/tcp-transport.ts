import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { BusError } from './errors.js';
import type { ByteTransport } from './transport.js';

export interface TcpTransportOptions {
  host: string;
  port: number;
  /** How long to wait for the converter to accept the connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** TCP keep-alive probe delay, so a converter that lost power is noticed even on an idle bus. Default 10 s. */
  keepAliveMs?: number;
}

/**
 * A serial-over-Ethernet converter in TCP server mode (USR-TCP232, Moxa NPort "TCP server", …): the converter
 * owns the line settings, this end only moves bytes. Nagle is off so a request leaves as soon as it is written.
 *
 * @example
 * const converter = new TcpTransport({ host: '10.0.0.7', port: 8899 });
 * await converter.open();
 */
export class TcpTransport extends EventEmitter implements ByteTransport {
  readonly description: string;
  readonly #host: string;
  readonly #port: number;
  readonly #connectTimeoutMs: number;
  readonly #keepAliveMs: number;
  #socket: Socket | undefined;
  #connected = false;

  constructor(opts: TcpTransportOptions) {
    super();
    if (typeof opts.host !== 'string' || opts.host === '') throw new TypeError('host is not a non-empty string');
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535)
      throw new TypeError(`port is not a TCP port number (1–65535): ${opts.port}`);
    this.#host = opts.host;
    this.#port = opts.port;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.#keepAliveMs = opts.keepAliveMs ?? 10_000;
    if (!(this.#connectTimeoutMs > 0)) throw new TypeError(`connectTimeoutMs is not greater than 0: ${this.#connectTimeoutMs}`);
    this.description = `tcp://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  }

  get isOpen(): boolean {
    return this.#connected;
  }

  async open(signal?: AbortSignal): Promise<void> {
    if (this.#socket) throw new Error(`${this.description} is already open or opening`);
    if (signal?.aborted) throw new BusError('ABORTED', `${this.description}: cancelled`, { cause: signal.reason });
    const socket = new Socket();
    this.#socket = socket;
    try {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: BusError): void => {
          cleanup();
          socket.destroy();
          reject(err);
        };
        const onError = (err: Error): void => fail(this.#openFailed(err));
        const onAbort = (): void => fail(new BusError('ABORTED', `${this.description}: cancelled`, { cause: signal?.reason }));
        const timer = setTimeout(
          () =>
            fail(
              new BusError(
                'PORT_OPEN_FAILED',
                `cannot connect to ${this.description}: no answer within ${this.#connectTimeoutMs} ms; check the converter's IP address, power and network cable`,
              ),
            ),
          this.#connectTimeoutMs,
        );
        const cleanup = (): void => {
          clearTimeout(timer);
          socket.off('error', onError);
          signal?.removeEventListener('abort', onAbort);
        };
        socket.once('error', onError);
        signal?.addEventListener('abort', onAbort, { once: true });
        socket.connect({ host: this.#host, port: this.#port }, () => {
          cleanup();
          resolve();
        });
      });
    } catch (err) {
      this.#socket = undefined;
      throw err;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.#keepAliveMs);
    this.#connected = true;
    socket.on('data', (chunk: Buffer) => this.emit('data', chunk));
    let lastError: Error | undefined;
    socket.on('error', (err: Error) => (lastError = err));
    socket.on(
      'end',
      () =>
        (lastError ??= new Error(`${this.description} closed the connection (converter restarted, or another client took its only slot?)`)),
    );
    socket.on('close', () => this.#closed(socket, lastError ?? new Error(`${this.description} connection closed`)));
  }

  write(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    const socket = this.#socket;
    if (!socket || !this.#connected) return Promise.reject(new Error(`${this.description} is not connected`));
    if (signal?.aborted) return Promise.reject(new BusError('ABORTED', `${this.description}: cancelled`, { cause: signal.reason }));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        socket.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onClose = (): void => done(new Error(`${this.description} closed during a write`));
      const onAbort = (): void => done(new BusError('ABORTED', `${this.description}: cancelled`, { cause: signal?.reason }));
      socket.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.write(bytes, (err) => done(err ?? undefined));
    });
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#connected = false;
    if (!socket || socket.destroyed) return;
    socket.removeAllListeners('data');
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  #closed(socket: Socket, err: Error): void {
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    this.#connected = false;
    socket.removeAllListeners('data');
    this.emit('lost', err);
  }

  #openFailed(err: Error & { code?: string }): BusError {
    let hint: string;
    switch (err.code) {
      case 'ECONNREFUSED':
        hint = 'the converter refused the connection: is it in TCP server mode on this port?';
        break;
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        hint = "no route to the converter: check the gateway's network and the converter's IP address";
        break;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        hint = 'the host name does not resolve: use the IP address or check DNS';
        break;
      default:
        hint = 'check the converter and the network';
    }
    return new BusError('PORT_OPEN_FAILED', `cannot connect to ${this.description}: ${hint} (${err.message})`, { cause: err });
  }
}
