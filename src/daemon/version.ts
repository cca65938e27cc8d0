import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

/** meterd's version from package.json, for the birth message and `--version`. */
export const VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Where the running code came from: the production bundle (`npm run build`, dist/meterd) or the TypeScript sources. */
export const BUILD: 'bundle' | 'sources' = import.meta.url.includes('/dist/meterd/') ? 'bundle' : 'sources';
