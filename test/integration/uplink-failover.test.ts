import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecallingStation } from '../../scripts/station-recall.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/uplink/broker.js';
import { eventually, uniqueId, watchTopics, type TopicWatcher } from '../helpers/broker.js';
import { freePort } from '../helpers/free-port.js';
import { signed } from './commands-harness.js';

/** A broker node this test may stop: its own Mosquitto when MQTT_URL is set (as on CI), else an in-process aedes. */
interface Node {
  readonly url: string;
  stop(): Promise<void>;
}

async function startNode(): Promise<Node> {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  if (process.env.MQTT_URL) {
    const child: ChildProcess = spawn('mosquitto', ['-p', String(port)], { stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => child.once('error', reject));
    await Promise.race([failed, connects(url)]);
    const exited = new Promise((r) => child.once('exit', r));
    return {
      url,
      // Idempotent: a node stopped by the test is stopped again by afterAll (a killed child has a signalCode, not an exitCode).
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
    };
  }
  const broker: EmbeddedBroker = await startEmbeddedBroker({ port });
  return { url, stop: () => broker.close() };
}

async function connects(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000, clientId: uniqueId('probe') }, false);
      await c.endAsync();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const KEY = 'recall-test-key-0123456789';
let node1: Node;
let node2: Node;
let sim: Dlt645Simulator;
let gw: Gateway;
let dir: string;
let watcher1: TopicWatcher;
let watcher2: TopicWatcher;
const gatewayId = uniqueId('gw-failover');
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;

beforeAll(async () => {
  node1 = await startNode();
  node2 = await startNode();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [1, 2, 3].map((i) => ({ address: `00000000004${i}`, kind: 'money' as const, balance: 100, powerKw: 0.3 })) },
  });
  dir = mkdtempSync(join(tmpdir(), 'meterd-failover-'));
  writeFileSync(
    join(dir, 'meterd.yaml'),
    `gateway: { id: ${gatewayId}, dataDir: ./data }
mqtt:
  url: [${node1.url}, ${node2.url}]
  protocolVersion: 4
  reconnectMaxDelay: 2s
commands: { hmacKey: ${KEY} }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 300ms }
meters:
${[1, 2, 3].map((i) => `  - { id: m${i}, bus: bus1, address: "00000000004${i}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
polling: { intervals: { instant: 1s, status: 1s } }
`,
  );
  watcher1 = await watchTopics(node1.url, `meterd/${gatewayId}/#`);
  watcher2 = await watchTopics(node2.url, `meterd/${gatewayId}/#`);
  gw = await startGateway(loadGatewayConfig(join(dir, 'meterd.yaml'), {}), { logger: pino({ level: 'silent' }) });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  // Node 1 is gone: its watcher's client may still be trying to reach it; do not wait on it.
  await Promise.race([watcher1?.close().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
  await watcher2?.close();
  await sim?.close();
  await node1?.stop();
  await node2?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const seqsOn = (w: TopicWatcher) =>
  w.messages.filter((m) => m.topic.endsWith('/readings')).map((m) => (JSON.parse(m.text) as { seq: number }).seq);

describe('a gateway with two broker nodes, and a station that recalls what its node never had', () => {
  it('moves to the second node when the first goes, and the station on the second node ends with every seq by recall', async () => {
    // The station lives on node 2 only: everything published to node 1 is, for it, a broker-side loss.
    const station = new RecallingStation({
      url: node2.url,
      gatewayIds: [gatewayId],
      fromSeq: 1,
      hmacKey: KEY,
      gapAgeMs: 1000,
      retryMs: 5000,
    });
    await station.start();
    try {
      await eventually(() => seqsOn(watcher1).length >= 20, 'twenty readings on node 1', 20_000);
      expect(seqsOn(watcher2)).toEqual([]);
      expect(gw.status().uplink).toBeDefined();

      const stoppedAt = Date.now();
      await node1.stop();
      await eventually(
        () => watcher2.json<{ state: string }>(topic('status')).some((s) => s.state === 'online'),
        'online on node 2',
        10_000,
      );
      // A cluster's next node is tried at once, not after the reconnect backoff.
      expect(Date.now() - stoppedAt).toBeLessThan(5_000);

      await eventually(
        () => station.count(gatewayId) > 0 && station.gaps(gatewayId).length === 0 && station.recalls.length > 0,
        'the station has every seq',
        30_000,
      );
      const high = Math.max(...seqsOn(watcher2));
      expect(station.count(gatewayId)).toBeGreaterThanOrEqual(high - 2);
      const recalled = watcher2.messages
        .filter((m) => m.topic.endsWith('/readings'))
        .map((m) => JSON.parse(m.text) as { seq: number; recalled?: boolean; ts: string; values: object });
      const first = recalled.find((r) => r.recalled === true && r.seq === 1)!;
      const original = watcher1.messages.map((m) => JSON.parse(m.text) as { seq?: number }).find((r) => r.seq === 1)!;
      // The same reading as first published: original ts, seq and values, marked recalled.
      expect(first).toEqual({ ...original, recalled: true });
    } finally {
      await station.close();
    }
  }, 90_000);

  it('says which part of a recalled range is gone for good, and refuses a range over the limit or unsigned', async () => {
    // Retention took readings 3 to 5.
    const db = new Database(join(dir, 'data', 'meterd.db'));
    db.prepare('DELETE FROM readings WHERE seq BETWEEN 3 AND 5').run();
    db.close();
    const client = await mqtt.connectAsync(node2.url, { clientId: uniqueId('station'), protocolVersion: 4 });
    try {
      await client.subscribeAsync(topic('cmd/recall/result'), { qos: 1 });
      const replies: { requestId: string; status: string; result?: Record<string, unknown>; error?: { code: string } }[] = [];
      client.on('message', (_t, p) => replies.push(JSON.parse(p.toString())));
      const send = (req: Record<string, unknown>, sign = true) =>
        client.publishAsync(topic('cmd/recall'), JSON.stringify(sign ? signed(req, KEY) : req), { qos: 1 });
      await send({ requestId: 'r-gone', fromSeq: 1, toSeq: 8 });
      await send({ requestId: 'r-big', fromSeq: 1, toSeq: 20_000 });
      await send({ requestId: 'r-unsigned', fromSeq: 1, toSeq: 2 }, false);
      await send({ requestId: 'r-both', fromSeq: 1, toSeq: 2, reports: { from: '2026-12-01', to: '2026-12-01' } });
      await eventually(
        () => ['r-gone', 'r-big', 'r-unsigned', 'r-both'].every((id) => replies.some((r) => r.requestId === id && r.status !== 'accepted')),
        'four final replies',
        10_000,
      );
      const final = (id: string) => replies.filter((r) => r.requestId === id).at(-1)!;
      expect(final('r-gone')).toMatchObject({ status: 'done', result: { found: 5, missing: [[3, 5]] } });
      expect(final('r-big')).toMatchObject({ status: 'rejected', error: { code: 'RECALL_RANGE_TOO_LARGE' } });
      expect(final('r-unsigned')).toMatchObject({ status: 'rejected', error: { code: 'UNSIGNED' } });
      expect(final('r-both')).toMatchObject({ status: 'rejected', error: { code: 'INVALID_FIELD' } });
    } finally {
      await client.endAsync();
    }
  }, 30_000);
});
