import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes, type AuthorizePublishHandler } from 'aedes';
import mqtt from 'mqtt';
import { freePort } from './free-port.js';

/** A broker of a test's own that refuses some publishes for ever. */
export interface RefusingBroker {
  readonly url: string;
  /** Publishes it refused so far (aedes only; Mosquitto keeps its count to itself). */
  readonly refused: number;
  close(): Promise<void>;
}

export interface MosquittoOptions {
  /** Lines of a Mosquitto acl_file for anonymous clients (`topic read meterd/#`, …). */
  readonly acl?: readonly string[];
  /** `message_size_limit`: larger payloads are refused (MQTT 5: PUBACK reason code 0x97 or 0x83). */
  readonly messageSizeLimit?: number;
}

/**
 * A real Mosquitto on a free port of 127.0.0.1 with an ACL file and/or a payload size limit, started for one test
 * and stopped after it. Mosquitto must be installed (`mosquitto` on the PATH): a test that needs it fails otherwise.
 * On MQTT 5 it answers a refused QoS 1 publish with a PUBACK reason code ≥ 0x80; on 3.1.1 it acknowledges and drops.
 */
export async function startRefusingMosquitto(options: MosquittoOptions): Promise<RefusingBroker> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'meterd-mosquitto-'));
  // Started as root, Mosquitto drops to its own user, which must still read the config and the ACL file.
  chmodSync(dir, 0o755);
  const lines = [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error'];
  if (options.acl !== undefined) {
    writeFileSync(join(dir, 'acl'), `${options.acl.join('\n')}\n`);
    lines.push(`acl_file ${join(dir, 'acl')}`);
  }
  if (options.messageSizeLimit !== undefined) lines.push(`message_size_limit ${options.messageSizeLimit}`);
  writeFileSync(join(dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const url = `mqtt://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const probe = await Promise.race([
        mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1_000, clientId: `probe-${port}` }, false),
        spawnError,
      ]);
      await probe.endAsync();
      break;
    } catch (error) {
      if (child.exitCode !== null || (error as NodeJS.ErrnoException).code === 'ENOENT' || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`Mosquitto did not start on port ${port}: ${(error as Error).message} ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url,
    refused: 0,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An in-process aedes (MQTT 3.1.1 only) whose authorizePublish refuses every client publish for which `refuse`
 * says so. MQTT 3.1.1 has no way to say no to a publish: aedes closes the client's connection instead.
 */
export async function startRefusingAedes(refuse: (topic: string) => boolean): Promise<RefusingBroker> {
  let refused = 0;
  const authorizePublish: AuthorizePublishHandler = (_client, packet, callback) => {
    if (refuse(packet.topic)) {
      refused++;
      callback(new Error(`not authorised to publish on ${packet.topic}`));
      return;
    }
    callback(null);
  };
  const broker = await Aedes.createBroker({ authorizePublish });
  const server = createServer(broker.handle);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    get refused() {
      return refused;
    },
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
