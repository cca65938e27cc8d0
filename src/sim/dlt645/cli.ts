import type { Writable } from 'node:stream';
import { silentLogger, type Logger } from '../../log.js';
import { describeListen, listenOptions, parseListen, serveUntilStopped, SimUsageError, wholeNumber } from '../cli-support.js';
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

/** A refusal the CLI prints and exits 2 on: the one shape all simulator commands share. */
export { SimUsageError as SimCommandError } from '../cli-support.js';

/**
 * Run the DL/T 645 simulator until SIGINT/SIGTERM (or `io.signal`): prints one line with where it listens and the
 * meter addresses, for the CLI author to mount as `meterd sim dlt645`.
 */
export async function runDlt645SimCommand(options: Dlt645SimCommandOptions, io: Dlt645SimCommandIo = {}): Promise<void> {
  const listen = parseListen(options, 'pty-first');
  if (options.meters !== undefined && options.count !== undefined) throw new SimUsageError('give --meters FILE or --count N, not both');
  const delayMs = options.delay === undefined ? undefined : wholeNumber(options.delay, '--delay', 0, 60_000);
  let spec: SimulatorSpec;
  if (options.meters !== undefined) {
    const r = await loadSimulatorSpec(options.meters);
    if (!r.ok) throw new SimUsageError(r.error.message);
    spec = r.value;
  } else {
    spec = { meters: defaultMeters(options.count === undefined ? 3 : wholeNumber(options.count, '--count', 1, 10_000)) };
  }
  const faults = { ...(delayMs !== undefined ? { delayMs } : {}), ...(options.noise ? { noise: true } : {}) };
  const sim = await startDlt645Simulator({ spec, logger: io.logger ?? silentLogger, faults, ...listenOptions(listen) });
  const stdout = io.stdout ?? process.stdout;
  await serveUntilStopped(
    sim,
    `dlt645 simulator on ${describeListen(listen, sim.address?.tcpPort)} with ${sim.meters.size} meters: ${[...sim.meters.keys()].join(' ')}`,
    { out: (line) => void stdout.write(`${line}\n`), signal: io.signal },
  );
}
