import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/meterd.js', import.meta.url));

/** A `meterd` process started from its real entry point, as an operator or systemd would start it. */
export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly configPath: string;
  /** Everything it wrote on stderr (JSON log lines). */
  stderr(): string;
  /** Resolves with the exit code or signal. */
  exited(): Promise<number | NodeJS.Signals | null>;
}

/** Write a config into a fresh temp dir (or the given one) and start `meterd run -c` on it. */
export function startDaemon(
  configYaml: string,
  opts: {
    dir?: string;
    logLevel?: string;
    /** Node options before the entry point, e.g. `['--import', preload]`. */
    execArgv?: readonly string[];
    /** Added to the test's environment. */
    env?: Readonly<Record<string, string>>;
  } = {},
): DaemonProcess {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'meterd-e2e-'));
  const configPath = join(dir, 'meterd.yaml');
  writeFileSync(configPath, configYaml);
  const child = spawn(process.execPath, [...(opts.execArgv ?? []), BIN, 'run', '-c', configPath, '--log-level', opts.logLevel ?? 'warn'], {
    cwd: dir,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return { child, dir, configPath, stderr: () => err, exited: () => exit };
}
