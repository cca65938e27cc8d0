import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const run = promisify(execFile);
/** The real scripts, not Debian's wrapper (which switches to the rabbitmq user and its home, and so its cookie). */
const BIN = '/usr/lib/rabbitmq/bin';

export interface RabbitNode {
  readonly name: string;
  readonly mqttUrl: string;
  /** Stops the node's Erlang VM (as a crash or a reboot of that machine would take it away). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Empties a queue on this node (a subscriber's messages lost with it). */
  purgeQueue(name: string): Promise<void>;
  listQueues(): Promise<string[]>;
}

export interface RabbitCluster {
  readonly nodes: readonly RabbitNode[];
  close(): Promise<void>;
}

/**
 * A RabbitMQ cluster of its own, with the MQTT plugin, for one test: each node with its own node name, ports, data
 * and log folders, and a cookie in a home of its own, so the machine's RabbitMQ (rabbit@…, 5672, 25672) is never
 * touched. Needs Debian's rabbitmq-server; fails, not skips, without it.
 */
export async function startRabbitCluster(size = 2): Promise<RabbitCluster> {
  if (!existsSync(`${BIN}/rabbitmq-server`))
    throw new Error('rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server); .ci/run installs it');
  const home = mkdtempSync(join(tmpdir(), 'meterd-rabbit-'));
  writeFileSync(join(home, 'enabled_plugins'), '[rabbitmq_mqtt].\n');
  // One cookie for the nodes and the CLI, written before any node starts (nodes starting together would each make one).
  writeFileSync(join(home, '.erlang.cookie'), randomBytes(15).toString('hex').toUpperCase(), { mode: 0o400 });
  const tag = Math.random().toString(36).slice(2, 8);
  const nodes: RabbitNode[] = [];
  const started: (() => Promise<void>)[] = [];
  for (let i = 1; i <= size; i++) {
    const name = `meterd${tag}n${i}@localhost`;
    const dir = join(home, `n${i}`);
    mkdirSync(dir);
    const [amqp, dist, mqtt] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'rabbitmq.conf'),
      `listeners.tcp.default = ${amqp}\nmqtt.listeners.tcp.default = ${mqtt}\nloopback_users = none\n`,
    );
    const env = {
      ...process.env,
      HOME: home,
      RABBITMQ_NODENAME: name,
      RABBITMQ_NODE_PORT: String(amqp),
      RABBITMQ_DIST_PORT: String(dist),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: join(dir, 'pid'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(home, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    };
    const ctl = (...args: string[]) => run(`${BIN}/rabbitmqctl`, ['-n', name, ...args], { env, cwd: dir, timeout: 120_000 });
    const start = async () => {
      // The node's cwd is its own folder: Erlang writes crash dumps (MnesiaCore.*, erl_crash.dump) where it runs.
      await run(`${BIN}/rabbitmq-server`, ['-detached'], { env, cwd: dir });
      // `wait` follows the pid file: await_startup alone fails at once while the new node is not yet known to epmd.
      await ctl('wait', join(dir, 'pid'), '--timeout', '90');
      await ctl('await_startup', '--timeout', '90');
    };
    nodes.push({
      name,
      mqttUrl: `mqtt://127.0.0.1:${mqtt}`,
      start,
      stop: async () => {
        await ctl('stop').catch(() => {});
      },
      purgeQueue: async (queue) => {
        await ctl('purge_queue', queue);
      },
      listQueues: async () =>
        (await ctl('list_queues', 'name', '--quiet', '--no-table-headers')).stdout
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean),
    });
    started.push(start);
  }
  try {
    await Promise.all(started.map((s) => s()));
    const first = nodes[0]!.name;
    for (const node of nodes.slice(1)) {
      const env = { ...process.env, HOME: home };
      const ctl = (...args: string[]) => run(`${BIN}/rabbitmqctl`, ['-n', node.name, ...args], { env, cwd: home, timeout: 120_000 });
      await ctl('stop_app');
      await ctl('join_cluster', first);
      await ctl('start_app');
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    // A node that never answered its CLI: its VM may still run; its pid file says which.
    for (let i = 1; i <= size; i++) killByPidFile(join(home, `n${i}`, 'pid'));
    throw new Error(`the RabbitMQ cluster did not start (logs in ${home}): ${(err as Error).message.split('\n')[0]}`);
  }
  return {
    nodes,
    close: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      for (let i = 1; i <= size; i++) killByPidFile(join(home, `n${i}`, 'pid'));
      rmSync(home, { recursive: true, force: true });
    },
  };
}

function killByPidFile(path: string): void {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or the process is gone: nothing to stop
  }
}
