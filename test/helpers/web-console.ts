import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realTimers, systemClock, type Clock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { consoleBackend } from '../../src/daemon/console.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import type { UserRole } from '../../src/services/users.js';
import { defaultMeters, startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { startWebConsole, type WebConsole } from '../../src/web/server.js';
import { loadCardLayout } from '../../src/profiles/card-layout.js';
import { cards, startEncoderSimulator } from '../../src/sim/encoder/index.js';
import { startTestBroker, uniqueId, type TestBroker } from './broker.js';

/** A gateway on simulated prepaid meters with its web console on a free port, and users of each role. */
export interface ConsoleRig {
  /** Changes at restart() (a new port). */
  readonly url: string;
  /** Changes at restart(). */
  readonly gateway: Gateway;
  readonly sim: Dlt645Simulator;
  /** The counter's simulated encoder (with `card: true`), a customer card of room-101 in its slot. */
  readonly encoder?: Awaited<ReturnType<typeof startEncoderSimulator>>;
  /** Passwords by user name: `cashier`, `tech`, `admin`. */
  readonly passwords: Readonly<Record<string, string>>;
  /** Stops the console and the gateway (its store closed) and starts them again on the same config and data. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const RIG_USERS: readonly { name: string; role: UserRole }[] = [
  { name: 'cashier', role: 'cashier' },
  { name: 'tech', role: 'technician' },
  { name: 'admin', role: 'admin' },
];

/**
 * A transformer district beside the rig's meters: supply meter `d1-general` (000000000901, three-phase, 0.125 kW, CT
 * 20: 60 kWh a day) and members `d1-a` (000000000902, 1 kW) and `d1-b` (000000000903, 1.25 kW): 10 % a day as they
 * start. The simulator and the gateway run on `clock`; the meters were switched on at `switchedOnAt` (their oldest
 * freeze is the next midnight); `history` changes their loads and faults in the past before the gateway starts.
 */
export interface RigDistrict {
  readonly clock: Clock;
  readonly switchedOnAt: number;
  readonly history?: (sim: Dlt645Simulator) => void;
}

export const DISTRICT_METERS = { supply: '000000000901', a: '000000000902', b: '000000000903' } as const;

export async function startConsoleRig(
  opts: {
    meters?: number;
    /** Simulated meters on the bus that the config does not name (the new meter of a replacement). */
    spareMeters?: number;
    sessionIdle?: string;
    card?: boolean;
    allowance?: boolean;
    district?: RigDistrict;
  } = {},
): Promise<ConsoleRig> {
  const broker: TestBroker = await startTestBroker();
  const district = opts.district;
  const sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: [
        ...defaultMeters((opts.meters ?? 3) + (opts.spareMeters ?? 0)),
        ...(district
          ? [
              { address: DISTRICT_METERS.supply, kind: 'plain' as const, phases: 3 as const, powerKw: 0.125 },
              { address: DISTRICT_METERS.a, kind: 'plain' as const, powerKw: 1 },
              { address: DISTRICT_METERS.b, kind: 'plain' as const, powerKw: 1.25 },
            ]
          : []),
      ],
    },
    ...(district ? { clock: district.clock, switchedOnAt: district.switchedOnAt } : {}),
  });
  district?.history?.(sim);
  const gatewayClock = district?.clock ?? systemClock;
  const dir = mkdtempSync(join(tmpdir(), 'meterd-web-'));
  const file = join(dir, 'meterd.yaml');
  const addresses = [...sim.meters.values()]
    .filter((m) => !Object.values(DISTRICT_METERS).includes(m.address as never))
    .slice(0, opts.meters ?? 3)
    .map((m) => ({ address: m.address, customerNo: m.snapshot().customerNumber }));
  const encoder = opts.card
    ? await startEncoderSimulator({
        framing: 'star',
        tcpPort: 0,
        card: cards.ours(loadCardLayout('sle4442-dorm'), {
          meterNumber: addresses[0]!.address,
          customerNumber: addresses[0]!.customerNo,
          purchaseCount: 0,
          writeBack: { balance: 0, purchaseCount: 0 },
        }),
      })
    : undefined;
  writeFileSync(
    file,
    `gateway: { id: ${uniqueId('gw-web')}, dataDir: ./data${district ? `, timeZone: ${Intl.DateTimeFormat().resolvedOptions().timeZone}` : ''} }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
  - { id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", timeout: 300ms, retries: 0, gap: 0ms }
meters:
${addresses.map((a, i) => `  - { id: room-${101 + i}, bus: bus1, address: "${a.address}", customerNo: "${a.customerNo}", profile: dlt645-2007-single-phase-prepaid-money${opts.allowance ? ', tags: [dorm]' : ''} }`).join('\n')}
${district ? districtMeterLines() : ''}polling:
  intervals: { instant: 1s, status: 1s, credit: 1s, energy: 5s }
  offlineAfter: 1
  offlineProbe: 2s
${district ? DISTRICT_YAML : ''}web:
  listen: 127.0.0.1:0
  sessionIdle: ${opts.sessionIdle ?? '30m'}
${opts.allowance ? allowanceYaml() : ''}${encoder ? `encoders:\n  - { id: counter-1, port: "tcp://127.0.0.1:${encoder.tcpPort}" }\n` : ''}`,
  );
  const config = loadGatewayConfig(file, {});
  const start = async () => {
    const gateway = await startGateway(config, { logger: silentLogger, clock: gatewayClock });
    const backend = consoleBackend(gateway, gatewayClock);
    const web: WebConsole = await startWebConsole({
      web: config.web,
      backend,
      logger: silentLogger,
      clock: systemClock,
      timers: realTimers,
    });
    return { gateway, backend, web };
  };
  let running = await start();
  const passwords: Record<string, string> = {};
  for (const u of RIG_USERS) {
    passwords[u.name] = `pw-${u.name}-${uniqueId('x')}`;
    await running.backend.users.add(u.name, u.role, passwords[u.name]!);
  }
  const stop = async () => {
    await running.web.close();
    await running.gateway.stop();
  };
  return {
    get url() {
      return running.web.url!;
    },
    get gateway() {
      return running.gateway;
    },
    sim,
    ...(encoder ? { encoder } : {}),
    passwords,
    restart: async () => {
      await stop();
      running = await start();
    },
    close: async () => {
      await stop();
      await encoder?.close();
      await sim.close();
      await broker.close();
    },
  };
}

/** A signed-in HTTP client of the console: the session cookie and the CSRF token, as the page keeps them. */
export class ConsoleClient {
  cookie = '';
  csrf = '';

  constructor(readonly base: string) {}

  async signIn(name: string, password: string): Promise<Response> {
    const res = await this.request('POST', '/api/session', { name, password });
    const set = res.headers.get('set-cookie');
    if (set) this.cookie = set.split(';')[0]!;
    if (res.ok) this.csrf = ((await res.clone().json()) as { csrf: string }).csrf;
    return res;
  }

  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.cookie) h.cookie = this.cookie;
    if (body !== undefined) h['content-type'] = 'application/json';
    if (method !== 'GET' && this.csrf && !('x-csrf-token' in headers)) h['x-csrf-token'] = this.csrf;
    return fetch(new URL(path, this.base), { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async json<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await this.request(method, path, body);
    return { status: res.status, body: (await res.json()) as T };
  }
}

export async function eventually<T>(fn: () => T | Promise<T>, what: string, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// readAt 00:00: yesterday is due whatever the hour, so the test does not depend on when it runs.
const DISTRICT_YAML = `districts:
  - { id: d1, name: North dorms transformer, supplyMeter: d1-general, ctRatio: 20 }
lineloss: { readAt: "00:00" }
`;

function districtMeterLines(): string {
  const { supply, a, b } = DISTRICT_METERS;
  return [
    `  - { id: d1-general, bus: bus1, address: "${supply}", profile: dlt645-2007-three-phase, district: d1 }`,
    `  - { id: d1-a, bus: bus1, address: "${a}", profile: dlt645-2007-single-phase-prepaid, district: d1 }`,
    `  - { id: d1-b, bus: bus1, address: "${b}", profile: dlt645-2007-single-phase-prepaid, district: d1 }`,
    '',
  ].join('\n');
}

/** A round of 15.00 yuan for the dorm meters, due today (local time), so it runs at start. */
function allowanceYaml(): string {
  const today = new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
  return `allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: 1500
    at: "00:00"
    deadline: 1d
    terms:
      - id: t1
        rounds:
          - { id: r1, date: "${today}" }
`;
}
