import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import type { BrokerEndpoint } from '../config/load.js';
import type { MqttSettings } from './session.js';

/**
 * Connect once with the gateway's credentials and disconnect, without a will or a birth message, so a check
 * (`meterd doctor`) never makes the station think the gateway went offline. Resolves, or rejects with the
 * broker's reason (bad credentials, not authorised, refused, TLS).
 */
export async function probeBroker(settings: MqttSettings, timeoutMs = 5000, endpoint?: BrokerEndpoint): Promise<void> {
  const read = (p: string | undefined) => (p === undefined ? undefined : readFileSync(p));
  const e = endpoint ?? settings;
  const client = await mqtt.connectAsync(
    e.url,
    {
      clientId: `${settings.clientId}-doctor`,
      username: e.username,
      password: e.password,
      protocolVersion: settings.protocolVersion,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      ca: read(e.ca),
      cert: read(e.cert),
      key: read(e.key),
    },
    false,
  );
  await client.endAsync();
}
