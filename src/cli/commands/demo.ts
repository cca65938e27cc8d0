import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseConfig } from '../../config/index.js';
import { formatIssue } from '../../config/yaml-source.js';
import { randomBytes } from 'node:crypto';
import { realTimers, systemClock } from '../../clock.js';
import { consoleBackend } from '../../daemon/console.js';
import { startGateway, type Gateway } from '../../daemon/gateway.js';
import { startWebConsole, type WebConsole } from '../../web/server.js';
import { createLogger } from '../../log.js';
import { loadProfiles } from '../../profiles/registry.js';
import { defaultMeters, startDlt645Simulator, type MeterSpec } from '../../sim/dlt645/index.js';
import { startModbusSimulator } from '../../sim/modbus/index.js';
import { cards, startEncoderSimulator } from '../../sim/encoder/index.js';
import { loadCardLayout } from '../../profiles/card-layout.js';
import { startEmbeddedBroker } from '../../uplink/index.js';
import { localDate } from '../../services/books/periods.js';
import { CliError } from '../errors.js';

interface DemoOptions {
  meters: string;
  data: string;
  brokerPort: string;
  logLevel: string;
  webPort: string;
}

/**
 * `npm start`: the whole gateway on embedded defaults — simulated DL/T 645 meters on a TCP port, an embedded MQTT
 * broker, SQLite under ./data — with a live status line, so a new user sees meterd work with no hardware and no config.
 */
export function registerDemoCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('demo')
    .description('run the full gateway on simulated meters with an embedded MQTT broker and SQLite in ./data (what `npm start` does)')
    .option('--meters <n>', 'number of simulated DL/T 645 prepaid meters', '4')
    .option('--data <dir>', 'where the SQLite database goes', './data')
    .option('--broker-port <port>', 'embedded broker port (a free one is used when it is taken; 0 = any)', '1883')
    .option('--log-level <level>', 'gateway log level (logs go to stderr)', 'warn')
    .option('--web-port <port>', 'web console port on 127.0.0.1 (a free one is used when it is taken; 0 = any)', '8080')
    .addHelpText(
      'after',
      '\nExample:\n  npm start                      # same as: meterd demo\n  meterd demo --meters 20 --broker-port 0\n',
    )
    .action(async (opts: DemoOptions) => {
      const count = Number(opts.meters);
      if (!Number.isInteger(count) || count < 1 || count > 200) throw new CliError('USAGE', '--meters is a whole number from 1 to 200', 2);
      const dataDir = resolve(opts.data);
      mkdirSync(dataDir, { recursive: true });
      const logger = createLogger(opts.logLevel as 'warn');

      const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(count) } });
      // A transformer district on its own line, running for two months already: its daily freezes give
      // `meterd lineloss` real days and a closed month on the first run.
      const district = await startDlt645Simulator({
        tcpPort: 0,
        spec: { meters: DISTRICT_DEMO.map((m) => m.spec) },
        switchedOnAt: twoMonthsAgo(),
      });
      const profiles = loadProfiles();
      // One Modbus meter of each kind a dormitory gateway meets: a plain energy meter and a prepaid one.
      const modbus = await Promise.all(
        MODBUS_DEMO.map(async (m) => ({
          ...m,
          sim: await startModbusSimulator({ profile: profiles.get(m.profile)!, unit: m.unit, tcpPort: 0 }),
        })),
      );
      // The counter's encoder, with a customer card of the first meter in its slot (never sold, never in the meter).
      const first = [...sim.meters.values()][0]!;
      const encoderSim = await startEncoderSimulator({
        framing: 'star',
        tcpPort: 0,
        card: cards.ours(loadCardLayout('sle4442-dorm'), {
          meterNumber: first.address,
          customerNumber: first.snapshot().customerNumber,
          purchaseCount: 0,
          writeBack: { balance: 0, purchaseCount: 0 },
        }),
      });
      const broker = await startEmbeddedBroker({ port: Number(opts.brokerPort), logger });
      const yaml = demoConfig({
        dataDir,
        brokerUrl: broker.url,
        simPort: sim.address!.tcpPort,
        districtPort: district.address!.tcpPort,
        addresses: [...sim.meters.values()].map((m) => ({ address: m.address, customerNo: m.snapshot().customerNumber })),
        modbus: modbus.map((m) => ({ ...m, port: m.sim.port! })),
        today: localDate(Date.now(), Intl.DateTimeFormat().resolvedOptions().timeZone),
        encoderPort: encoderSim.tcpPort!,
      });
      const configPath = resolve(dataDir, 'demo.yaml');
      const parsed = parseConfig(yaml, configPath, { env: {}, profiles });
      if (!parsed.ok) throw new CliError('CONFIG_INVALID', parsed.issues.map(formatIssue).join('\n'));
      // Written out so the commands that read a config (meterd lineloss, report, doctor) work on the demo's data.
      writeFileSync(configPath, yaml);
      let gateway: Gateway;
      try {
        gateway = await startGateway(parsed.config, { logger });
      } catch (err) {
        await sim.close();
        await district.close();
        await Promise.all(modbus.map((m) => m.sim.close()));
        await broker.close();
        await encoderSim.close();
        throw err;
      }

      // The demo's console users get new passwords at every start: printed below, never a fixed default.
      const backend = consoleBackend(gateway, systemClock);
      const logins: { name: string; role: 'cashier' | 'technician' | 'admin'; password: string }[] = [
        { name: 'cashier', role: 'cashier', password: randomBytes(6).toString('base64url') },
        { name: 'tech', role: 'technician', password: randomBytes(6).toString('base64url') },
        { name: 'admin', role: 'admin', password: randomBytes(6).toString('base64url') },
      ];
      for (const l of logins) {
        if (backend.users.get(l.name) === null) await backend.users.add(l.name, l.role, l.password);
        else await backend.users.setPassword(l.name, l.password);
      }
      const webOpts = { web: parsed.config.web, backend, logger, clock: systemClock, timers: realTimers };
      const webPort = Number(opts.webPort);
      let web: WebConsole;
      try {
        web = await startWebConsole({ ...webOpts, web: { ...webOpts.web, listen: { host: '127.0.0.1', port: webPort } } });
      } catch {
        web = await startWebConsole({ ...webOpts, web: { ...webOpts.web, listen: { host: '127.0.0.1', port: 0 } } });
      }

      const port = new URL(broker.url).port;
      io.out(
        `meterd demo: ${count} simulated DL/T 645 meters on tcp://127.0.0.1:${sim.address!.tcpPort}, ${modbus.length} Modbus meters (${modbus.map((m) => `${m.profile} on tcp://127.0.0.1:${m.sim.port}`).join(', ')}),`,
      );
      io.out(`             embedded MQTT broker at ${broker.url}, SQLite in ${dataDir}`);
      io.out(`watch the topics:  mosquitto_sub -h 127.0.0.1 -p ${port} -t 'meterd/demo/#' -v`);
      io.out(`              or:  npx mqtt sub -h 127.0.0.1 -p ${port} -t 'meterd/demo/#' -v`);
      io.out(
        `read a meter:      npm run meterd -- read --port tcp://127.0.0.1:${sim.address!.tcpPort} --addr 1 --point energy.active.import`,
      );
      io.out(`line loss:         npm run meterd -- lineloss -c ${configPath}   (district d1, two months of daily freezes)`);
      io.out(
        'commands:          UNSIGNED commands are accepted (commands.allowUnsigned: true): anyone who can reach the broker can top up and trip relays; a real gateway sets commands.hmacKey',
      );
      io.out(`allowance:         dorm-free gives each dorm room 15.00 yuan today, once (progress on meterd/demo/allowances/dorm-free)`);
      io.out('                   dorm-free-kwh writes 10 kWh into the free-energy registers of dorm-201 (AC and lighting circuits)');
      io.out(`web console:       ${web.url}`);
      io.out(`       logins:     ${logins.map((l) => `${l.name} / ${l.password} (${l.role})`).join(', ')}`);
      io.out('Ctrl-C stops everything.');

      const tty = process.stdout.isTTY === true;
      const line = () => {
        const s = gateway.status();
        const bus = s.buses.map((b) => `${b.id} ${b.state} ${Math.round(b.utilisation * 100)}% busy`).join(', ');
        const round = gateway.allowances.status('dorm-free')[0];
        const allowance = round
          ? ` · allowance ${round.counts.applied}/${Object.values(round.counts).reduce((a, b) => a + b, 0)} loaded${round.complete ? ' (complete)' : ''}`
          : '';
        return `meters online ${s.poller.online}/${s.meters}${allowance} · readings stored ${s.poller.readingsStored} · published ${s.uplink.acked} · pending ${s.uplink.pending} · ${s.uplink.connected ? 'broker connected' : 'broker DISCONNECTED'} · ${bus}`;
      };
      let ticks = 0;
      const timer = setInterval(() => {
        ticks++;
        if (tty) process.stdout.write(`\r${line()}\x1b[K`);
        else if (ticks % 10 === 0) io.out(line());
      }, 1000);

      await new Promise<void>((done) => {
        let signals = 0;
        const onSignal = () => {
          if (++signals > 1) process.exit(130);
          done();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      clearInterval(timer);
      if (tty) process.stdout.write('\n');
      io.out(line());
      await web.close();
      await gateway.stop();
      await sim.close();
      await district.close();
      await Promise.all(modbus.map((m) => m.sim.close()));
      await broker.close();
      await encoderSim.close();
      io.out('meterd demo stopped');
    });
}

const MODBUS_DEMO = [
  { id: 'hall-meter', profile: 'eastron-sdm120', unit: 1, tags: [] },
  // Keeps free energy apart per circuit: its allowance goes to those registers, its top-ups to the paid wallet.
  { id: 'dorm-201', profile: 'modbus-dorm-subsidy', unit: 1, tags: ['dorm-kwh'] },
];

/**
 * District d1: a three-phase general meter behind CT 20 and five rooms. The general meter registers what the rooms
 * draw plus 6.5 % lost on the way (3.0 kW on the primary side: 0.1502 kW on its secondary), so each day's rate comes out
 * near 6 %: qualified.
 */
const DISTRICT_ROOMS_KW = [0.35, 0.62, 0.48, 1.1, 0.27];
const DISTRICT_DEMO: { id: string; profile: string; spec: MeterSpec }[] = [
  {
    id: 'd1-general',
    profile: 'dlt645-2007-three-phase',
    spec: {
      address: '000000000900',
      kind: 'plain',
      phases: 3,
      powerKw: Number(((DISTRICT_ROOMS_KW.reduce((a, b) => a + b, 0) * 1.065) / 20).toFixed(4)),
      registers: { 'energy.active.import': 1520.4, 'energy.active.import.t1': 1520.4 },
    },
  },
  ...DISTRICT_ROOMS_KW.map((kw, i) => ({
    id: `d1-room-${i + 1}`,
    profile: 'dlt645-2007-single-phase-prepaid',
    spec: { address: `00000000090${i + 1}`, kind: 'energy' as const, balance: 5000, powerKw: kw },
  })),
];

/** Local midnight 61 days ago: the district's meters hold every freeze the gateway catches up on, last month whole. */
function twoMonthsAgo(): number {
  const d = new Date();
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() - 61).getTime();
}

function demoConfig(o: {
  dataDir: string;
  brokerUrl: string;
  simPort: number;
  districtPort: number;
  addresses: { address: string; customerNo: string }[];
  modbus: { id: string; profile: string; unit: number; port: number; tags: readonly string[] }[];
  /** Local date of the demo's allowance round: today, so it is due at once. */
  today: string;
  encoderPort: number;
}): string {
  return `gateway:
  id: demo
  dataDir: ${JSON.stringify(o.dataDir)}
mqtt:
  url: ${o.brokerUrl}
  protocolVersion: 4        # the embedded broker speaks MQTT 3.1.1
commands:
  allowUnsigned: true       # demo only: anyone on this machine may top up and trip relays without a signature
buses:
  - id: bus1
    port: tcp://127.0.0.1:${o.simPort}
${o.modbus.map((m, i) => `  - { id: bus${i + 2}, port: tcp://127.0.0.1:${m.port}, protocol: modbus-tcp }`).join('\n')}
  - id: bus-d1
    port: tcp://127.0.0.1:${o.districtPort}
    gap: 5ms
districts:
  - { id: d1, name: Dormitory transformer, supplyMeter: d1-general, ctRatio: 20, lineloss: { target: 6 } }
meters:
${o.addresses.map((a, i) => `  - { id: room-${101 + i}, bus: bus1, address: "${a.address}", customerNo: "${a.customerNo}", profile: dlt645-2007-single-phase-prepaid-money, tags: [dorm] }`).join('\n')}
${o.modbus.map((m, i) => `  - { id: ${m.id}, bus: bus${i + 2}, unit: ${m.unit}, profile: ${m.profile}, tags: [${m.tags.join(', ')}] }`).join('\n')}
${DISTRICT_DEMO.map((m) => `  - { id: ${m.id}, bus: bus-d1, address: "${m.spec.address}", profile: ${m.profile}, district: d1 }`).join('\n')}
polling:
  intervals: { instant: 5s, energy: 15s, status: 10s, credit: 10s }
# Free electricity for the dorm rooms (docs/allowances.md): today's round is due at once, so the batch runs and
# completes in the first seconds; watch meterd/demo/allowances/dorm-free and \`meterd allowance status\`.
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1500
    at: "00:00"
    deadline: 1d
    terms:
      - id: demo
        rounds:
          - { id: r-${o.today}, date: "${o.today}" }
  # The Modbus dorm room keeps free energy per circuit: 10 kWh, two thirds to air conditioning, one third to lighting.
  - id: dorm-free-kwh
    meters: { tags: [dorm-kwh] }
    energyKwh: 10
    at: "00:00"
    deadline: 1d
    terms:
      - id: demo
        rounds:
          - { id: r-${o.today}, date: "${o.today}" }
encoders:
  - { id: counter-1, port: "tcp://127.0.0.1:${o.encoderPort}" }
`;
}
