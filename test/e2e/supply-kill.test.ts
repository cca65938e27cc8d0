import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandReply } from '../../src/uplink/commands/types.js';
import { uniqueId } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemonRig, type DaemonRig } from '../helpers/daemon-rig.js';

// A supply cut with the meterd process killed while the trip is on its way (docs/lifecycle.md § The record):
// (a) after `trip-sent` is committed, before the command reaches the meter; (b) after the meter's relay opened, before
// `trip-confirmed` is committed. After the restart the meter has heard exactly one trip, the record ends cut and
// confirmed, the station saw one cut, and a restore closes the record. METERD_TEST_HOLD_SUPPLY (test-only) holds the
// trip at the point where the test kills the process.

const HOLDS = {
  'trip-sent': { id: 'room-sent', address: '000000000801' },
  'trip-reached': { id: 'room-reached', address: '000000000802' },
} as const;
type Hold = keyof typeof HOLDS;

interface RecordLine {
  at: string;
  step: string;
  operator: string | null;
  detail: Record<string, unknown> | null;
}
interface NoticeJson {
  noticeId: number;
  state: string;
  requestedBy: string;
  approvedBy: string;
  tripSentAt: string | null;
  tripConfirmedAt: string | null;
  restoredBy: string | null;
  restoredAt: string | null;
}
interface SupplyEvent {
  step: string;
  at: string;
  noticeId?: number;
  state?: string;
}

let rig: DaemonRig;

function config(): string {
  return `gateway: { id: ${rig.gw}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${rig.broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }   # the station here sends unsigned commands
buses:
  - { id: bus1, port: "${rig.busUrl()}", gap: 2ms, timeout: 400ms, retries: 1 }
meters:
${Object.values(HOLDS)
  .map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid-money }`)
  .join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h, daily: 1d }
supply: { noticeHours: 0 }
`;
}

beforeAll(async () => {
  rig = await startDaemonRig({
    gateway: 'gw-supply-kill',
    station: 'station-supply',
    buses: [
      {
        // In arrears: nothing left and 5 of 10 yuan of overdraft used, so the meter has not tripped itself.
        meters: Object.values(HOLDS).map((m) => ({
          address: m.address,
          kind: 'money' as const,
          balance: 0,
          overdraft: 5,
          overdraftLimit: 10,
          purchaseCount: 3,
          powerKw: 0,
        })),
      },
    ],
  });
});

afterAll(async () => {
  await rig?.close({ retained: ['status', ...Object.values(HOLDS).map((m) => `meters/${m.id}/state`)], signal: 'SIGKILL' });
});

const relay = (hold: Hold) => rig.sim.meters.get(HOLDS[hold].address)!.snapshot().relay;
const commandsHeard = (hold: Hold) => relay(hold).commands.map((c) => c.action);
const daemonLog = () => rig.logTail();

/** A command from the station over MQTT; resolves with its final reply. */
const command = (name: string, payload: Record<string, unknown>): Promise<CommandReply> =>
  rig.send(name, { requestId: uniqueId(name), ...payload });

/**
 * The supply events of a meter as the station keeps them. The outbox delivers at least once: a message published
 * just before the kill and not yet acknowledged goes again after the restart, byte for byte; the station drops those.
 */
function supplyEvents(hold: Hold): SupplyEvent[] {
  const seen = new Set<string>();
  const out: SupplyEvent[] = [];
  for (const m of rig.watcher.messages) {
    if (m.topic !== `meterd/${rig.gw}/meters/${HOLDS[hold].id}/supply` || seen.has(m.text)) continue;
    seen.add(m.text);
    out.push(JSON.parse(m.text) as SupplyEvent);
  }
  return out;
}

async function cliJson<T>(...args: string[]): Promise<T[]> {
  const run = await runMeterd([...args, '-c', rig.daemon.configPath, '--json'], { cwd: rig.dir });
  expect(run.stderr).toBe('');
  return run.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);
}

const start = (env: Record<string, string> = {}) => rig.start(config(), { logLevel: 'info', env });
const kill = () => rig.kill('SIGKILL');

describe('a supply cut with the meterd process killed while the trip is on its way', { timeout: 120_000 }, () => {
  for (const hold of Object.keys(HOLDS) as Hold[]) {
    const meter = HOLDS[hold].id;

    it(`SIGKILL at ${hold}: after the restart the meter has tripped once and the record ends cut and confirmed`, async () => {
      await kill();
      await start({ METERD_TEST_HOLD_SUPPLY: hold });
      const notice = await command('supply-notice', { meter, reason: 'arrears', operator: 'zhang', note: 'third reminder' });
      expect(notice).toMatchObject({ status: 'done', result: { state: 'notified' } });
      const noticeId = notice.result!.noticeId as number;
      expect(await command('supply-approve', { noticeId, operator: 'wang' })).toMatchObject({
        status: 'done',
        result: { state: 'approved' },
      });
      await rig.watcher
        .waitFor(() => rig.daemon.stderr().includes('supply trip held here'), `the trip held at ${hold}`, 30_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}; daemon log:\n${daemonLog()}`);
        });
      // Where the kill finds the meter: the trip not sent to it yet, or its relay already open.
      expect(relay(hold).open).toBe(hold === 'trip-reached');
      expect(commandsHeard(hold)).toEqual(hold === 'trip-reached' ? ['trip'] : []);
      const killedAt = Date.now();
      await kill();

      const restartedAt = Date.now();
      await start();
      await rig.watcher
        .waitFor(() => supplyEvents(hold).some((e) => e.step === 'trip-confirmed'), 'the cut confirmed after the restart', 30_000)
        .catch((err: Error) => {
          throw new Error(`${err.message}; daemon log:\n${daemonLog()}`);
        });

      // The meter heard one trip: before the kill when it had reached it, after the restart when it had not.
      const heard = relay(hold).commands;
      expect(heard.map((c) => c.action)).toEqual(['trip']);
      expect(relay(hold).open).toBe(true);
      if (hold === 'trip-reached') expect(heard[0]!.atMs).toBeLessThanOrEqual(killedAt);
      else expect(heard[0]!.atMs).toBeGreaterThanOrEqual(restartedAt);

      const record = await cliJson<RecordLine>('supply', 'list', '--notice', String(noticeId));
      const [n] = await cliJson<NoticeJson>('supply', 'list', '--meter', meter);
      expect(n).toMatchObject({ noticeId, state: 'cut', requestedBy: 'zhang', approvedBy: 'wang' });
      const sent = record.filter((l) => l.step === 'trip-sent');
      const confirmed = record.filter((l) => l.step === 'trip-confirmed');
      expect(confirmed).toHaveLength(1);
      expect(n!.tripConfirmedAt).toBe(confirmed[0]!.at);
      expect(Date.parse(n!.tripConfirmedAt!)).toBeGreaterThanOrEqual(restartedAt);
      if (hold === 'trip-sent') {
        // The first trip-sent never reached the meter: the relay read closed after the restart, so the trip went then,
        // and the record says why it was sent a second time. The cut's send time is that of the trip that cut.
        expect(record.map((l) => l.step)).toEqual(['notice', 'approve', 'trip-sent', 'trip-sent', 'trip-confirmed']);
        expect(Date.parse(sent[0]!.at)).toBeLessThanOrEqual(killedAt);
        expect(sent[1]!.detail).toEqual({ note: 'sent again after a restart: the relay was still closed' });
        expect(n!.tripSentAt).toBe(sent[1]!.at);
        expect(Date.parse(n!.tripSentAt!)).toBeGreaterThanOrEqual(restartedAt);
        expect(confirmed[0]!.detail).toEqual({ relay: 'open' });
      } else {
        // The trip had reached the meter: it is confirmed from the relay read after the restart, never sent again.
        expect(record.map((l) => l.step)).toEqual(['notice', 'approve', 'trip-sent', 'trip-confirmed']);
        expect(sent[0]!.detail).toBeNull();
        expect(n!.tripSentAt).toBe(sent[0]!.at);
        expect(Date.parse(n!.tripSentAt!)).toBeLessThanOrEqual(killedAt);
        expect(confirmed[0]!.detail).toEqual({ relay: 'open', note: 'confirmed from the meter after a restart' });
      }
      expect(record.map((l) => l.operator)).toEqual(
        record.map((l) => ({ notice: 'zhang', approve: 'wang', 'trip-sent': 'wang' })[l.step] ?? null),
      );

      // The station saw every line of the record once, and one cut.
      await rig.watcher.waitFor(() => supplyEvents(hold).length === record.length, 'every supply event', 10_000);
      const events = supplyEvents(hold);
      expect(events.map((e) => [e.step, e.at])).toEqual(record.map((l) => [l.step, l.at]));
      expect(events.filter((e) => e.step === 'trip-confirmed')).toEqual([expect.objectContaining({ noticeId, state: 'cut' })]);
    });

    it(`SIGKILL at ${hold}: a restore after the restart closes the relay and the record`, async () => {
      const [cut] = await cliJson<NoticeJson>('supply', 'list', '--meter', meter);
      expect(cut!.state).toBe('cut');
      const restore = await command('supply-restore', { meter, operator: 'chen', reason: 'paid at the counter' });
      expect(restore).toMatchObject({ status: 'done', result: { meter, relay: 'closed', noticeId: cut!.noticeId, state: 'restored' } });
      expect(relay(hold).open).toBe(false);
      expect(commandsHeard(hold)).toEqual(['trip', 'close']);

      const [n] = await cliJson<NoticeJson>('supply', 'list', '--meter', meter);
      expect(n).toMatchObject({ noticeId: cut!.noticeId, state: 'restored', restoredBy: 'chen' });
      const record = await cliJson<RecordLine>('supply', 'list', '--notice', String(cut!.noticeId));
      expect(record.slice(-2).map((l) => [l.step, l.operator])).toEqual([
        ['restore-sent', 'chen'],
        ['restore-confirmed', 'chen'],
      ]);
      expect(n!.restoredAt).toBe(record.at(-1)!.at);
      await rig.watcher.waitFor(() => supplyEvents(hold).length === record.length, 'the restore events', 10_000);
      expect(supplyEvents(hold).at(-1)).toMatchObject({ step: 'restore-confirmed', noticeId: cut!.noticeId, state: 'restored' });
      expect(supplyEvents(hold).filter((e) => e.step === 'trip-confirmed')).toHaveLength(1);
    });
  }
});
