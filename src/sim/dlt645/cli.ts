import type { Writable } from 'node:stream';
import { silentLogger, type Logger } from '../../log.js';
import { startDlt645Simulator } from './index.js';
import { defaultMeters, loadSimulatorSpec, type SimulatorSpec } from './spec.js';

/** Flags of `meterd sim dlt645 (--pty PATH | --tcp PORT) [--meters FILE.yaml | --count N] [--delay MS] [--noise]`. */
export interface Dlt645SimCommandOptions {
  readonly pty?: string;
  readonly tcp?: number | string;
  readonly host?: string;
  readonly meters?: string;
  readonly count?: number | string;
  readonly delay?: number | string;
  readonly noise?: boolean;
}

export interface Dlt645SimCommandIo {
  /** Where the one "listening" line goes. Default process.stdout. */
  readonly stdout?: Writable;
  readonly logger?: Logger;
  /** Stop when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal;
}

/** A refusal the CLI should print and exit non-zero on, with a code and a message a technician can act on. */
export class SimCommandError extends Error {
  readonly code = 'SIM_USAGE';
}

/**
 * Run the DL/T 645 simulator until SIGINT/SIGTERM (or `io.signal`): prints one line with where it listens and the
 * meter addresses, for the CLI author to mount as `meterd sim dlt645`.
 */
export async function runDlt645SimCommand(options: Dlt645SimCommandOptions, io: Dlt645SimCommandIo = {}): Promise<void> {
  if ((options.pty === undefined) === (options.tcp === undefined))
    throw new SimCommandError('give exactly one of --pty PATH or --tcp PORT');
  if (options.meters !== undefined && options.count !== undefined) throw new SimCommandError('give --meters FILE or --count N, not both');
  const tcpPort = options.tcp === undefined ? undefined : wholeNumber(options.tcp, '--tcp', 0, 65535);
  const delayMs = options.delay === undefined ? undefined : wholeNumber(options.delay, '--delay', 0, 60_000);
  let spec: SimulatorSpec;
  if (options.meters !== undefined) {
    const r = await loadSimulatorSpec(options.meters);
    if (!r.ok) throw new SimCommandError(r.error.message);
    spec = r.value;
  } else {
    spec = { meters: defaultMeters(options.count === undefined ? 3 : wholeNumber(options.count, '--count', 1, 10_000)) };
  }
  const faults = { ...(delayMs !== undefined ? { delayMs } : {}), ...(options.noise ? { noise: true } : {}) };
  const sim = await startDlt645Simulator({
    spec,
    logger: io.logger ?? silentLogger,
    faults,
    ...(options.pty !== undefined ? { port: options.pty } : {}),
    ...(tcpPort !== undefined ? { tcpPort } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
  });
  const where = options.pty !== undefined ? `pty ${options.pty}` : `tcp ${options.host ?? '127.0.0.1'}:${sim.address?.tcpPort}`;
  (io.stdout ?? process.stdout).write(`dlt645 simulator on ${where} with ${sim.meters.size} meters: ${[...sim.meters.keys()].join(' ')}\n`);
  await untilStopped(io.signal);
  await sim.close();
}

function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  if (signal) {
    return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function wholeNumber(v: number | string, flag: string, min: number, max: number): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new SimCommandError(`${flag} ${String(v)} is not a whole number from ${min} to ${max}`);
  return n;
}
