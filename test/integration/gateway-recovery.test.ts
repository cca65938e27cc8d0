import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/uplink/broker.js';
import { uniqueId, watchTopics, type TopicWatcher } from '../helpers/broker.js';
import { freePort } from '../helpers/free-port.js';

/**
 * A broker this test may restart without persistence, so it loses every retained message: an in-process aedes, or
 * with MQTT_URL set (CI's Mosquitto) a Mosquitto of its own on a free port, since the shared one must not restart.
 */
interface RestartableBroker {
  readonly url: string;
  readonly protocolVersion: 4 | 5;
  restart(): Promise<void>;
  close(): Promise<void>;
}

async function startRestartableBroker(): Promise<RestartableBroker> {
  const port = await freePort();
  const url = `mqtt://127.0.0.1:${port}`;
  if (process.env.MQTT_URL) {
    let child: ChildProcess;
    const launch = async () => {
      child = spawn('mosquitto', ['-p', String(port)], { stdio: 'ignore' });
      const failed = new Promise<never>((_, reject) => child.once('error', reject));
      await Promise.race([failed, eventuallyConnects(url, 5)]);
    };
    const stop = async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    };
    await launch();
    return {
      url,
      protocolVersion: 5,
      restart: async () => {
        await stop();
        await launch();
      },
      close: stop,
    };
  }
  let broker: EmbeddedBroker = await startEmbeddedBroker({ port });
  return {
    url,
    protocolVersion: 4,
    restart: async () => {
      await broker.close();
      broker = await startEmbeddedBroker({ port });
      expect(broker.port).toBe(port);
    },
    close: () => broker.close(),
  };
}

async function eventuallyConnects(url: string, protocolVersion: 4 | 5): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await mqtt.connectAsync(
        url,
        { reconnectPeriod: 0, connectTimeout: 1000, clientId: uniqueId('probe'), protocolVersion },
        false,
      );
      await c.endAsync();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The retained messages a subscriber that joins now receives on `filter`, by topic. */
async function retainedNow(url: string, filter: string): Promise<Map<string, Record<string, unknown>>> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: uniqueId('late-station'), protocolVersion: 4 }, false);
  const seen = new Map<string, Record<string, unknown>>();
  client.on('message', (topic, payload, packet) => {
    if (packet.retain && payload.length > 0) seen.set(topic, JSON.parse(payload.toString('utf8')) as Record<string, unknown>);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));
  await client.endAsync();
  return seen;
}

const METERS = [
  { id: 'rc-a', address: '000000000301' },
  { id: 'rc-b', address: '000000000302' },
  { id: 'rc-c', address: '000000000303' },
];

let broker: RestartableBroker;
let sim: Dlt645Simulator;
let simPort: number;
let gw: Gateway;
let watcher: TopicWatcher;
const gatewayId = uniqueId('gw-recovery');
const logLines: Record<string, unknown>[] = [];
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;

const startSim = (tcpPort: number) =>
  startDlt645Simulator({ tcpPort, spec: { meters: METERS.map((m) => ({ address: m.address, kind: 'energy' as const, balance: 50 })) } });

beforeAll(async () => {
  broker = await startRestartableBroker();
  sim = await startSim(0);
  simPort = sim.address!.tcpPort;
  // Meter c is dead from the start: it goes offline and waits for its slow probe (5 minutes).
  sim.bus.setFaults({ silent: true }, [...sim.meters.keys()].find((a) => a === METERS[2]!.address)!);
  const dir = mkdtempSync(join(tmpdir(), 'meterd-recovery-'));
  const file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway:
  id: ${gatewayId}
  dataDir: ./data
mqtt:
  url: ${broker.url}
  protocolVersion: ${broker.protocolVersion}
  reconnectMaxDelay: 2s
buses:
  - id: bus1
    port: tcp://127.0.0.1:${simPort}
    gap: 5ms
    timeout: 200ms
    retries: 0
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
polling:
  intervals: { instant: 1s, energy: 2s, status: 2s, credit: 2s }
`,
  );
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  gw = await startGateway(loadGatewayConfig(file, {}), { logger });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await watcher?.close();
  await sim?.close();
  await broker?.close();
});

const states = (meterId: string) => watcher.json<{ state: string }>(topic(`meters/${meterId}/state`)).map((s) => s.state);
const busStates = () => watcher.json<{ state: string }>(topic('buses/bus1/state')).map((s) => s.state);
/** Collapses repeats: the sequence of changes. */
const changes = (xs: string[]) => xs.filter((x, i) => i === 0 || x !== xs[i - 1]);

describe('gateway recovery: what the station sees of bus outages and of a broker that lost its retained messages', () => {
  it('a bus outage is published as it happens (down, then up), its meters become unreachable and then online again', async () => {
    await watcher.waitFor(() => states('rc-a').includes('online') && states('rc-b').includes('online'), 'meters a and b online', 15_000);
    await watcher.waitFor(() => states('rc-c').includes('offline'), 'meter c offline', 15_000);
    await watcher.waitFor(() => busStates().includes('up'), 'the bus reported up', 15_000);

    // The converter goes away (its TCP port refuses), and meter c is back when it returns.
    await sim.close();
    await watcher.waitFor(() => busStates().at(-1) === 'down', 'the bus state down, published on the change', 5_000);
    await watcher.waitFor(
      () => states('rc-a').at(-1) === 'unreachable' && states('rc-b').at(-1) === 'unreachable',
      'meters a and b unreachable',
      10_000,
    );
    expect(states('rc-c').at(-1)).toBe('offline');

    sim = await startSim(simPort);
    const back = Date.now();
    await watcher.waitFor(() => busStates().at(-1) === 'up', 'the bus state up again', 10_000);
    await watcher.waitFor(
      () => states('rc-a').at(-1) === 'online' && states('rc-b').at(-1) === 'online',
      'meters a and b online again',
      10_000,
    );
    // The offline meter is probed as soon as the bus is up, not at its 5-minute probe.
    await watcher.waitFor(() => states('rc-c').at(-1) === 'online', 'meter c online, probed when the bus came back', 10_000);
    expect(Date.now() - back).toBeLessThan(10_000);
    const up = logLines.find((l) => l.event === 'bus-state' && l.change === 'opened' && (l.time as number) >= back - 1000);
    const cBack = logLines.find((l) => l.meter === 'rc-c' && l.msg === 'meter back online');
    expect(up).toBeDefined();
    expect(cBack).toBeDefined();
    expect((cBack!.time as number) - (up!.time as number)).toBeLessThan(2_000);
    expect(logLines).toContainEqual(expect.objectContaining({ event: 'bus-recovered', bus: 'bus1', probing: 1 }));

    expect(changes(busStates())).toEqual(['up', 'down', 'up']);
    expect(changes(states('rc-a'))).toEqual(['online', 'unreachable', 'online']);
  }, 60_000);

  it('after the broker lost its retained messages, every meter state (quiet ones too) and the bus state are retained again', async () => {
    await watcher.close();
    await broker.restart();
    expect((await retainedNow(broker.url, topic('#'))).size).toBe(0);

    const wanted = [...METERS.map((m) => topic(`meters/${m.id}/state`)), topic('buses/bus1/state')];
    // A station that subscribes after the gateway reconnected gets them: asked again until all are there.
    let retained = new Map<string, Record<string, unknown>>();
    const deadline = Date.now() + 20_000;
    while (!wanted.every((t) => retained.has(t)) && Date.now() < deadline) retained = await retainedNow(broker.url, topic('#'));
    for (const t of wanted) expect(retained.has(t), t).toBe(true);
    for (const m of METERS) expect(retained.get(topic(`meters/${m.id}/state`))).toMatchObject({ meter: m.id, state: 'online' });
    expect(retained.get(topic('buses/bus1/state'))).toMatchObject({ bus: 'bus1', state: 'up' });
  }, 60_000);
});
