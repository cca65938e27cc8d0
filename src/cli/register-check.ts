import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../clock.js';
import type { GatewayConfig } from '../config/index.js';
import { disagreements, type AddressDisagreement } from '../services/lifecycle/register.js';
import { openStore } from '../store/index.js';

/**
 * Config lines whose address disagrees with the meter register of the config's store (after a replacement), each
 * with the line to change; none when the store does not exist yet. `config check` and `doctor` print them.
 */
export function registerDisagreements(config: GatewayConfig): AddressDisagreement[] {
  const dbPath = join(config.gateway.dataDir, 'meterd.db');
  if (!existsSync(dbPath)) return [];
  const store = openStore({ path: dbPath, clock: systemClock });
  try {
    return disagreements(store, config.meters, config.source);
  } finally {
    store.close();
  }
}
