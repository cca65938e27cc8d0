import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecallingStation } from '../../scripts/station-recall.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { eventually, uniqueId } from '../helpers/broker.js';
import { startRabbitCluster, type RabbitCluster } from '../helpers/rabbit-cluster.js';

const KEY = 'rabbit-cluster-key-0123456789';
let cluster: RabbitCluster;
let sim: Dlt645Simulator;
let gw: Gateway;
let dir: string;
const gatewayId = uniqueId('gw-rmq');

beforeAll(async () => {
  // Three nodes: RabbitMQ tracks MQTT client ids in a Raft group, which takes new connections only with a majority up.
  cluster = await startRabbitCluster(3);
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: { meters: [1, 2, 3].map((i) => ({ address: `00000000005${i}`, kind: 'money' as const, balance: 100, powerKw: 0.4 })) },
  });
  dir = mkdtempSync(join(tmpdir(), 'meterd-rmq-'));
  const [n1, n2, n3] = cluster.nodes;
  writeFileSync(
    join(dir, 'meterd.yaml'),
    `gateway: { id: ${gatewayId}, dataDir: ./data }
mqtt:
  url: [${n1!.mqttUrl}, ${n2!.mqttUrl}, ${n3!.mqttUrl}]
  protocolVersion: 4
  reconnectMaxDelay: 5s
commands: { hmacKey: ${KEY} }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 300ms }
meters:
${[1, 2, 3].map((i) => `  - { id: r${i}, bus: bus1, address: "00000000005${i}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
polling: { intervals: { instant: 1s, status: 1s } }
`,
  );
}, 180_000);

afterAll(async () => {
  await gw?.stop();
  await sim?.close();
  await cluster?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('a three-node RabbitMQ cluster with the MQTT plugin (MQTT 3.1.1)', () => {
  it('the gateway moves to node 2 when node 1 stops, losing nothing; a station whose queue was lost recalls the gap and ends with every seq', async () => {
    const [n1, n2] = cluster.nodes;
    // The station's persistent session (and so its queue) lives on node 2; it tracks from seq 1.
    const station = new RecallingStation({
      url: n2!.mqttUrl,
      gatewayIds: [gatewayId],
      fromSeq: 1,
      hmacKey: KEY,
      gapAgeMs: 1500,
      retryMs: 10_000,
    });
    await station.start();
    const log: { msg: string; clientId?: string }[] = [];
    gw = await startGateway(loadGatewayConfig(join(dir, 'meterd.yaml'), {}), {
      logger: pino({ level: 'info' }, { write: (line: string) => void log.push(JSON.parse(line)) }),
    });
    try {
      await eventually(() => station.count(gatewayId) >= 15, 'fifteen readings at the station', 30_000);
      expect(gw.status().uplink).toBeDefined();

      // Node 1 goes away: the gateway moves to node 2 at once (not after its 5 s backoff cap), and nothing is lost.
      const before = station.count(gatewayId);
      const stoppedAt = Date.now();
      await n1!.stop();
      await eventually(() => station.count(gatewayId) >= before + 10, 'readings flowing again through node 2', 30_000);
      const failoverMs = Date.now() - stoppedAt;
      // Within the reconnect cap (5 s) plus the moments RabbitMQ takes to refuse the session whose queue was on node 1.
      expect(failoverMs).toBeLessThan(15_000);
      expect(log.some((l) => /our session is on a node that is down/.test(l.msg))).toBe(true);
      expect(station.gaps(gatewayId)).toEqual([]);
      expect(station.recalls).toEqual([]);

      // The station is away and its queue is lost (purged): the readings of those seconds are gone from the broker.
      await station.close();
      await new Promise((r) => setTimeout(r, 3000));
      const queue = (await n2!.listQueues()).find((q) => q.includes(station.clientId))!;
      expect(queue).toBeDefined();
      await n2!.purgeQueue(queue);
      await station.start();
      await eventually(() => station.gaps(gatewayId).length === 0 && station.recalls.length > 0, 'the gap recalled and filled', 30_000);
      const high = Math.max(...(station.gaps(gatewayId).flat() as number[]), station.count(gatewayId));
      expect(station.count(gatewayId)).toBeGreaterThanOrEqual(high);
    } finally {
      await station.close();
    }
  }, 180_000);
});
