import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

export interface TcpCut {
  /** `mqtt://127.0.0.1:<port>`: give this to the client instead of the broker's url. */
  readonly url: string;
  readonly port: number;
  /** Client connections currently relayed. */
  readonly connections: number;
  /** A broker outage: destroys every relayed connection and drops new ones as soon as they arrive. */
  cut(): void;
  /** Ends the outage: new connections are relayed again. */
  restore(): void;
  /** Holds back everything the broker sends (CONNACK, PUBACK, …) until releaseReplies(); the client's bytes still pass. */
  holdReplies(): void;
  releaseReplies(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay between a client and a broker that a test can cut, so an outage looks the same on an in-process aedes
 * and on a shared Mosquitto (which a test must not stop). The broker sees the client's socket close without a
 * DISCONNECT, exactly as after a crash or a pulled cable, and publishes its last will.
 */
export async function startTcpCut(targetUrl: string): Promise<TcpCut> {
  const target = new URL(targetUrl);
  const targetHost = target.hostname.replace(/^\[|\]$/g, '');
  const targetPort = Number(target.port || 1883);
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let cut = false;
  let holding = false;

  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => client.write(chunk));
    if (holding) upstream.pause();
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const relay: TcpCut = {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    get connections() {
      return pairs.size;
    },
    cut() {
      cut = true;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    restore() {
      cut = false;
    },
    holdReplies() {
      holding = true;
      for (const { upstream } of pairs) upstream.pause();
    },
    releaseReplies() {
      holding = false;
      for (const { upstream } of pairs) upstream.resume();
    },
    async close() {
      relay.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}
