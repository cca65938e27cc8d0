import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's top folder (where package.json and device-profiles/ are), from the sources or from a build in dist/. */
export const PACKAGE_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'device-profiles'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find meterd's package folder above ${fileURLToPath(import.meta.url)}`);
})();
