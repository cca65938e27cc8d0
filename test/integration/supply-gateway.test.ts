import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { registerReportCommand } from '../../src/cli/commands/report.js';
import { registerSupplyCommand } from '../../src/cli/commands/supply.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { startGateway, type Gateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import type { CommandReply } from '../../src/uplink/commands/types.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';

/**
 * Cut off and restore with a notice and a second person's approval, in the real gateway on simulated DL/T 645 money
 * meters, with the gateway's (and the meters') wall clock moved by the test. 24 hours of notice; no cut between 20:00
 * and 08:00 (UTC here) except for safety. The scheduler's pass is run by the test right after each move of the clock,
 * as its timer would run it.
 */
const ROOMS = {
  arrears: { id: 'room-1', address: '000000000701' },
  safety: { id: 'room-2', address: '000000000702' },
  night: { id: 'room-3', address: '000000000703' },
  restart: { id: 'room-4', address: '000000000704' },
} as const;
const utc = (iso: string) => Date.parse(`${iso}Z`);
const clock = new ManualClock(utc('2026-12-07T10:00:00'));
const gatewayId = uniqueId('gw-supply');
const topic = (rest: string) => `meterd/${gatewayId}/${rest}`;
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let file: string;
let gw: Gateway;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    clock,
    spec: {
      meters: [
        // In arrears: nothing left, 5 yuan of overdraft used (of 10 allowed), so the meter has not tripped itself.
        { address: ROOMS.arrears.address, kind: 'money', balance: 0, overdraft: 5, overdraftLimit: 10, purchaseCount: 3, powerKw: 0 },
        { address: ROOMS.safety.address, kind: 'money', balance: 30, purchaseCount: 1, powerKw: 0 },
        { address: ROOMS.night.address, kind: 'money', balance: 30, purchaseCount: 1, powerKw: 0 },
        { address: ROOMS.restart.address, kind: 'money', balance: 30, purchaseCount: 1, powerKw: 0 },
      ],
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'meterd-supply-'));
  file = join(dir, 'meterd.yaml');
  writeFileSync(
    file,
    `gateway: { id: ${gatewayId}, dataDir: ./data, timeZone: UTC }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
commands: { allowUnsigned: true }
buses:
  - { id: b1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}", timeout: 300ms, retries: 1, gap: 0ms }
meters:
${Object.values(ROOMS)
  .map((r) => `  - { id: ${r.id}, bus: b1, address: "${r.address}", profile: dlt645-2007-single-phase-prepaid-money }`)
  .join('\n')}
polling:
  intervals: { instant: 1h, energy: 1h, status: 1h, credit: 1h }
supply:
  noticeHours: 24
  protectedWindows:
    - { daily: "20:00-08:00" }
`,
  );
  watcher = await watchTopics(broker.url, topic('#'));
  gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger, clock });
}, 30_000);

afterAll(async () => {
  await gw?.stop();
  await watcher?.close();
  await clearRetained(broker.url, [topic('status'), ...Object.values(ROOMS).map((r) => topic(`meters/${r.id}/state`))]);
  await sim?.close();
  await broker?.close();
});

let seq = 0;
/** A command through the control socket's door (the CLI's way in): the final reply. */
async function command(name: string, payload: Record<string, unknown>, operator = 'cli'): Promise<CommandReply> {
  return gw.desk.submit(name, { requestId: `t-${++seq}`, ...payload }, { operator }).final;
}
/** Moves the wall clock and runs the scheduler's pass, as its timer would. */
async function at(iso: string): Promise<void> {
  clock.set(utc(iso));
  await gw.supply.runDue();
}
const relayOpen = (address: string) => sim.meters.get(address)!.snapshot().relay.open;
const tripCount = (address: string) => sim.meters.get(address)!.snapshot().relay.tripCount;
const steps = (noticeId: number) => gw.store.supply.record({ noticeId }).map((l) => l.step);

describe('cut off and restore with approval', { timeout: 60_000 }, () => {
  it('a notice from the station over MQTT gets its id and earliest time; its own requester cannot approve it', async () => {
    const client = await mqtt.connectAsync(broker.url, { clientId: uniqueId('station'), protocolVersion: 4 });
    await client.publishAsync(
      topic('cmd/supply-notice'),
      JSON.stringify({ requestId: 'st-notice-1', meter: ROOMS.arrears.id, reason: 'arrears', operator: 'zhang', note: '3 reminders sent' }),
      { qos: 1 },
    );
    await client.endAsync();
    await watcher.waitFor(
      () => watcher.json<CommandReply>(topic('cmd/supply-notice/result')).some((r) => r.status === 'done'),
      'the notice reply',
    );
    const reply = watcher.json<CommandReply>(topic('cmd/supply-notice/result')).find((r) => r.status === 'done')!;
    expect(reply.result).toMatchObject({
      noticeId: expect.any(Number),
      meter: ROOMS.arrears.id,
      reason: 'arrears',
      state: 'notified',
      requestedBy: 'zhang',
      earliestAt: '2026-12-08T10:00:00.000Z',
      plannedAt: '2026-12-08T10:00:00.000Z',
    });
    const noticeId = reply.result!.noticeId as number;

    const self = await command('supply-approve', { noticeId, operator: 'Zhang ' });
    expect(self).toMatchObject({ status: 'rejected', error: { code: 'SAME_PERSON' } });
    const second = await command('supply-notice', { meter: ROOMS.arrears.id, reason: 'other', operator: 'li' });
    expect(second).toMatchObject({ status: 'rejected', error: { code: 'NOTICE_OPEN' }, result: { noticeId } });
    expect(gw.store.supply.notice(noticeId)!.state).toBe('notified');
  });

  it('an approved cut for arrears trips at its time, not before; a top-up that clears the arrears restores it; the record has every step', async () => {
    const notice = gw.store.supply.list({ meterId: ROOMS.arrears.id })[0]!;
    const approved = await command('supply-approve', { noticeId: notice.id, operator: 'wang' });
    expect(approved).toMatchObject({ status: 'done', result: { state: 'approved', approvedBy: 'wang' } });

    await at('2026-12-08T09:59:00');
    expect(relayOpen(ROOMS.arrears.address)).toBe(false);
    expect(gw.store.supply.notice(notice.id)!.state).toBe('approved');

    await at('2026-12-08T10:00:00');
    expect(relayOpen(ROOMS.arrears.address)).toBe(true);
    expect(gw.store.supply.notice(notice.id)).toMatchObject({ state: 'cut', tripConfirmedAt: utc('2026-12-08T10:00:00') });

    // The customer pays 20 yuan: 5 of overdraft repaid, 15 left; the gateway restores the supply by itself.
    const topup = await command('topup', { meter: ROOMS.arrears.id, amountFen: 2000 });
    expect(topup).toMatchObject({ status: 'done', result: { state: 'applied' } });
    await gw.supply.runDue();
    await watcher.waitFor(() => gw.store.supply.notice(notice.id)!.state === 'restored', 'the restore after the top-up');
    expect(relayOpen(ROOMS.arrears.address)).toBe(false);
    expect(gw.store.supply.notice(notice.id)).toMatchObject({
      restoredBy: 'gateway',
      restoreReason: expect.stringMatching(/^arrears cleared by load t-/),
    });
    expect(steps(notice.id)).toEqual([
      'notice',
      'approve',
      'trip-sent',
      'trip-confirmed',
      'restore-queued',
      'restore-sent',
      'restore-confirmed',
    ]);
    const lines = gw.store.supply.record({ noticeId: notice.id });
    expect(lines.map((l) => l.operator)).toEqual(['zhang', 'wang', 'wang', null, 'gateway', 'gateway', 'gateway']);

    // The station saw every step on meters/<id>/supply.
    await watcher.waitFor(() => watcher.json(topic(`meters/${ROOMS.arrears.id}/supply`)).length === 7, 'the seven supply events');
    expect(watcher.json<{ step: string; noticeId: number }>(topic(`meters/${ROOMS.arrears.id}/supply`)).map((m) => m.step)).toEqual(
      steps(notice.id),
    );
  });

  it('a cut due at night waits for the end of the protected window; a safety cut does not wait', async () => {
    clock.set(utc('2026-12-08T21:00:00'));
    const night = await command('supply-notice', { meter: ROOMS.night.id, reason: 'customer-request', operator: 'zhang' });
    const safety = await command('supply-notice', { meter: ROOMS.safety.id, reason: 'safety', operator: 'zhang', note: 'burnt socket' });
    expect(night.result).toMatchObject({ earliestAt: '2026-12-09T21:00:00.000Z', plannedAt: '2026-12-10T08:00:00.000Z' });
    expect(safety.result).toMatchObject({ earliestAt: '2026-12-09T21:00:00.000Z', plannedAt: '2026-12-09T21:00:00.000Z' });
    const nightId = night.result!.noticeId as number;
    const safetyId = safety.result!.noticeId as number;
    expect(await command('supply-approve', { noticeId: nightId, operator: 'wang' })).toMatchObject({ status: 'done' });
    expect(await command('supply-approve', { noticeId: safetyId, operator: 'wang' })).toMatchObject({ status: 'done' });

    await at('2026-12-09T21:00:00');
    expect(relayOpen(ROOMS.safety.address)).toBe(true);
    expect(relayOpen(ROOMS.night.address)).toBe(false);
    expect(gw.store.supply.record({ noticeId: nightId, steps: ['trip-deferred'] })[0]!.detail).toEqual({
      window: '20:00-08:00',
      until: '2026-12-10T08:00:00.000Z',
    });
    await at('2026-12-10T07:59:00');
    expect(relayOpen(ROOMS.night.address)).toBe(false);
    await at('2026-12-10T08:00:00');
    expect(relayOpen(ROOMS.night.address)).toBe(true);
    expect(steps(nightId)).toEqual(['notice', 'approve', 'trip-deferred', 'trip-sent', 'trip-confirmed']);
  });

  it('a top-up leaves a safety cut open; a restore by a technician closes it and ends the notice', async () => {
    const safety = gw.store.supply.openNotice(ROOMS.safety.id)!;
    expect(safety.state).toBe('cut');
    expect(await command('topup', { meter: ROOMS.safety.id, amountFen: 1000 })).toMatchObject({ status: 'done' });
    await gw.supply.runDue();
    expect(relayOpen(ROOMS.safety.address)).toBe(true);

    const restore = await command('supply-restore', { meter: ROOMS.safety.id, operator: 'chen', reason: 'socket replaced' });
    expect(restore).toMatchObject({
      status: 'done',
      result: { meter: ROOMS.safety.id, relay: 'closed', noticeId: safety.id, state: 'restored' },
    });
    expect(relayOpen(ROOMS.safety.address)).toBe(false);
    expect(gw.store.supply.notice(safety.id)).toMatchObject({ state: 'restored', restoredBy: 'chen', restoreReason: 'socket replaced' });
    expect(steps(safety.id)).toEqual(['notice', 'approve', 'trip-sent', 'trip-confirmed', 'restore-sent', 'restore-confirmed']);
  });

  it('a cancelled notice never trips; a plain relay command is in the same book with its reason', async () => {
    const night = gw.store.supply.openNotice(ROOMS.night.id)!;
    expect(await command('supply-cancel', { noticeId: night.id, operator: 'wang' })).toMatchObject({
      status: 'rejected',
      error: { code: 'NOTICE_STATE' },
    });
    const relay = await command('relay', { meter: ROOMS.night.id, action: 'close', reason: 'customer moved in' }, 'chen');
    expect(relay).toMatchObject({ status: 'done', result: { relay: 'closed' } });
    expect(gw.store.supply.notice(night.id)).toMatchObject({ state: 'restored', restoredBy: 'chen', restoreReason: 'customer moved in' });
    const line = gw.store.supply.record({ meterId: ROOMS.night.id, steps: ['relay-close'] })[0]!;
    expect(line).toMatchObject({
      operator: 'chen',
      reason: 'customer moved in',
      noticeId: night.id,
      detail: { relay: 'closed', confirmed: true },
    });

    const again = await command('supply-notice', { meter: ROOMS.night.id, reason: 'other', operator: 'zhang' });
    const id = again.result!.noticeId as number;
    expect(await command('supply-approve', { noticeId: id, operator: 'wang' })).toMatchObject({ status: 'done' });
    expect(await command('supply-cancel', { noticeId: id, operator: 'wang' })).toMatchObject({
      status: 'done',
      result: { state: 'cancelled' },
    });
    const trips = tripCount(ROOMS.night.address);
    await at('2026-12-12T10:00:00');
    expect(relayOpen(ROOMS.night.address)).toBe(false);
    expect(tripCount(ROOMS.night.address)).toBe(trips);
    expect(steps(id)).toEqual(['notice', 'approve', 'cancel']);
  });

  it('a restart between approval and the cut trips once, at its time', async () => {
    clock.set(utc('2026-12-12T10:00:00'));
    const n = await command('supply-notice', { meter: ROOMS.restart.id, reason: 'customer-request', operator: 'zhang' });
    const id = n.result!.noticeId as number;
    expect(await command('supply-approve', { noticeId: id, operator: 'wang' })).toMatchObject({ status: 'done' });
    await gw.stop();

    clock.set(utc('2026-12-13T11:00:00'));
    gw = await startGateway(loadGatewayConfig(file, {}), { logger: silentLogger, clock });
    await watcher.waitFor(() => gw.store.supply.notice(id)!.state === 'cut', 'the cut after the restart');
    await gw.supply.runDue();
    expect(relayOpen(ROOMS.restart.address)).toBe(true);
    expect(tripCount(ROOMS.restart.address)).toBe(1);
    expect(steps(id)).toEqual(['notice', 'approve', 'trip-sent', 'trip-confirmed']);
  });
});

/** Runs `meterd …` in process against the running gateway (its control socket) and store; returns its stdout lines. */
async function cli(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const program = new Command('meterd').exitOverride();
  registerSupplyCommand(program, { out: (l) => lines.push(l) });
  registerReportCommand(program, { out: (l) => lines.push(l) }, { clock });
  await program.parseAsync(['node', 'meterd', ...args]);
  return lines;
}

describe('the record at the CLI and in the month’s books', { timeout: 60_000 }, () => {
  it('meterd supply notice, approve, list and cancel go through the daemon; the requester cannot approve', async () => {
    const [json] = await cli(
      'supply',
      'notice',
      '-c',
      file,
      '--meter',
      ROOMS.safety.id,
      '--reason',
      'other',
      '--operator',
      'zhang',
      '--json',
    );
    const notice = JSON.parse(json!) as { noticeId: number; earliestAt: string; state: string };
    expect(notice).toMatchObject({ state: 'notified', earliestAt: '2026-12-14T11:00:00.000Z' });
    await expect(cli('supply', 'approve', '-c', file, '--notice', String(notice.noticeId), '--operator', 'zhang')).rejects.toMatchObject({
      code: 'SAME_PERSON',
    });
    const approved = await cli('supply', 'approve', '-c', file, '--notice', String(notice.noticeId), '--operator', 'wang');
    expect(approved[0]).toBe(`notice ${notice.noticeId} approved by wang: ${ROOMS.safety.id} is cut at 2026-12-14 11:00 (UTC) or later`);
    const cancelled = await cli('supply', 'cancel', '-c', file, '--notice', String(notice.noticeId), '--operator', 'wang');
    expect(cancelled).toEqual([`notice ${notice.noticeId} for ${ROOMS.safety.id} cancelled`]);

    const record = (await cli('supply', 'list', '-c', file, '--notice', String(notice.noticeId), '--json')).map(
      (l) => JSON.parse(l) as { step: string; operator: string },
    );
    expect(record.map((l) => [l.step, l.operator])).toEqual([
      ['notice', 'zhang'],
      ['approve', 'wang'],
      ['cancel', 'wang'],
    ]);
    const open = (await cli('supply', 'list', '-c', file, '--open', '--json')).map(
      (l) => JSON.parse(l) as { meter: string; state: string },
    );
    expect(open).toEqual([expect.objectContaining({ meter: ROOMS.restart.id, state: 'cut' })]);
    const table = await cli('supply', 'list', '-c', file, '--meter', ROOMS.arrears.id);
    expect(table[0]).toMatch(/^notice\s+meter\s+reason\s+state/);
    expect(table[1]).toMatch(
      /room-1\s+arrears\s+restored\s+zhang\s+wang\s+2026-12-08 10:00\s+2026-12-08 10:00\s+2026-12-08 10:00\s+gateway$/,
    );
  });

  it("the month's books list every cut and restore, with who asked, approved and restored", async () => {
    const [json] = await cli('report', 'monthly', '--month', '2026-12', '--format', 'json', '-c', file);
    const supply = (JSON.parse(json!) as { supply: Record<string, unknown> & { lines: Record<string, unknown>[] } }).supply;
    expect(supply).toMatchObject({ cuts: { arrears: 1, safety: 1, 'customer-request': 2 }, restores: 3, relayTrips: 0, relayCloses: 1 });
    expect(supply.lines.map((l) => [l.local, l.meter, l.kind, l.reason, l.by, l.approvedBy])).toEqual([
      ['2026-12-08 10:00', 'room-1', 'cut', 'arrears', 'zhang', 'wang'],
      ['2026-12-08 10:00', 'room-1', 'restore', 'arrears', 'gateway', null],
      ['2026-12-09 21:00', 'room-2', 'cut', 'safety', 'zhang', 'wang'],
      ['2026-12-10 08:00', 'room-3', 'cut', 'customer-request', 'zhang', 'wang'],
      ['2026-12-10 08:00', 'room-2', 'restore', 'safety', 'chen', null],
      ['2026-12-10 08:00', 'room-3', 'restore', 'customer-request', 'chen', null],
      ['2026-12-13 11:00', 'room-4', 'cut', 'customer-request', 'zhang', 'wang'],
    ]);
    const text = await cli('report', 'monthly', '--month', '2026-12', '-c', file);
    expect(text).toContain(
      'Supply cut off and restored: 4 cuts under a notice (arrears 1, safety 1, customer-request 2), 3 restored; plain relay commands: 0 trips, 1 close',
    );
    const daily = JSON.parse((await cli('report', 'daily', '--date', '2026-12-08', '--format', 'json', '-c', file))[0]!) as object;
    expect(daily).not.toHaveProperty('supply');
  });
});

describe('a cut the meter does not confirm', { timeout: 60_000 }, () => {
  it('is recorded trip-failed and sent again 5 minutes later, never before', async () => {
    clock.set(utc('2026-12-14T12:00:00'));
    const n = await command('supply-notice', { meter: ROOMS.night.id, reason: 'other', operator: 'zhang' });
    const id = n.result!.noticeId as number;
    expect(await command('supply-approve', { noticeId: id, operator: 'wang' })).toMatchObject({ status: 'done' });
    sim.bus.setFaults({ silent: true }, ROOMS.night.address);
    try {
      await at('2026-12-15T12:00:00');
      expect(gw.store.supply.notice(id)).toMatchObject({
        state: 'approved',
        nextTryAt: utc('2026-12-15T12:05:00'),
        lastError: expect.stringMatching(/^RELAY_NOT_CONFIRMED: /),
      });
    } finally {
      sim.bus.setFaults({ silent: false }, ROOMS.night.address);
    }
    await at('2026-12-15T12:04:59');
    expect(relayOpen(ROOMS.night.address)).toBe(false);
    await at('2026-12-15T12:05:00');
    expect(relayOpen(ROOMS.night.address)).toBe(true);
    expect(steps(id)).toEqual(['notice', 'approve', 'trip-sent', 'trip-failed', 'trip-sent', 'trip-confirmed']);
    expect(gw.store.supply.notice(id)).toMatchObject({ state: 'cut', lastError: null });
  });
});
