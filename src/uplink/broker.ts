import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { silentLogger, type Logger } from '../log.js';

export interface EmbeddedBrokerOptions {
  /** Default 127.0.0.1: the demo broker is for this machine only (no authentication). */
  readonly host?: string;
  /** Default 1883; when taken, a free port is used instead (see `port` of the result). 0 picks a free port. */
  readonly port?: number;
  readonly logger?: Logger;
}

export interface EmbeddedBroker {
  /** `mqtt://<host>:<port>`, ready for the gateway's `mqtt.url`. */
  readonly url: string;
  readonly port: number;
  /** Disconnects every client and stops listening. */
  close(): Promise<void>;
}

/**
 * An in-process MQTT broker (aedes, MQTT 3.1.1 only: run the gateway with `protocolVersion: 4` against it), so the
 * demo works on a machine with no broker installed.
 *
 * ```ts
 * const broker = await startEmbeddedBroker({ port: 1883 });
 * const config = { ...mqtt, url: broker.url, protocolVersion: 4 as const };
 * await broker.close();
 * ```
 */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const wanted = options.port ?? 1883;
  if (!Number.isInteger(wanted) || wanted < 0 || wanted > 65_535) throw new TypeError('port is not an integer from 0 to 65535');
  const log = (options.logger ?? silentLogger).child({ component: 'uplink', part: 'embedded-broker' });
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    // Small MQTT packets (PUBACKs, replies) must not wait for Nagle's algorithm and the peer's delayed ACK (~40 ms).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  let port: number;
  try {
    port = await listen(server, wanted, host);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || wanted === 0) {
      await closeBroker(broker);
      throw error;
    }
    // Usually a system Mosquitto already on 1883; the demo still runs, on a port of its own.
    port = await listen(server, 0, host);
    log.warn({ wanted, port }, 'port taken; the embedded broker listens on a free port instead');
  }
  log.info({ host, port }, 'embedded MQTT broker listening');
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      (closing ??= (async () => {
        await closeBroker(broker);
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })()),
  };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeBroker(broker: Aedes): Promise<void> {
  return new Promise((resolve) => broker.close(() => resolve()));
}
