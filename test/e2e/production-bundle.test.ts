import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultMeters, startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startTestBroker, uniqueId, watchTopics, type TestBroker } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { freePort } from '../helpers/free-port.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { unitLaunch } from '../../scripts/install/unit.js';

// What a gateway runs after `npm run build` with NODE_ENV=production (scripts/install/meterd.service): the minified
// bundle of dist/meterd. A bundle fails where the sources do not (a require esbuild could not follow, a file found
// relative to a module that moved), so the daemon and the CLI are run from it for real.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const production = { NODE_ENV: 'production' };
// The daemon starts as systemd starts it: the unit's environment (NODE_ENV, memory flags) and Node's own flags.
const unit = unitLaunch(ROOT);

let broker: TestBroker;
let sim: Dlt645Simulator;
let daemon: DaemonProcess | undefined;

beforeAll(async () => {
  execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: ROOT, stdio: 'pipe' });
  broker = await startTestBroker();
  sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(2) } });
});
afterAll(async () => {
  if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited();
  }
  await sim.close();
  await broker.close();
});

describe('the production bundle', () => {
  it('runs the daemon: meters polled and published, the control socket answers the CLI, SIGTERM exits 0', { timeout: 60_000 }, async () => {
    const gw = uniqueId('gw-bundle');
    const [a1, a2] = [...sim.meters.keys()];
    const webPort = await freePort();
    const watcher = await watchTopics(broker.url, `meterd/${gw}/meters/+/readings`);
    daemon = startDaemon(
      `gateway: { id: ${gw}, dataDir: ./data, timeZone: Asia/Shanghai }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", gap: 0ms }
meters:
  - { id: m1, bus: bus1, address: "${a1}", profile: dlt645-2007-single-phase-prepaid-money }
  - { id: m2, bus: bus1, address: "${a2}", profile: dlt645-2007-single-phase-prepaid-money }
polling: { intervals: { instant: 2s } }
web: { listen: "127.0.0.1:${webPort}" }
`,
      { env: unit.env, execArgv: unit.nodeFlags },
    );
    await watcher.waitFor(
      () => ['m1', 'm2'].every((m) => watcher.messages.some((x) => x.topic === `meterd/${gw}/meters/${m}/readings`)),
      'readings of both meters',
      30_000,
    );
    const status = await runMeterd(['status', '-c', daemon.configPath, '--json'], { env: production });
    expect(status.stderr).toBe('');
    expect(JSON.parse(status.stdout)).toMatchObject({ gatewayId: gw, build: 'bundle', meters: { total: 2 } });
    const text = await runMeterd(['status', '-c', daemon.configPath], { env: production });
    expect(text.stdout).toMatch(/running the production build/);
    // The console's files are found from the bundle's place, not the sources'.
    const page = await fetch(`http://127.0.0.1:${webPort}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/\/vendor\/preact\.mjs/);
    const vendor = await fetch(`http://127.0.0.1:${webPort}/vendor/preact.mjs`);
    expect(vendor.status).toBe(200);
    expect((await vendor.text()).length).toBeGreaterThan(1000);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited()).toBe(0);
    await watcher.close();
  });

  it('runs the CLI: help, config check with its file:line errors', async () => {
    const help = await runMeterd(['--help'], { env: production });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Usage: meterd/);
    const check = await runMeterd(['config', 'check', '-c', '/nonexistent/meterd.yaml'], { env: production });
    expect(check.status).toBe(1);
    expect(check.stdout + check.stderr).toMatch(/nonexistent\/meterd\.yaml/);
  });
});
