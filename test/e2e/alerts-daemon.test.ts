import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { eventually, startTestBroker, type TestBroker, uniqueId, watchTopics, type TopicWatcher } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';

const ADDRESS = '000000000031';
let broker: TestBroker;
let sim: Dlt645Simulator;
let gw: Gateway;
let watcher: TopicWatcher;
let dir: string;
let configPath: string;
const gatewayId = uniqueId('gw-alerts');
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;

const startDaemon = async () => startGateway(loadGatewayConfig(configPath, {}), { logger: pino({ level: 'silent' }) });

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: [{ address: ADDRESS, kind: 'money', balance: 200, powerKw: 0.5 }] } });
  dir = mkdtempSync(join(tmpdir(), 'meterd-alerts-e2e-'));
  configPath = join(dir, 'meterd.yaml');
  writeFileSync(
    configPath,
    `gateway: { id: ${gatewayId}, dataDir: ./data }
mqtt: { url: ${broker.url}, protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 300ms }
meters:
  - { id: room-301, bus: bus1, address: "${ADDRESS}", profile: dlt645-2007-single-phase-prepaid-money }
polling: { intervals: { status: 1s, instant: 2s, credit: 2s, energy: 5s } }
`,
  );
  watcher = await watchTopics(broker.url, `meterd/${gatewayId}/#`);
  gw = await startDaemon();
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await watcher?.close();
  await sim?.close();
  await broker?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface AlertMsg {
  alertId: string;
  kind: string;
  state: string;
}
const alertMsgs = () => watcher.json<AlertMsg>(topic('meters/room-301/alerts'));
const activeNow = () =>
  watcher
    .json<{ alerts: { kind: string }[] }>(topic('alerts/active'))
    .at(-1)
    ?.alerts.map((a) => a.kind) ?? [];

describe('alerts end to end: meter → daemon → broker, and the technician’s acknowledgement back', () => {
  it('an opened cover is raised on MQTT and in the active set, survives a daemon restart without a second raise, and is cleared by `meterd alerts ack`', async () => {
    await eventually(() => watcher.json(topic('meters/room-301/readings')).length >= 3, 'the meter is polled', 15_000);
    [...sim.meters.values()][0]!.recordCoverOpen(Date.now());
    await eventually(() => alertMsgs().some((m) => m.kind === 'cover-open' && m.state === 'raised'), 'cover-open raised on MQTT', 10_000);
    await eventually(() => activeNow().includes('cover-open'), 'cover-open in the retained active set', 5_000);

    const list = await runMeterd(['alerts', '-c', configPath]);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(/room-301\s+cover-open\s+critical\s+active/);

    await gw.stop();
    gw = await startDaemon();
    await eventually(() => watcher.json(topic('meters/room-301/readings')).length >= 8, 'polled again after the restart', 15_000);
    expect(alertMsgs().filter((m) => m.state === 'raised')).toHaveLength(1);

    // Over MQTT an unsigned acknowledgement is refused: it would hide a tamper alert.
    const { alertId } = alertMsgs().find((m) => m.kind === 'cover-open')!;
    const station = await mqtt.connectAsync(broker.url, { clientId: uniqueId('station'), protocolVersion: 4 });
    await station.publishAsync(topic('cmd/alert-ack'), JSON.stringify({ requestId: 'ack-1', alertId, operator: 'wang' }), { qos: 1 });
    await eventually(
      () => watcher.json<{ requestId: string }>(topic('cmd/alert-ack/result')).some((r) => r.requestId === 'ack-1'),
      'the refusal',
      5_000,
    );
    await station.endAsync();
    expect(watcher.json<{ status: string; error?: { code: string } }>(topic('cmd/alert-ack/result')).at(-1)).toMatchObject({
      status: 'rejected',
      error: { code: 'UNSIGNED' },
    });

    // Through the control socket the technician's file permissions are the authentication.
    const ack = await runMeterd([
      'alerts',
      'ack',
      '-c',
      configPath,
      alertId,
      '--operator',
      'wang',
      '--note',
      'cover resealed, no tampering',
    ]);
    expect(ack.stderr).toBe('');
    expect(ack.stdout).toMatch(/acknowledged and cleared/);
    await eventually(() => alertMsgs().some((m) => m.state === 'cleared'), 'cleared on MQTT', 5_000);
    await eventually(() => activeNow().length === 0, 'the active set empty', 5_000);
    const history = await runMeterd(['alerts', '-c', configPath, '--all', '--json']);
    expect(JSON.parse(history.stdout.trim().split('\n')[0]!)).toMatchObject({ alertId, kind: 'cover-open', clearedBy: 'wang' });
    expect(gw.store.alerts.notes(alertId)).toEqual([expect.objectContaining({ operator: 'wang', note: 'cover resealed, no tampering' })]);

    const bad = await runMeterd(['alerts', 'ack', '-c', configPath, 'no such id!', '--note', 'x']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/alertId: must be an alert id/);
  }, 90_000);
});
