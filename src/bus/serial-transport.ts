import { EventEmitter } from 'node:events';
import { SerialPort, type SerialPortOpenOptions } from 'serialport';
import { BusError } from './errors.js';
import { hangupAwareBinding, resolveSerialPath } from './serial-device.js';
import type { ByteTransport } from './transport.js';
import { describeLine, type LineSettings } from './types.js';

export interface SerialTransportOptions {
  path: string;
  line: LineSettings;
  /** Exclusive lock (TIOCEXCL/flock), so a second program cannot talk over meterd. Default true. */
  lock?: boolean;
}

/**
 * A local serial port (USB–RS-485 adapter, on-board UART) through `serialport`.
 *
 * Each `open()` makes a fresh SerialPort object: after a disconnect the old stream is left holding writes that
 * wait for an 'open' that never comes, so it is dropped rather than reused. Each `open()` also resolves the path
 * again (a `/dev/serial/by-id/…` link follows its adapter to another socket), and any read error, a hangup
 * included, closes the port and reports it `lost`.
 *
 * @example
 * const port = new SerialTransport({ path: '/dev/ttyUSB0', line: { baudRate: 2400, dataBits: 8, parity: 'even', stopBits: 1 } });
 * port.on('data', (chunk) => decoder.push(chunk));
 * port.on('lost', (err) => log.warn({ err }, 'port lost'));
 * await port.open();
 */
export class SerialTransport extends EventEmitter implements ByteTransport {
  readonly description: string;
  readonly #path: string;
  readonly #line: LineSettings;
  readonly #lock: boolean;
  #port: SerialPort | undefined;
  #device: string | undefined;

  constructor(opts: SerialTransportOptions) {
    super();
    if (typeof opts.path !== 'string' || opts.path === '') throw new TypeError('path is not a non-empty string');
    this.#path = opts.path;
    this.#line = opts.line;
    this.#lock = opts.lock ?? true;
    this.description = `${opts.path} ${describeLine(opts.line)}`;
  }

  get isOpen(): boolean {
    return this.#port?.isOpen ?? false;
  }

  /** The device the path pointed at when the port was last opened (`/dev/ttyUSB1` behind a by-id link). */
  get device(): string | undefined {
    return this.#device;
  }

  async open(signal?: AbortSignal): Promise<void> {
    if (this.#port) throw new Error(`${this.description} is already open or opening`);
    if (signal?.aborted) throw aborted(this.description, signal);
    let device: string;
    try {
      device = await resolveSerialPath(this.#path);
    } catch (err) {
      throw this.#openFailed(err as Error);
    }
    if (signal?.aborted) throw aborted(this.description, signal);
    if (this.#port) throw new Error(`${this.description} is already open or opening`);
    const port = new SerialPort({
      path: device,
      baudRate: this.#line.baudRate,
      dataBits: this.#line.dataBits,
      parity: this.#line.parity,
      stopBits: this.#line.stopBits,
      lock: this.#lock,
      autoOpen: false,
      binding: hangupAwareBinding,
    } as SerialPortOpenOptions<typeof hangupAwareBinding>);
    this.#port = port;
    this.#device = device;
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(aborted(this.description, signal!));
        signal?.addEventListener('abort', onAbort, { once: true });
        port.open((err) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) reject(this.#openFailed(err));
          else resolve();
        });
      });
    } catch (err) {
      this.#port = undefined;
      // An abort can land while the open is still in progress; close the port once it has opened.
      if (port.isOpen) port.close();
      else port.once('open', () => port.close());
      throw err;
    }
    port.on('data', (chunk: Buffer) => this.emit('data', chunk));
    port.on('close', (err: Error | null) => this.#closed(port, err ?? undefined));
    // Errors here are close failures or writes without a callback; the port is no longer trustworthy.
    port.on('error', (err: Error) => this.#closed(port, err));
  }

  write(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    const port = this.#port;
    if (!port?.isOpen) return Promise.reject(new Error(`${this.description} is not open`));
    if (signal?.aborted) return Promise.reject(aborted(this.description, signal));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        port.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      // serialport never calls back a write or drain queued on a port that closed: settle on the close instead.
      const onClose = (err: Error | null): void => done(err ?? new Error(`${this.description} closed during a write`));
      const onAbort = (): void => done(aborted(this.description, signal!));
      port.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), (err) => {
        if (err) return done(err);
        port.drain((drainErr) => done(drainErr ?? undefined));
      });
    });
  }

  async close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (!port) return;
    port.removeAllListeners('data');
    if (!port.isOpen) return;
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  #closed(port: SerialPort, err: Error | undefined): void {
    // A close we asked for (or a stale port object from before a reopen) is not a loss.
    if (this.#port !== port) return;
    this.#port = undefined;
    port.removeAllListeners('data');
    if (port.isOpen) port.close();
    // serialport reports an unplugged adapter as "bad file descriptor"/EIO; say what it means.
    const lost =
      err && (err as { disconnected?: boolean }).disconnected ? new Error(`device disconnected: ${err.message}`, { cause: err }) : err;
    this.emit('lost', lost ?? new Error(`${this.description} closed unexpectedly`));
  }

  #openFailed(err: Error): BusError {
    const text = err.message;
    let hint: string;
    if (/cannot lock port|resource temporarily unavailable/i.test(text)) {
      hint = `another program holds it (the meterd daemon? then give the command its config, -c FILE, and it goes through the daemon; or minicom, a Modbus tool); find it with: fuser -v ${this.#path}`;
    } else if (/no such file or directory/i.test(text)) {
      hint = 'the device does not exist: is the USB adapter plugged in? List adapters with: ls -l /dev/serial/by-id';
    } else if (/permission denied/i.test(text)) {
      hint = `no permission: add the service user to the dialout group, or check: ls -l ${this.#path}`;
    } else {
      hint = 'check the adapter and the port settings';
    }
    return new BusError('PORT_OPEN_FAILED', `cannot open ${this.description}: ${hint} (${text})`, { cause: err });
  }
}

function aborted(description: string, signal: AbortSignal): BusError {
  return new BusError('ABORTED', `${description}: cancelled`, { cause: signal.reason });
}
