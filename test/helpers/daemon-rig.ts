import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { systemClock } from '../../src/clock.js';
import { type BusFaults, type Dlt645Simulator, type MeterSpec, startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import type { LocalTestEncryptionMachine } from '../../src/sim/dlt645/local-encryption-machine.js';
import { SimulatedEncoder } from '../../src/sim/encoder/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { commandSignature } from '../../src/uplink/commands/signature.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from './broker.js';
import { startDaemon, type DaemonProcess } from './daemon.js';
import { createPtyPair, type PtyPair } from './pty.js';

/**
 * The station side of an end-to-end test around a real `meterd run` process: a broker (Mosquitto at MQTT_URL, else an
 * embedded one), simulated DL/T 645 buses over TCP, optionally a simulated card encoder on a pty pair and the
 * station's encryption machine answering `hsm/request`, a subscriber on `meterd/<gw>/#`, and a station client that
 * sends commands. The test writes the gateway's config itself (it is what the test is about) from the rig's values.
 */
export interface DaemonRig {
  readonly broker: TestBroker;
  /** The gateway id: `meterd/<gw>/…`. */
  readonly gw: string;
  /** One simulator per bus, each on its own TCP port. */
  readonly sims: readonly Dlt645Simulator[];
  /** The first bus's simulator. */
  readonly sim: Dlt645Simulator;
  /** The card encoder (with `encoder: true`); the gateway opens `encoderPort`. */
  readonly encoder: SimulatedEncoder | undefined;
  readonly encoderPort: string | undefined;
  readonly watcher: TopicWatcher;
  /** The station's MQTT client (also the one that answers `hsm/request`). */
  readonly station: MqttClient;
  /** The daemon's directory (config and `./data`), made before the first start so a test may seed the store. */
  readonly dir: string;
  /** The daemon process last started; throws before the first start. */
  readonly daemon: DaemonProcess;
  /** `tcp://127.0.0.1:<port>` of a bus's simulator, for the config's `buses:`. */
  busUrl(bus?: number): string;
  /**
   * Starts `meterd run` on `configYaml` in `dir`. Resolves once the gateway has said `online` after this start (unless
   * `waitOnline: false`), so a restart after a kill waits for the new process, not the old one's last status.
   */
  start(
    configYaml: string,
    opts?: { env?: Readonly<Record<string, string>>; logLevel?: string; waitOnline?: boolean },
  ): Promise<DaemonProcess>;
  /** Signals the daemon (SIGKILL: the crash the test is about) and waits for it to exit; nothing when it is not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Opens the daemon's store beside it (SQLite allows a reader while the daemon writes), runs `fn`, closes it. */
  withStore<T>(fn: (store: Store) => T, opts?: { checkAtOpen?: boolean }): T;
  /** The replies on `cmd/<command>/result` to `requestId`, in arrival order. */
  replies<T = CommandReplyMessage>(command: string, requestId: string): T[];
  /** Publishes a command (signed with `key` when given, as a station does) and resolves with its last reply once one is final. */
  send<T = CommandReplyMessage>(command: string, request: Record<string, unknown>, opts?: { key?: string; timeoutMs?: number }): Promise<T>;
  /** The last lines of the daemon's log, for a failure message. */
  logTail(lines?: number): string;
  /**
   * Stops the daemon (SIGTERM unless told), the station, the watcher; deletes `retained` (topics below
   * `meterd/<gw>/`, e.g. `status`, `meters/room-1/state`) so a shared broker keeps nothing; closes the simulators.
   */
  close(opts: { retained: readonly string[]; signal?: NodeJS.Signals }): Promise<void>;
}

/** A command reply as the station receives it (docs/mqtt-api.md § replies). */
export interface CommandReplyMessage {
  requestId: string;
  status: string;
  result?: Record<string, unknown>;
  error?: { code: string; message: string; field?: string };
}

export interface DaemonRigOptions {
  /** Label of the gateway id (a unique suffix is added). */
  readonly gateway: string;
  /** The meters of each bus (one simulator each), with faults from the start. */
  readonly buses: readonly { readonly meters: readonly MeterSpec[]; readonly faults?: BusFaults }[];
  /** A simulated Star card encoder on a pty pair. */
  readonly encoder?: boolean;
  /**
   * The station's encryption machine: `hsm/request` is answered with it (identity, else MACs), as long as
   * `answers(op)` says so (default always); a question not answered is left to time out.
   */
  readonly hsm?: { readonly machine: LocalTestEncryptionMachine; readonly answers?: (op: string) => boolean };
  /** Label of the station's client id. */
  readonly station?: string;
}

export async function startDaemonRig(opts: DaemonRigOptions): Promise<DaemonRig> {
  const broker = await startTestBroker();
  const sims: Dlt645Simulator[] = [];
  let pty: PtyPair | undefined;
  let encoder: SimulatedEncoder | undefined;
  let daemon: DaemonProcess | undefined;
  for (const bus of opts.buses)
    sims.push(await startDlt645Simulator({ tcpPort: 0, spec: { meters: [...bus.meters] }, ...(bus.faults ? { faults: bus.faults } : {}) }));
  if (opts.encoder) {
    pty = await createPtyPair();
    encoder = new SimulatedEncoder({ framing: 'star' });
    await encoder.attach(pty.b);
  }
  const gw = uniqueId(opts.gateway);
  const topic = (rest: string) => `meterd/${gw}/${rest}`;
  const watcher = await watchTopics(broker.url, topic('#'));
  const station = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: uniqueId(opts.station ?? 'station') });
  const hsm = opts.hsm;
  if (hsm) {
    station.on('message', (t, payload) => {
      if (t !== topic('hsm/request')) return;
      const q = JSON.parse(payload.toString('utf8')) as Record<string, string | number>;
      if (!(hsm.answers?.(String(q.op)) ?? true)) return;
      const answer =
        q.op === 'identity'
          ? hsm.machine.identity({ address: String(q.address), meterNumber: String(q.meterNumber) })
          : hsm.machine.rechargeMacs({
              address: String(q.address),
              random2: String(q.random2),
              esamSerial: String(q.esamSerial),
              amount: Number(q.amount),
              count: Number(q.count),
              customerNo: String(q.customerNo),
            });
      void answer.then((a) => station.publishAsync(topic('hsm/reply'), JSON.stringify({ requestId: q.requestId, ...a }), { qos: 1 }));
    });
    await station.subscribeAsync(topic('hsm/request'), { qos: 1 });
  }
  const dir = mkdtempSync(join(tmpdir(), 'meterd-e2e-'));
  const running = () => daemon !== undefined && daemon.child.exitCode === null && daemon.child.signalCode === null;
  const logTail = (lines = 20) => (daemon?.stderr() ?? '').split('\n').slice(-lines).join('\n');
  const replies = <T>(command: string, requestId: string) =>
    watcher.json<T & { requestId: string }>(topic(`cmd/${command}/result`)).filter((r) => r.requestId === requestId);

  const rig: DaemonRig = {
    broker,
    gw,
    sims,
    sim: sims[0]!,
    encoder,
    encoderPort: pty?.a,
    watcher,
    station,
    dir,
    get daemon() {
      if (daemon === undefined) throw new Error('the daemon has not been started');
      return daemon;
    },
    busUrl: (bus = 0) => `tcp://127.0.0.1:${sims[bus]!.address!.tcpPort}`,
    async start(configYaml, o = {}) {
      const seen = watcher.json(topic('status')).length;
      daemon = startDaemon(configYaml, { dir, ...(o.logLevel ? { logLevel: o.logLevel } : {}), ...(o.env ? { env: o.env } : {}) });
      if (o.waitOnline !== false)
        await watcher
          .waitFor(
            () =>
              watcher
                .json<{ state?: string }>(topic('status'))
                .slice(seen)
                .some((s) => s.state === 'online'),
            'the gateway online',
            20_000,
          )
          .catch((err: Error) => {
            throw new Error(`${err.message}; daemon log:\n${logTail()}`);
          });
      return daemon;
    },
    async kill(signal = 'SIGKILL') {
      if (!running()) return;
      daemon!.child.kill(signal);
      await daemon!.exited();
    },
    withStore(fn, o = {}) {
      const store = openStore({ path: join(dir, 'data', 'meterd.db'), clock: systemClock, ...o });
      try {
        return fn(store);
      } finally {
        store.close();
      }
    },
    replies,
    async send<T>(command: string, request: Record<string, unknown>, o: { key?: string; timeoutMs?: number } = {}) {
      const body = o.key ? { ...request, ts: new Date().toISOString() } : request;
      const payload = o.key ? { ...body, signature: commandSignature(body, o.key) } : body;
      await station.publishAsync(topic(`cmd/${command}`), JSON.stringify(payload), { qos: 1 });
      const id = String(request.requestId);
      const final = () => replies<CommandReplyMessage>(command, id).some((r) => r.status !== 'accepted');
      await watcher.waitFor(final, `the ${command} result`, o.timeoutMs ?? 30_000).catch((err: Error) => {
        throw new Error(`${err.message}; daemon log:\n${logTail()}`);
      });
      return replies<T>(command, id).at(-1)!;
    },
    logTail,
    async close(o) {
      if (running()) {
        daemon!.child.kill(o.signal ?? 'SIGTERM');
        await daemon!.exited();
      }
      await station.endAsync();
      await watcher.close();
      await clearRetained(
        broker.url,
        o.retained.map((t) => topic(t)),
      );
      await encoder?.close();
      await pty?.close();
      await Promise.all(sims.map((s) => s.close()));
      await broker.close();
    },
  };
  return rig;
}
