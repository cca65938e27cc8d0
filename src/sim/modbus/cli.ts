import { existsSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { silentLogger, type Logger } from '../../log.js';
import { parseListen, serveUntilStopped, SimUsageError, wholeNumber } from '../cli-support.js';
import { BUILTIN_PROFILES_DIR, loadProfileFile, loadProfiles } from '../../profiles/registry.js';
import type { DeviceProfile } from '../../profiles/types.js';
import { startModbusSimulator } from './index.js';

/** Flags of `meterd sim modbus --profile ID (--tcp PORT | --pty PATH) [--unit N] [--also-unit N …] [--set point=value …] [--delay MS]`. */
export interface ModbusSimCommandOptions {
  /** A profile id (shipped or in `profilesDirs`), or the path of a profile YAML file. */
  readonly profile?: string;
  readonly tcp?: number | string;
  readonly pty?: string;
  readonly host?: string;
  readonly unit?: number | string;
  /** More meters of the same profile on the line at these unit ids, at the profile's defaults (a spare to replace onto). */
  readonly alsoUnits?: readonly (number | string)[];
  /** `point=value` in engineering units, e.g. `voltage.a=231.4`. */
  readonly set?: readonly string[];
  readonly delay?: number | string;
  /** Site profile folders, searched after the shipped ones (a same id replaces the shipped profile). */
  readonly profilesDirs?: readonly string[];
}

export interface ModbusSimCommandIo {
  /** Where the one "serving" line goes. Default process.stdout. */
  readonly stdout?: Writable;
  readonly logger?: Logger;
  /** Stop when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal;
}

/** A refusal the CLI prints and exits 2 on: the one shape all simulator commands share. */
export { SimUsageError as ModbusSimCommandError } from '../cli-support.js';

/**
 * Run a simulated Modbus meter until SIGINT/SIGTERM (or `io.signal`); prints one line saying where it serves.
 *
 * @example
 * await runModbusSimCommand({ profile: 'eastron-sdm630', tcp: 1502, set: ['voltage.a=231.4'] });
 */
export async function runModbusSimCommand(options: ModbusSimCommandOptions, io: ModbusSimCommandIo = {}): Promise<void> {
  const listen = parseListen(options, 'tcp-first');
  if (options.profile === undefined) throw new SimUsageError('give --profile ID (e.g. eastron-sdm630) or --profile FILE.yaml');
  const profile = findProfile(options.profile, options.profilesDirs ?? []);
  if (!profile.protocol.startsWith('modbus'))
    throw new SimUsageError(`profile ${profile.id} is ${profile.protocol}; use meterd sim dlt645 for DL/T 645 meters`);
  const unit = options.unit === undefined ? 1 : wholeNumber(options.unit, '--unit', 1, 247);
  const alsoUnits = (options.alsoUnits ?? []).map((u) => wholeNumber(u, '--also-unit', 1, 247));
  if (new Set([unit, ...alsoUnits]).size !== alsoUnits.length + 1)
    throw new SimUsageError('each --also-unit needs its own unit id, not --unit’s');
  const delayMs = options.delay === undefined ? undefined : wholeNumber(options.delay, '--delay', 0, 60_000);
  const values = parseValues(options.set ?? [], profile);

  let sim: Awaited<ReturnType<typeof startModbusSimulator>>;
  try {
    sim = await startModbusSimulator({
      profile,
      unit,
      values,
      neighbours: alsoUnits.map((u) => ({ unit: u })),
      logger: io.logger ?? silentLogger,
      ...(delayMs !== undefined ? { faults: { delayMs } } : {}),
      ...(listen.kind === 'pty' ? { pty: listen.path } : { tcpPort: listen.port, host: listen.host }),
    });
  } catch (err) {
    if (err instanceof RangeError) throw new SimUsageError(err.message);
    throw err;
  }
  const where = listen.kind === 'pty' ? `RTU on ${listen.path}` : `Modbus TCP on ${listen.host}:${sim.port}`;
  const points = [...profile.points.values()].filter((p) => p.kind === 'modbus').length;
  const stdout = io.stdout ?? process.stdout;
  const units = alsoUnits.length > 0 ? `units ${[unit, ...alsoUnits].join(', ')}` : `unit ${unit}`;
  await serveUntilStopped(sim, `modbus simulator ${profile.id} ${units}: ${where}, ${points} points`, {
    out: (line) => void stdout.write(`${line}\n`),
    signal: io.signal,
  });
}

function findProfile(idOrFile: string, dirs: readonly string[]): DeviceProfile {
  if (/\.ya?ml$/.test(idOrFile)) {
    if (!existsSync(idOrFile)) throw new SimUsageError(`profile file ${idOrFile} does not exist`);
    return loadProfileFile(idOrFile);
  }
  const profiles = loadProfiles([BUILTIN_PROFILES_DIR, ...dirs]);
  const profile = profiles.get(idOrFile);
  if (!profile) {
    const modbus = [...profiles.values()].filter((p) => p.protocol.startsWith('modbus')).map((p) => p.id);
    throw new SimUsageError(`no profile "${idOrFile}"; Modbus profiles: ${modbus.join(', ')} (or give a .yaml file)`);
  }
  return profile;
}

function parseValues(assignments: readonly string[], profile: DeviceProfile): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of assignments) {
    const m = /^([^=\s]+)=(.+)$/.exec(a.trim());
    if (!m) throw new SimUsageError(`--set ${a}: write point=value, e.g. voltage.a=231.4`);
    const [, point, text] = m as unknown as [string, string, string];
    if (!profile.points.has(point)) throw new SimUsageError(`--set ${a}: profile ${profile.id} has no point "${point}"`);
    const v = Number(text);
    if (!Number.isFinite(v)) throw new SimUsageError(`--set ${a}: "${text}" is not a number`);
    out[point] = v;
  }
  return out;
}
