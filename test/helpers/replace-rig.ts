import type { Gateway } from '../../src/daemon/gateway.js';
import { clearRetained, type TestBroker } from './broker.js';

/** What a meter-replace (or any desk command) ends with, as the tests read it. */
export interface DeskOutcome {
  status: string;
  error?: { code: string; message: string };
  result?: Record<string, unknown>;
}

/** A meter-replace at the gateway's local door, by the technician the replacement tests use. */
export function submitReplace(gw: Gateway, request: Record<string, unknown>): Promise<DeskOutcome> {
  return gw.desk.submit('meter-replace', { operator: 'li', ...request }, { operator: 'li' }).final as Promise<DeskOutcome>;
}

/**
 * Ends an in-process gateway test: the gateway stopped first (it publishes its last status), then what it left
 * retained on the shared broker cleared (its status, each point's state and asset, and `extra`), then the simulator
 * and the broker closed.
 */
export async function stopGatewayRig(parts: {
  gw: Gateway | undefined;
  sim: { close(): Promise<unknown> } | undefined;
  broker: TestBroker | undefined;
  gatewayId: string;
  meterIds: readonly string[];
  extra?: readonly string[];
}): Promise<void> {
  const { gw, sim, broker, gatewayId, meterIds, extra = [] } = parts;
  await gw?.stop();
  if (broker)
    await clearRetained(broker.url, [
      `meterd/${gatewayId}/status`,
      ...extra.map((topic) => `meterd/${gatewayId}/${topic}`),
      ...meterIds.flatMap((id) => [`meterd/${gatewayId}/meters/${id}/state`, `meterd/${gatewayId}/meters/${id}/asset`]),
    ]);
  await sim?.close();
  await broker?.close();
}
