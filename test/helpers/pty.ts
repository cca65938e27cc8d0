import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type PtyBridge = 'socat' | 'python';

export interface PtyPair {
  /** Path of one end (a symlink to a /dev/pts/N), e.g. for the bus under test. */
  a: string;
  /** Path of the other end, e.g. for the simulated meter. */
  b: string;
  bridge: PtyBridge;
  /** Kills the bridge: both ends vanish, as an unplugged USB adapter does. Resolves once the links are gone. */
  stop(): Promise<void>;
  /** Starts the bridge again on the same link paths (new /dev/pts numbers behind them). */
  start(): Promise<void>;
  /** stop() then start(): a port that vanishes and returns. */
  restart(): Promise<void>;
  /** Stops the bridge for good and removes the directory it made. */
  close(): Promise<void>;
}

const BRIDGE_SCRIPT = fileURLToPath(new URL('../../scripts/pty-bridge.py', import.meta.url));
const READY_TIMEOUT_MS = 10_000;

/**
 * A virtual null-modem cable for tests: two pseudo-terminals whose bytes are copied to each other.
 * Uses socat when it is installed, else `scripts/pty-bridge.py`; `METERD_PTY_BRIDGE=python` forces the fallback.
 * Resolves once both link paths exist. Always `close()` it (e.g. in `afterAll`).
 *
 * @example
 * const pty = await createPtyPair();
 * const bus = await openBus({ id: 'bus1', port: pty.a, … });
 * const meter = new SerialPort({ path: pty.b, baudRate: 2400 });
 */
export async function createPtyPair(dir?: string, opts: { bridge?: PtyBridge } = {}): Promise<PtyPair> {
  const ownDir = dir === undefined;
  const base = dir ?? mkdtempSync(join(tmpdir(), 'meterd-pty-'));
  const a = join(base, 'ttyA');
  const b = join(base, 'ttyB');
  const bridge = opts.bridge ?? (process.env.METERD_PTY_BRIDGE === 'python' || !hasSocat() ? 'python' : 'socat');
  let child: ChildProcess | undefined;

  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    if (child) throw new Error('the pty bridge is already running');
    child = await startBridge(bridge, a, b);
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running && running.exitCode === null && running.signalCode === null) {
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGTERM');
      await exited;
    }
    // Both bridges remove their links on SIGTERM; one killed harder would leave them, and nothing else will.
    for (const link of [a, b]) rmSync(link, { force: true });
  };

  await start();
  return {
    a,
    b,
    bridge,
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      await stop();
      process.off('exit', killOnExit);
      if (ownDir) rmSync(base, { recursive: true, force: true });
    },
  };
}

function hasSocat(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** Starts the bridge and resolves when it says its ptys are linked (socat's "starting data transfer loop", or "ready"). */
function startBridge(bridge: PtyBridge, a: string, b: string): Promise<ChildProcess> {
  const child =
    bridge === 'socat'
      ? spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('python3', [BRIDGE_SCRIPT, a, b], { stdio: ['ignore', 'pipe', 'pipe'] });
  const readyText = bridge === 'socat' ? 'starting data transfer loop' : 'ready';
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () => fail(new Error(`${bridge} did not link ${a} and ${b} within ${READY_TIMEOUT_MS} ms: ${output}`)),
      READY_TIMEOUT_MS,
    );
    const onOutput = (chunk: Buffer): void => {
      output += chunk.toString();
      if (!output.includes(readyText)) return;
      if (!isLink(a) || !isLink(b)) {
        fail(new Error(`${bridge} reported ready but the links are missing: ${output}`));
        return;
      }
      done();
      resolve(child);
    };
    const onExit = (code: number | null): void => fail(new Error(`${bridge} exited (code ${code}) before linking the ptys: ${output}`));
    const done = (): void => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', fail);
      // Keep draining its output so a chatty bridge never blocks on a full pipe.
      child.stdout?.off('data', onOutput).resume();
      child.stderr?.off('data', onOutput).resume();
    };
    function fail(err: Error): void {
      done();
      child.kill('SIGKILL');
      reject(err);
    }
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    child.once('exit', onExit);
    child.once('error', fail);
  });
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && existsSync(path);
  } catch {
    return false;
  }
}
