import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';
import { loadProfileText, ProfileError } from './load.js';
import type { DeviceProfile } from './types.js';

/** Where the shipped profiles live: device-profiles/ at the top of the package. */
export const BUILTIN_PROFILES_DIR = join(PACKAGE_ROOT, 'device-profiles');

/** Load one profile file, throwing a ProfileError (every issue with file and line) when it is invalid. */
export function loadProfileFile(path: string): DeviceProfile {
  return loadProfileText(readFileSync(path, 'utf8'), path);
}

/**
 * Load every *.yaml profile of the given folders; later folders override earlier ones by id, so a site can
 * add or replace models without touching the shipped ones.
 */
export function loadProfiles(dirs: readonly string[] = [BUILTIN_PROFILES_DIR]): Map<string, DeviceProfile> {
  const out = new Map<string, DeviceProfile>();
  const problems: ProfileError[] = [];
  for (const dir of dirs) {
    for (const name of readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()) {
      try {
        const p = loadProfileFile(join(dir, name));
        out.set(p.id, p);
      } catch (err) {
        if (err instanceof ProfileError) problems.push(err);
        else throw err;
      }
    }
  }
  if (problems.length > 0) throw new ProfileError(problems.flatMap((p) => p.issues));
  return out;
}
