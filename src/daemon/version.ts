import { readFileSync } from 'node:fs';

/** meterd's version from package.json, for the birth message and `--version`. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
