import { createServer, type AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../src/uplink/broker.js';
import { startTestBroker, uniqueId } from '../helpers/broker.js';

describe('embedded broker (demo)', () => {
  it('falls back to a free port when the wanted one is taken, and serves MQTT 3.1.1 there', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve()));
    const taken = (squatter.address() as AddressInfo).port;
    const broker = await startEmbeddedBroker({ port: taken });
    try {
      expect(broker.port).not.toBe(taken);
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
      const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: uniqueId('probe'), protocolVersion: 4 }, false);
      await client.subscribeAsync('demo/#', { qos: 1 });
      const received = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())));
      await client.publishAsync('demo/hello', 'hi', { qos: 1 });
      expect(await received).toBe('hi');
      await client.endAsync();
    } finally {
      await broker.close();
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
  });
});

describe('test broker helper', () => {
  it('fails with a clear message when MQTT_URL names a broker that accepts no connection', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const saved = process.env.MQTT_URL;
    process.env.MQTT_URL = `mqtt://127.0.0.1:${port}`;
    try {
      await expect(startTestBroker()).rejects.toThrow(/MQTT_URL=mqtt:\/\/127\.0\.0\.1:\d+ is set but no MQTT broker accepted a connection/);
    } finally {
      if (saved === undefined) delete process.env.MQTT_URL;
      else process.env.MQTT_URL = saved;
    }
  });
});
