import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dlt645Simulator, MeterSpec } from '../../src/sim/dlt645/index.js';
import { allowanceRows, type AllowanceRow } from '../../src/store/index.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemonRig, type DaemonRig } from '../helpers/daemon-rig.js';

// A small campus on two simulated buses, driven through the real `meterd` process: a round runs by itself, a SIGKILL
// mid-batch and a restart finish it, and the meters' own purchase counters prove that nobody was loaded twice.

const BUSES = 2;
const ROOMS_PER_BUS = 12;
const OFFICES_PER_BUS = 3;
const AMOUNT_FEN = 1500;

interface Room {
  readonly id: string;
  readonly bus: number;
  readonly address: string;
  readonly customerNo: string;
  readonly dorm: boolean;
}

const rooms: Room[] = [];
for (let b = 0; b < BUSES; b++) {
  for (let i = 0; i < ROOMS_PER_BUS + OFFICES_PER_BUS; i++) {
    const n = b * 100 + i + 1;
    const dorm = i < ROOMS_PER_BUS;
    rooms.push({
      id: `${dorm ? 'room' : 'office'}-${n}`,
      bus: b,
      address: String(n).padStart(12, '0'),
      customerNo: String(880000000000 + n),
      dorm,
    });
  }
}
const dorms = rooms.filter((r) => r.dorm);
// Silent when the round starts, back after the restart (more than 10 % of the dorm rooms).
const silent = [dorms[1]!, dorms[5]!, dorms[ROOMS_PER_BUS + 2]!];
// Its customer number in the config is not the meter's: the meter refuses the load; the row is parked.
const wrongCustomer = dorms[3]!;
// Holds more than its hoarding limit allows after the allowance: refused once, parked, never retried.
const hoarder = dorms[ROOMS_PER_BUS + 4]!;
// Replaced while it was silent: the config names a new customer number at the restart; the row is parked.
const replaced = silent[2]!;

let rig: DaemonRig;
let sims: readonly Dlt645Simulator[];
const today = new Date().toISOString().slice(0, 10);

function spec(r: Room): MeterSpec {
  return {
    address: r.address,
    kind: 'money',
    balance: r === hoarder ? 95 : 20,
    hoardingLimit: r === hoarder ? 100 : 0,
    purchaseCount: 7,
    customerNumber: r.customerNo,
  };
}

function config(opts: { replacedCustomer?: string } = {}): string {
  const customer = (r: Room) =>
    r === wrongCustomer ? '990000000001' : r === replaced && opts.replacedCustomer ? opts.replacedCustomer : r.customerNo;
  return `gateway: { id: ${rig.gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${rig.broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }   # the station of this bench sends unsigned commands
buses:
${sims.map((_, b) => `  - { id: bus${b}, port: "${rig.busUrl(b)}", gap: 5ms, timeout: 300ms, retries: 0 }`).join('\n')}
meters:
${rooms
  .map(
    (r) =>
      `  - { id: ${r.id}, bus: bus${r.bus}, address: "${r.address}", customerNo: "${customer(r)}", profile: dlt645-2007-single-phase-prepaid-money, tags: [${r.dorm ? 'dorm' : 'office'}] }`,
  )
  .join('\n')}
polling:
  intervals: { instant: 10m, energy: 10m, status: 10m, credit: 10m }
allowances:
  - id: dorm-free
    meters: { tags: [dorm] }
    amountFen: ${AMOUNT_FEN}
    at: "00:00"
    deadline: 1d
    retry: 1s
    terms:
      - id: term-1
        rounds:
          - { id: r1, date: "${today}" }
`;
}

const meter = (r: Room) => sims[r.bus]!.meters.get(r.address)!.snapshot();
const KEY = { allowance: 'dorm-free', term: 'term-1', round: 'r1' };

const planRows = (): AllowanceRow[] => rig.withStore((s) => s.transaction((tx) => allowanceRows(tx, KEY)), { checkAtOpen: false });
const ledger = () => rig.withStore((s) => s.ledger.list(), { checkAtOpen: false });

async function until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`gave up waiting for ${what}; daemon log:\n${rig.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-allow',
    // Each reply waits 25 ms, so a batch lasts long enough to be killed in the middle of it.
    buses: Array.from({ length: BUSES }, (_, b) => ({ meters: rooms.filter((r) => r.bus === b).map(spec), faults: { delayMs: 25 } })),
  });
  sims = rig.sims;
  for (const r of silent) sims[r.bus]!.bus.setFaults({ silent: true }, r.address);
});

afterAll(async () => {
  await rig?.close({ retained: ['status', 'allowances/dorm-free'], signal: 'SIGKILL' });
});

describe('a dormitory allowance round with the meterd process', { timeout: 180_000 }, () => {
  it('runs by itself, survives a SIGKILL mid-batch, loads every reachable dorm meter exactly once and parks the refusals', async () => {
    const before = new Map(rooms.map((r) => [r.id, meter(r)]));
    await rig.start(config(), { logLevel: 'info', waitOnline: false });

    // Killed while the batch is under way: some rooms loaded, others not yet.
    await until(
      () => {
        try {
          const applied = planRows().filter((r) => r.state === 'applied').length;
          return applied >= 4 && applied < dorms.length - silent.length - 3;
        } catch {
          return false;
        }
      },
      'a batch under way',
      60_000,
    );
    // The station sends "run now" twice while the automatic run is going: both are answered, nothing changes.
    for (const requestId of ['run-1', 'run-2'])
      await rig.station.publishAsync(`meterd/${rig.gw}/cmd/allowance-run`, JSON.stringify({ requestId, ...KEY }), { qos: 1 });
    await rig.watcher.waitFor(
      () => replies('allowance-run').filter((r) => r.status === 'done').length === 2,
      'two allowance-run replies',
      20_000,
    );
    expect(
      replies('allowance-run')
        .filter((r) => r.status === 'done')
        .map((r) => r.result.round),
    ).toEqual(['r1', 'r1']);
    await rig.kill('SIGKILL');
    const appliedAtKill = planRows().filter((r) => r.state === 'applied').length;
    expect(appliedAtKill).toBeGreaterThan(0);

    // Restarted with the silent meters still silent; one of them was replaced meanwhile, and the config says so.
    await rig.start(config({ replacedCustomer: '770000000001' }), { logLevel: 'info', waitOnline: false });
    const silentIds = new Set(silent.filter((r) => r !== replaced).map((r) => r.id));
    await until(
      () =>
        planRows().every((r) =>
          silentIds.has(r.meterId) ? r.state === 'pending' && r.tries >= 2 : r.state === 'applied' || r.state === 'needs-attention',
        ),
      'every reachable room done and the silent ones tried twice and waiting',
      120_000,
    );
    for (const r of silent) sims[r.bus]!.bus.setFaults({ silent: false }, r.address);

    await until(() => planRows().every((r) => r.state !== 'planned' && r.state !== 'pending'), 'the round to complete', 120_000);
    const rows = new Map(planRows().map((r) => [r.meterId, r]));

    // One row per dorm meter, none for the offices.
    expect([...rows.keys()].sort()).toEqual(dorms.map((r) => r.id).sort());
    const parked = [wrongCustomer, hoarder, replaced];
    for (const r of dorms) {
      const row = rows.get(r.id)!;
      const was = before.get(r.id)!;
      const now = meter(r);
      if (parked.includes(r)) {
        expect(row.state, r.id).toBe('needs-attention');
        expect(now.purchaseCount, r.id).toBe(was.purchaseCount);
        expect(now.balance, r.id).toBe(was.balance);
      } else {
        expect(row.state, r.id).toBe('applied');
        // The meter's own counter moved by exactly one, and its balance by exactly one allowance.
        expect(now.purchaseCount, r.id).toBe(was.purchaseCount! + 1);
        expect(now.balance, r.id).toBe(was.balance! + AMOUNT_FEN);
      }
    }
    expect(rows.get(wrongCustomer.id)!.reasonCode).toBe('CUSTOMER_MISMATCH');
    expect(rows.get(hoarder.id)!.reasonCode).toBe('OVER_HOARDING_LIMIT');
    expect(rows.get(replaced.id)!.reasonCode).toBe('METER_CHANGED');
    for (const r of rooms.filter((x) => !x.dorm)) {
      expect(meter(r).purchaseCount, r.id).toBe(before.get(r.id)!.purchaseCount);
      expect(meter(r).balance, r.id).toBe(before.get(r.id)!.balance);
    }

    // The station got one report with every dorm room, and the retained progress says complete.
    await rig.watcher.waitFor(
      () => rig.watcher.json(`meterd/${rig.gw}/allowances/dorm-free/report`).length > 0,
      'the round report',
      20_000,
    );
    const report = rig.watcher.json<{ meters: { meter: string; state: string }[] }>(`meterd/${rig.gw}/allowances/dorm-free/report`);
    expect(report).toHaveLength(1);
    expect(report[0]!.meters.map((m) => m.meter).sort()).toEqual(dorms.map((r) => r.id).sort());
    expect(rig.watcher.json(`meterd/${rig.gw}/allowances/dorm-free`).at(-1)).toMatchObject({
      complete: true,
      counts: { needsAttention: 3 },
    });

    // The ledger: one applied allowance load per loaded room, all of channel allowance by operator system; the hoarder
    // was asked once.
    const loads = ledger().filter((e) => e.channel === 'allowance');
    const applied = loads.filter((e) => e.state === 'applied');
    expect(applied.map((e) => e.meterId).sort()).toEqual(
      dorms
        .filter((r) => !parked.includes(r))
        .map((r) => r.id)
        .sort(),
    );
    expect(new Set(applied.map((e) => e.meterId)).size).toBe(applied.length);
    expect(loads.every((e) => e.operator === 'system' && e.amount === AMOUNT_FEN)).toBe(true);
    expect(loads.filter((e) => e.meterId === hoarder.id).map((e) => e.state)).toEqual(['rejected']);
    // The silent rooms were tried, found unreachable, retried (asked before a new load was opened, so the books hold
    // one failed load per room, not one per retry) and loaded after they came back.
    for (const r of silent.filter((x) => x !== replaced)) {
      expect(loads.filter((e) => e.meterId === r.id).map((e) => e.state)).toEqual(['failed', 'applied']);
      expect(rows.get(r.id)!.attempt).toBe(2);
    }

    // A person decides through the CLI, which goes through the daemon: the hoarder is cancelled; the room whose
    // customer number differs is retried, refused once more, and parked again (no loop).
    const cli = (args: string[]) => runMeterd(['allowance', ...args, '-c', rig.daemon.configPath], { cwd: rig.dir });
    const cancel = await cli([
      'resolve',
      '--allowance',
      'dorm-free',
      '--term',
      'term-1',
      '--round',
      'r1',
      '--meter',
      hoarder.id,
      '--action',
      'cancel',
    ]);
    expect(cancel.stdout + cancel.stderr).toContain(`${hoarder.id} in dorm-free term-1/r1: cancel → cancelled`);
    const retry = await cli([
      'resolve',
      '--allowance',
      'dorm-free',
      '--term',
      'term-1',
      '--round',
      'r1',
      '--meter',
      wrongCustomer.id,
      '--action',
      'retry',
    ]);
    expect(retry.status, retry.stderr).toBe(0);
    await until(
      () => planRows().find((r) => r.meterId === wrongCustomer.id)?.state === 'needs-attention',
      'the retried row parked again',
      30_000,
    );
    expect(
      ledger()
        .filter((e) => e.meterId === wrongCustomer.id)
        .map((e) => [e.state, e.error?.code]),
    ).toEqual([
      ['rejected', 'CUSTOMER_MISMATCH'],
      ['rejected', 'CUSTOMER_MISMATCH'],
    ]);
    const status = await cli(['status', '--json']);
    const shown = JSON.parse(status.stdout) as {
      rounds: { counts: Record<string, number>; complete: boolean }[];
      attention: { meter: string }[];
    };
    expect(shown.rounds[0]).toMatchObject({ complete: true, counts: { applied: dorms.length - 3, needsAttention: 2, cancelled: 1 } });
    expect(shown.attention.map((a) => a.meter).sort()).toEqual([wrongCustomer.id, replaced.id].sort());
  });
});

interface Reply {
  requestId: string;
  status: string;
  result: Record<string, unknown>;
}
function replies(command: string): Reply[] {
  return rig.watcher.json<Reply>(`meterd/${rig.gw}/cmd/${command}/result`);
}
