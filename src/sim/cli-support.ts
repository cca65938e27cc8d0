import { SerialPort, type SerialPortOpenOptions } from 'serialport';
import { hangupAwareBinding } from '../bus/serial-device.js';
import { MeterdError } from '../errors.js';

/**
 * What the three simulator commands (`meterd sim dlt645`, `sim modbus`, `sim encoder`) have in common: where they
 * listen, how their numeric flags are read, the one start-up line, running until SIGINT/SIGTERM, and the
 * simulator's end of a pty pair.
 */

/** A refusal of a simulator's flags: printed as one line, exit code 2 (bad usage). */
export class SimUsageError extends MeterdError<'SIM_USAGE'> {
  override readonly name = 'SimUsageError';
  readonly exitCode = 2;
  constructor(message: string) {
    super('SIM_USAGE', message);
  }
}

/** The listening flags every simulator takes. */
export interface ListenFlags {
  readonly pty?: string;
  readonly tcp?: number | string;
  readonly host?: string;
}

/** Where a simulator serves: one end of a pty pair, or a TCP port (0 = any free port). */
export type Listen =
  | { readonly kind: 'pty'; readonly path: string }
  | { readonly kind: 'tcp'; readonly port: number; readonly host: string };

/**
 * Reads --pty / --tcp / --host: exactly one of the first two. `order` is how the command's help lists them, so
 * the message names them the same way.
 */
export function parseListen(flags: ListenFlags, order: 'pty-first' | 'tcp-first' = 'pty-first'): Listen {
  if ((flags.pty === undefined) === (flags.tcp === undefined)) {
    throw new SimUsageError(
      order === 'pty-first' ? 'give exactly one of --pty PATH or --tcp PORT' : 'give exactly one of --tcp PORT or --pty PATH',
    );
  }
  if (flags.pty !== undefined) return { kind: 'pty', path: flags.pty };
  return { kind: 'tcp', port: wholeNumber(flags.tcp!, '--tcp', 0, 65535), host: flags.host ?? '127.0.0.1' };
}

/** The simulator options for a listen spec: `port` (a pty path) or `tcpPort` and `host`. */
export function listenOptions(listen: Listen): { port: string } | { tcpPort: number; host: string } {
  return listen.kind === 'pty' ? { port: listen.path } : { tcpPort: listen.port, host: listen.host };
}

/** `pty /tmp/ttyB` or `tcp 127.0.0.1:8899` (with the port actually bound when it was 0). */
export function describeListen(listen: Listen, boundPort?: number): string {
  return listen.kind === 'pty' ? `pty ${listen.path}` : `tcp ${listen.host}:${boundPort ?? listen.port}`;
}

/** A whole-number flag within bounds, from the command line's text (decimal digits only: not 0x10, 1e3) or a number. */
export function wholeNumber(v: number | string, flag: string, min: number, max: number): number {
  const n = typeof v === 'number' ? v : /^\d{1,15}$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new SimUsageError(`${flag} ${String(v)} is not a whole number from ${min} to ${max}`);
  return n;
}

/** The socat command that makes a pty pair for a gateway and a simulator to share, for help texts and hints. */
export function ptyPairCommand(gatewayLink: string, simulatorLink: string): string {
  return `socat -d -d pty,raw,echo=0,link=${gatewayLink} pty,raw,echo=0,link=${simulatorLink}`;
}

/** Resolves when `signal` aborts, or (without one) on the first SIGINT or SIGTERM, leaving no handler behind. */
export function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  if (signal) {
    return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** Prints the start-up line, serves until stopped, then closes the simulator. */
export async function serveUntilStopped(
  sim: { close(): Promise<void> },
  line: string,
  io: { out: (line: string) => void; signal?: AbortSignal | undefined },
): Promise<void> {
  io.out(line);
  try {
    await untilStopped(io.signal);
  } finally {
    await sim.close();
  }
}

/**
 * Opens a simulator's end of a serial line (normally one end of a pty pair), unlocked so a test may open it too,
 * and closing on hangup like the gateway's ports. A missing path is answered with the socat line that makes one.
 */
export async function openSerialLine(path: string, line: SerialLineSettings, simulatorLink = '/tmp/ttySIM'): Promise<SerialPort> {
  const port = new SerialPort({
    path,
    baudRate: line.baudRate,
    ...(line.parity ? { parity: line.parity } : {}),
    ...(line.dataBits ? { dataBits: line.dataBits } : {}),
    ...(line.stopBits ? { stopBits: line.stopBits } : {}),
    lock: false,
    autoOpen: false,
    binding: hangupAwareBinding,
  } as SerialPortOpenOptions<typeof hangupAwareBinding>);
  await new Promise<void>((resolve, reject) =>
    port.open((err) =>
      err
        ? reject(new Error(`cannot open ${path}: ${err.message} (for a pty pair run: ${ptyPairCommand('/tmp/ttyGW', simulatorLink)})`))
        : resolve(),
    ),
  );
  return port;
}

export interface SerialLineSettings {
  readonly baudRate: number;
  readonly parity?: 'none' | 'even' | 'odd';
  readonly dataBits?: 7 | 8;
  readonly stopBits?: 1 | 2;
}
