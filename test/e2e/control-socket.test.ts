import { chmodSync, existsSync, mkdtempSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { LedgerCardSales } from '../../src/cards/index.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { cards, SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { listCommands, openStore } from '../../src/store/index.js';
import {
  clearRetained,
  eventually,
  startTestBroker,
  uniqueId,
  watchTopics,
  type TestBroker,
  type TopicWatcher,
} from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { createPtyPair, type PtyPair } from '../helpers/pty.js';

// The technician's CLI beside a running daemon (issue 18): the real `meterd run` polls a simulated bus, and real
// `meterd` processes read, load, switch and sell through its control socket while the polling goes on.

const METERS = [
  { id: 'room-101', address: '000000000101', voltage: 221.3 },
  { id: 'room-102', address: '000000000102', voltage: 222.4 },
  { id: 'room-103', address: '000000000103', voltage: 223.5 },
  { id: 'room-104', address: '000000000104', voltage: 224.6 },
];
const CARD_METER = '000012345678';
const NOBODY = 65_534;

let broker: TestBroker;
let sim: Dlt645Simulator;
let pty: PtyPair;
let encoder: SimulatedEncoder;
let watcher: TopicWatcher;
let daemon: DaemonProcess;
let gw: string;
let dir: string;
let configYaml: string;

const socketPath = () => join(dir, 'data', 'meterd.sock');
const cli = (...args: string[]) => runMeterd(args, { cwd: dir });
const readings = (meter: string) => watcher.messages.filter((m) => m.topic === `meterd/${gw}/meters/${meter}/readings`).length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function withStore<T>(fn: (store: ReturnType<typeof openStore>) => T): T {
  const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock });
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        ...METERS.map((m) => ({
          address: m.address,
          kind: 'money' as const,
          balance: 50,
          purchaseCount: 5,
          registers: { 'voltage.a': m.voltage },
        })),
        { address: CARD_METER, kind: 'energy' as const, purchaseCount: 3 },
      ],
    },
  });
  pty = await createPtyPair();
  encoder = new SimulatedEncoder({ framing: 'star' });
  await encoder.attach(pty.b);
  gw = uniqueId('gw-ctl');
  watcher = await watchTopics(broker.url, `meterd/${gw}/#`);
  dir = mkdtempSync(join(tmpdir(), 'meterd-ctl-'));
  // Others may walk to the socket; the socket's own mode decides who may connect (the permission test).
  chmodSync(dir, 0o755);
  // The books hold card purchase 3 of the card meter, which its write-back confirms.
  withStore((store) =>
    new LedgerCardSales(() => store).record({
      channel: 'card',
      meterNumber: CARD_METER,
      purchaseCount: 3,
      amount: 1000,
      unit: '0.01kWh',
      operator: 'alice',
      encoder: 'star-st102',
      layout: 'sle4442-dorm',
      at: new Date().toISOString(),
    }),
  );
  chmodSync(join(dir, 'data'), 0o755);
  // No commands section: over MQTT an unsigned top-up is refused; through the socket the file mode is the check.
  configYaml = `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
buses: [{ id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 5ms, timeout: 3s }]
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
  - { id: room-201, bus: bus1, address: "${CARD_METER}", profile: dlt645-2007-single-phase-prepaid }
encoders: [{ id: counter-1, port: "${pty.a}" }]
polling:
  intervals: { instant: 1s, energy: 1s, status: 5s, credit: 5s }
`;
  daemon = startDaemon(configYaml, { dir });
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 30_000);
}, 60_000);

afterAll(async () => {
  if (daemon?.child.exitCode === null && daemon.child.signalCode === null) {
    daemon.child.kill('SIGKILL');
    await daemon.exited();
  }
  await watcher?.close();
  await clearRetained(broker.url, [
    `meterd/${gw}/status`,
    `meterd/${gw}/buses/bus1/state`,
    ...[...METERS.map((m) => m.id), 'room-201'].map((id) => `meterd/${gw}/meters/${id}/state`),
  ]);
  await encoder?.close();
  await pty?.close();
  await sim?.close();
  await broker?.close();
});

describe('the CLI through the running daemon', { timeout: 120_000 }, () => {
  it('the socket is in the data directory with mode 0660, and status answers', async () => {
    const mode = statSync(socketPath()).mode;
    expect(statSync(socketPath()).isSocket()).toBe(true);
    expect(mode & 0o777).toBe(0o660);
    const run = await cli('status', '-c', 'meterd.yaml', '--json');
    expect(run.stderr).toBe('');
    const status = JSON.parse(run.stdout) as { uptimeSeconds: number };
    expect(status).toMatchObject({
      gatewayId: gw,
      pid: daemon.child.pid,
      broker: { connected: true },
      buses: [{ id: 'bus1', state: 'up' }],
      meters: { total: 5, unreachable: 0 },
      alerts: { active: 0 },
      batches: { inProgress: 0 },
    });
    expect(status.uptimeSeconds).toBeGreaterThanOrEqual(0);
    const screen = await cli('status', '-c', 'meterd.yaml');
    expect(screen.stdout).toMatch(/^broker +connected/m);
    expect(screen.stdout).toMatch(/^meters +5: \d+ online/m);
  });

  it('read, topup, relay and a card sale go through it while polling keeps its rate', async () => {
    const baselineFrom = readings('room-102');
    const baselineStart = Date.now();
    await sleep(4000);
    const baselineRate = (readings('room-102') - baselineFrom) / ((Date.now() - baselineStart) / 1000);

    const from = readings('room-102');
    const started = Date.now();
    const read = await cli('read', '-c', 'meterd.yaml', '--meter', 'room-101', '--point', 'voltage.a', '--json');
    expect(read.stderr).toBe('');
    expect(JSON.parse(read.stdout)).toEqual([{ address: 'room-101', point: 'voltage.a', di: '02010100', value: 221.3, unit: 'V' }]);
    // The port and address of a configured meter are found in the config: the technician's old habit works too.
    const byPort = await cli(
      'read',
      '-c',
      'meterd.yaml',
      '--port',
      `tcp://127.0.0.1:${sim.address!.tcpPort}`,
      '--addr',
      '102',
      '--point',
      'voltage.a',
      '--json',
    );
    expect(byPort.stderr).toBe('');
    expect(JSON.parse(byPort.stdout)).toMatchObject([{ address: 'room-102', value: 222.4 }]);

    const topup = await cli(
      'topup',
      '-c',
      'meterd.yaml',
      '--meter',
      'room-101',
      '--amount',
      '12.34',
      '--request-id',
      'ctl-topup-1',
      '--operator',
      'alice',
    );
    expect(topup.stderr).toBe('');
    expect(topup.stdout).toMatch(/meter room-101: 12\.34 CNY applied: purchase count 6, balance 62\.34 CNY/);
    expect(sim.meters.get('000000000101')!.snapshot()).toMatchObject({ balance: 6234, purchaseCount: 6 });

    const trip = await cli('relay', '-c', 'meterd.yaml', '--meter', 'room-103', '--action', 'trip');
    expect(trip.stderr).toBe('');
    expect(trip.stdout).toMatch(/room-103: relay open/);
    expect(sim.meters.get('000000000103')!.snapshot().relay.open).toBe(true);
    const close = await cli('relay', '-c', 'meterd.yaml', '--meter', 'room-103', '--action', 'close');
    expect(close.stdout).toMatch(/room-103: relay closed/);
    expect(sim.meters.get('000000000103')!.snapshot().relay.open).toBe(false);

    encoder.insert(
      cards.ours(loadCardLayout('sle4442-dorm'), {
        meterNumber: CARD_METER,
        customerNumber: '000000000042',
        purchaseCount: 3,
        purchaseAmount: 1000,
        writeBack: { balance: 350, purchaseCount: 3 },
      }),
    );
    const cardRead = await cli('card', 'read', '-c', 'meterd.yaml', '--json');
    expect(cardRead.stderr).toBe('');
    expect(JSON.parse(cardRead.stdout)).toMatchObject({ meterNumber: CARD_METER, purchase: { count: 3 } });
    const sale = await cli('card', 'sell', '-c', 'meterd.yaml', '--meter', 'room-201', '--kwh', '15', '--operator', 'carol');
    expect(sale.stderr).toBe('');
    expect(sale.stdout).toMatch(/sold 15\.00 kWh to meter 000012345678: purchase count 4, .*carol \(through the daemon\)/);

    const during = (readings('room-102') - from) / ((Date.now() - started) / 1000);
    console.log(`readings of room-102 per second: ${baselineRate.toFixed(2)} before, ${during.toFixed(2)} while the CLI worked`);
    expect(during).toBeGreaterThanOrEqual(baselineRate * 0.6);

    withStore((store) => {
      // The socket's commands are recorded like the station's, with who sent them, and their replies never went to
      // the outbox: the station sees nothing of them.
      const records = store.transaction((tx) => listCommands(tx, {}));
      const topupRecord = records.find((r) => r.requestId === 'ctl-topup-1');
      expect(topupRecord).toMatchObject({ command: 'topup', status: 'done', origin: 'socket', operator: 'alice' });
      expect(
        records
          .filter((r) => r.origin === 'socket')
          .map((r) => r.command)
          .sort(),
      ).toEqual(['card-read', 'card-sell', 'read', 'read', 'relay', 'relay', 'topup']);
      const entry = store.ledger.list({ meterId: 'room-101' }).find((e) => e.requestId === 'ctl-topup-1');
      expect(entry).toMatchObject({ channel: 'operator', operator: 'alice', state: 'applied', amount: 1234 });
      expect(store.ledger.list({ meterId: CARD_METER }).map((e) => [e.channel, e.purchaseCount, e.amount, e.operator])).toEqual([
        ['card', 3, 1000, 'alice'],
        ['card', 4, 1500, 'carol'],
      ]);
    });
    expect(watcher.messages.filter((m) => m.topic.includes('/cmd/'))).toEqual([]);
  });

  it('the same top-up over MQTT without a signature is refused: the socket is the only unsigned door', async () => {
    const station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId('station') });
    try {
      await station.publishAsync(
        `meterd/${gw}/cmd/topup`,
        JSON.stringify({ requestId: 'mqtt-unsigned-1', meter: 'room-101', amountFen: 100 }),
        { qos: 1 },
      );
      await watcher.waitFor(() => watcher.json(`meterd/${gw}/cmd/topup/result`).length > 0, 'the refusal');
      expect(watcher.json(`meterd/${gw}/cmd/topup/result`)).toMatchObject([
        { requestId: 'mqtt-unsigned-1', status: 'rejected', error: { code: 'UNSIGNED' } },
      ]);
    } finally {
      await station.endAsync();
    }
  });

  it('two CLIs at once: each gets its own answer, and one request id sent twice loads once', async () => {
    const before = sim.meters.get('000000000102')!.snapshot();
    const [a, b, c] = await Promise.all([
      cli('topup', '-c', 'meterd.yaml', '--meter', 'room-102', '--amount', '5', '--request-id', 'ctl-twice'),
      cli('topup', '-c', 'meterd.yaml', '--meter', 'room-102', '--amount', '5', '--request-id', 'ctl-twice'),
      cli('read', '-c', 'meterd.yaml', '--meter', 'room-104', '--point', 'voltage.a', '--json'),
    ]);
    for (const run of [a, b, c]) expect(run.stderr).toBe('');
    expect(a.stdout).toMatch(/applied/);
    expect(b.stdout).toMatch(/applied/);
    expect(JSON.parse(c.stdout)).toMatchObject([{ address: 'room-104', value: 224.6 }]);
    const after = sim.meters.get('000000000102')!.snapshot();
    expect(after.purchaseCount).toBe(before.purchaseCount! + 1);
    expect(after.balance).toBe(before.balance! + 500);
  });

  it('a CLI killed mid-command leaves the job to finish in the daemon, with its ledger row', async () => {
    // A slow meter: every exchange takes 700 ms, so the load is on its way when the CLI is killed.
    sim.bus.setFaults({ delayMs: 700 }, '000000000104');
    const before = sim.meters.get('000000000104')!.snapshot();
    const accepted = () =>
      withStore((s) => s.transaction((tx) => listCommands(tx, { meterId: 'room-104' })).some((r) => r.requestId === 'ctl-killed'));
    const run = runMeterd(['topup', '-c', 'meterd.yaml', '--meter', 'room-104', '--amount', '7', '--request-id', 'ctl-killed'], {
      cwd: dir,
      onSpawn: (child) => {
        void eventually(accepted, 'the daemon accepting the topup', 30_000).then(() => child.kill('SIGKILL'));
      },
    });
    const killed = await run;
    expect(killed.signal).toBe('SIGKILL');
    await eventually(
      () => withStore((s) => s.ledger.list({ meterId: 'room-104' }).some((e) => e.requestId === 'ctl-killed' && e.state === 'applied')),
      'the load applied in the daemon',
      30_000,
    );
    sim.bus.setFaults({}, '000000000104');
    const record = withStore((s) =>
      s.transaction((tx) => listCommands(tx, { meterId: 'room-104' })).find((r) => r.requestId === 'ctl-killed'),
    );
    await eventually(
      () =>
        withStore(
          (s) =>
            s.transaction((tx) => listCommands(tx, { meterId: 'room-104' })).find((r) => r.requestId === 'ctl-killed')?.status === 'done',
        ),
      'the command recorded done',
    );
    expect(record?.origin).toBe('socket');
    const after = sim.meters.get('000000000104')!.snapshot();
    expect(after.purchaseCount).toBe(before.purchaseCount! + 1);
    expect(after.balance).toBe(before.balance! + 700);
    // Asked again with the same request id, the daemon answers from the record: nothing loads twice.
    const again = await cli('topup', '-c', 'meterd.yaml', '--meter', 'room-104', '--amount', '7', '--request-id', 'ctl-killed');
    expect(again.stdout).toMatch(/applied/);
    expect(sim.meters.get('000000000104')!.snapshot().purchaseCount).toBe(after.purchaseCount);
  });

  it('another user is refused by the socket file mode; a member of its group is let in', async () => {
    // Runs as root here: the CLI is started as nobody (uid 65534), once in its own group and once in the group that
    // owns the socket (root's, gid 0). The directory is world-searchable, so only the socket's 0660 decides.
    expect(process.getuid?.()).toBe(0);
    const owner = statSync(socketPath());
    const stranger = await runMeterd(['status', '-c', 'meterd.yaml'], { cwd: dir, uid: NOBODY, gid: NOBODY, env: { HOME: '/tmp' } });
    expect(stranger.status).toBe(1);
    expect(stranger.stderr).toMatch(/DAEMON_PERMISSION_DENIED: .*meterd\.sock: permission denied/);
    const member = await runMeterd(['status', '-c', 'meterd.yaml', '--json'], {
      cwd: dir,
      uid: NOBODY,
      gid: owner.gid,
      env: { HOME: '/tmp' },
    });
    expect(member.stderr).toBe('');
    expect(JSON.parse(member.stdout)).toMatchObject({ gatewayId: gw });
  });

  it('bad frames get a specific error each; a command the router does not know is rejected as on MQTT', async () => {
    const exchange = (text: string) =>
      new Promise<Record<string, unknown>[]>((resolve, reject) => {
        const socket = connect(socketPath());
        let got = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => {
          got += d;
          if (got.endsWith('\n')) {
            socket.destroy();
            resolve(
              got
                .trim()
                .split('\n')
                .map((l) => JSON.parse(l) as Record<string, unknown>),
            );
          }
        });
        socket.on('error', reject);
        socket.on('close', () =>
          resolve(
            got.trim() === ''
              ? []
              : got
                  .trim()
                  .split('\n')
                  .map((l) => JSON.parse(l) as Record<string, unknown>),
          ),
        );
        socket.write(text);
      });
    expect(await exchange('not json\n')).toMatchObject([{ type: 'error', error: { code: 'NOT_JSON' } }]);
    expect(await exchange('{"type":"shout"}\n')).toMatchObject([{ type: 'error', error: { code: 'BAD_FRAME' } }]);
    expect(await exchange('{"type":"command","command":"read","operator":"x\\u0007","request":{}}\n')).toMatchObject([
      { type: 'error', error: { code: 'BAD_FRAME', field: 'operator' } },
    ]);
    expect(await exchange(`${'x'.repeat(70_000)}\n`)).toMatchObject([{ type: 'error', error: { code: 'FRAME_TOO_LARGE' } }]);
    expect(await exchange('{"type":"command","command":"launch","operator":"bob","request":{"requestId":"ctl-x"}}\n')).toMatchObject([
      { type: 'reply', final: true, reply: { requestId: 'ctl-x', status: 'rejected', error: { code: 'UNKNOWN_COMMAND' } } },
    ]);
    expect(
      await exchange(
        '{"type":"command","command":"topup","operator":"bob","request":{"requestId":"ctl-y","meter":"room-101","energyKwh":1.234}}\n',
      ),
    ).toMatchObject([{ type: 'reply', reply: { status: 'rejected', error: { code: 'INVALID_FIELD', field: 'energyKwh' } } }]);
  });

  it('a second daemon is refused; after a SIGKILL the stale socket is replaced and the CLI works directly meanwhile', async () => {
    const second = await runMeterd(['run', '-c', 'meterd.yaml'], { cwd: dir });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/DAEMON_RUNNING/);
    expect((await cli('status', '-c', 'meterd.yaml')).status).toBe(0);
    const direct = await cli('read', '-c', 'meterd.yaml', '--meter', 'room-101', '--point', 'voltage.a', '--direct');
    expect(direct.status).toBe(1);
    expect(direct.stderr).toMatch(/DAEMON_RUNNING: a meterd daemon runs for meterd\.yaml/);

    daemon.child.kill('SIGKILL');
    await daemon.exited();
    expect(existsSync(socketPath())).toBe(true);
    const none = await cli('status', '-c', 'meterd.yaml');
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/DAEMON_NOT_RUNNING/);
    const alone = await cli('read', '-c', 'meterd.yaml', '--meter', 'room-101', '--point', 'voltage.a', '--json');
    expect(alone.stderr).toBe('');
    expect(JSON.parse(alone.stdout)).toMatchObject([{ address: 'room-101', value: 221.3 }]);

    // The restarted daemon finds the killed one's socket file, sees nobody answers on it, and takes its place.
    daemon = startDaemon(configYaml, { dir });
    let status: { gatewayId?: string; pid?: number } = {};
    for (let i = 0; i < 40 && status.pid !== daemon.child.pid; i++) {
      const run = await cli('status', '-c', 'meterd.yaml', '--json');
      if (run.status === 0) status = JSON.parse(run.stdout) as { gatewayId: string; pid: number };
      else await sleep(500);
    }
    expect(status).toMatchObject({ gatewayId: gw, pid: daemon.child.pid });
    daemon.child.kill('SIGTERM');
    await daemon.exited();
    expect(existsSync(socketPath())).toBe(false);
  });
});
