import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import type { MqttSettings } from './session.js';

/**
 * Connect once with the gateway's credentials and disconnect, without a will or a birth message, so a check
 * (`meterd doctor`) never makes the station think the gateway went offline. Resolves, or rejects with the
 * broker's reason (bad credentials, not authorised, refused, TLS).
 */
export async function probeBroker(settings: MqttSettings, timeoutMs = 5000): Promise<void> {
  const read = (p: string | undefined) => (p === undefined ? undefined : readFileSync(p));
  const client = await mqtt.connectAsync(
    settings.url,
    {
      clientId: `${settings.clientId}-doctor`,
      username: settings.username,
      password: settings.password,
      protocolVersion: settings.protocolVersion,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      ca: read(settings.ca),
      cert: read(settings.cert),
      key: read(settings.key),
    },
    false,
  );
  await client.endAsync();
}
