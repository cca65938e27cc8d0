import { accessSync, constants, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { MeterdError } from '../errors.js';

/** Kernel file systems: nothing written there survives, and `mkdir -p` under /proc never returns on Linux. */
const PSEUDO_FILE_SYSTEMS = ['/proc', '/sys', '/dev'] as const;

/** `gateway.dataDir` cannot hold the database: the one line `meterd run` (and every command that opens it) prints. */
export class DataDirError extends MeterdError<'DATA_DIR_UNUSABLE'> {
  override readonly name = 'DataDirError';
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super('DATA_DIR_UNUSABLE', `gateway.dataDir ${path} ${problem}`);
  }
}

/** The part of dataDirProblem that needs no file system: a path under /proc, /sys or /dev. Pure. */
export function pseudoFileSystemProblem(path: string): string | undefined {
  const pseudo = pseudoFileSystemOf(path);
  return pseudo === undefined ? undefined : underPseudo(pseudo);
}

/**
 * What is wrong with `path` as the gateway's data directory, without creating anything; undefined when it is a
 * writable directory or can be created as one. `path` is absolute (the config resolves it).
 *
 * ```ts
 * dataDirProblem('/proc/meterd-data'); // 'is under /proc, a kernel file system: choose a directory on a disk, e.g. /var/lib/meterd'
 * dataDirProblem('/etc/hostname');     // 'is a file, not a directory'
 * ```
 */
export function dataDirProblem(path: string): string | undefined {
  const pseudo = pseudoFileSystemProblem(path);
  if (pseudo !== undefined) return pseudo;
  const { existing, missing, error } = nearestExisting(path);
  if (error !== undefined) return `cannot be examined: ${reason(error)}`;
  // A symbolic link may lead into /proc too.
  let real: string;
  try {
    real = realpathSync(existing);
  } catch (error) {
    return `cannot be resolved: ${reason(error)}`;
  }
  const linked = pseudoFileSystemOf(missing.length === 0 ? real : join(real, ...missing));
  if (linked !== undefined) return underPseudo(linked, real);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(existing).isDirectory();
  } catch (error) {
    return `cannot be examined: ${reason(error)}`;
  }
  if (!isDirectory) {
    return missing.length === 0 ? 'is a file, not a directory' : `cannot be created: ${existing} is a file, not a directory`;
  }
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch {
    return missing.length === 0
      ? `is not writable by this user (uid ${process.getuid?.() ?? '?'}): give the meterd user write access, or choose another directory`
      : `cannot be created: ${existing} is not writable by this user (uid ${process.getuid?.() ?? '?'})`;
  }
  return undefined;
}

/**
 * Makes sure `path` is a writable directory, creating what is missing one level at a time (never a recursive mkdir,
 * which spins for ever on some kernel file systems). Throws DataDirError naming the path and what is wrong.
 */
export function ensureDataDir(path: string): void {
  const problem = dataDirProblem(path);
  if (problem !== undefined) throw new DataDirError(path, problem);
  const { existing, missing } = nearestExisting(path);
  let dir = existing;
  for (const part of missing) {
    dir = join(dir, part);
    try {
      mkdirSync(dir);
    } catch (error) {
      // Created meanwhile by someone else is fine; anything else is the directory's problem.
      if ((error as { code?: unknown }).code === 'EEXIST' && statSync(dir).isDirectory()) continue;
      throw new DataDirError(path, `cannot be created: mkdir ${dir} failed: ${reason(error)}`);
    }
  }
}

/**
 * The deepest ancestor of `path` (or `path` itself) that exists, and the names below it that do not; `error` when
 * something on the way cannot be examined (no search permission on a parent).
 */
function nearestExisting(path: string): { existing: string; missing: string[]; error?: unknown } {
  const missing: string[] = [];
  let current = path;
  for (;;) {
    try {
      statSync(current);
      return { existing: current, missing: missing.reverse() };
    } catch (error) {
      const parent = dirname(current);
      const code = (error as { code?: unknown }).code;
      // ENOTDIR: an ancestor is a file; walking up finds it, and it is reported as what it is.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === current) return { existing: current, missing: [], error };
      missing.push(current.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
      current = parent;
    }
  }
}

function pseudoFileSystemOf(path: string): string | undefined {
  return PSEUDO_FILE_SYSTEMS.find((root) => path === root || path.startsWith(`${root}/`));
}

function underPseudo(root: string, via?: string): string {
  const how = via === undefined ? '' : ` (through ${via})`;
  return `is under ${root}${how}, a kernel file system that keeps no data: choose a directory on a disk, e.g. /var/lib/meterd`;
}

/** An fs error's reason without Node's `CODE: ` prefix and the repeated syscall and path. */
function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^[A-Z]+: /, '');
}
