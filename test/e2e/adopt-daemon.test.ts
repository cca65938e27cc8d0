import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { startDlt645Simulator, type Dlt645Simulator } from '../../src/sim/dlt645/index.js';
import { listCommands, openStore } from '../../src/store/index.js';
import { clearRetained, startTestBroker, uniqueId, watchTopics, type TestBroker, type TopicWatcher } from '../helpers/broker.js';
import { runMeterd } from '../helpers/cli.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';

// `meterd adopt -c FILE` beside a running daemon reads the meters through the daemon's control socket (its bus
// arbiter holds the line), records the opening entries, is safe to run again, and reports a meter that moved since.

const METERS = [
  { id: 'flat-1', address: '000000000611', purchaseCount: 3, balance: 41.5 },
  { id: 'flat-2', address: '000000000612', purchaseCount: 5, balance: 12 },
  { id: 'flat-3', address: '000000000613', purchaseCount: 7, balance: 0.5 },
];
let broker: TestBroker;
let sim: Dlt645Simulator;
let watcher: TopicWatcher;
let daemon: DaemonProcess;
let gw: string;

beforeAll(async () => {
  broker = await startTestBroker();
  sim = await startDlt645Simulator({
    tcpPort: 0,
    spec: {
      meters: METERS.map((m) => ({ address: m.address, kind: 'energy' as const, purchaseCount: m.purchaseCount, balance: m.balance })),
    },
  });
  gw = uniqueId('gw-adopt');
  watcher = await watchTopics(broker.url, `meterd/${gw}/status`);
  daemon = startDaemon(
    `gateway: { id: ${gw}, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: ${broker.kind === 'external' ? 5 : 4} }
buses: [{ id: bus1, port: "tcp://127.0.0.1:${sim.address!.tcpPort}" }]
meters:
${METERS.map((m) => `  - { id: ${m.id}, bus: bus1, address: "${m.address}", profile: dlt645-2007-single-phase-prepaid }`).join('\n')}
`,
  );
  await watcher.waitFor(() => watcher.json(`meterd/${gw}/status`).at(-1)?.state === 'online', 'the gateway online', 20_000);
}, 60_000);
afterAll(async () => {
  daemon?.child.kill('SIGTERM');
  await daemon?.exited();
  await watcher?.close();
  await clearRetained(broker.url, [`meterd/${gw}/status`, ...METERS.map((m) => `meterd/${gw}/meters/${m.id}/state`)]);
  await sim?.close();
  await broker?.close();
});

type Line = { meterId: string; outcome: string; message: string };
const adopt = async () => {
  const r = await runMeterd(['adopt', '-c', daemon.configPath, '--operator', 'zhang', '--json'], { cwd: daemon.dir });
  return {
    ...r,
    lines: r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line),
  };
};
const withStore = <T>(fn: (store: ReturnType<typeof openStore>) => T): T => {
  const store = openStore({ path: join(daemon.dir, 'data', 'meterd.db'), clock: systemClock });
  try {
    return fn(store);
  } finally {
    store.close();
  }
};

describe('meterd adopt through a running daemon', { timeout: 90_000 }, () => {
  it('reads every meter through the control socket and records one opening entry each, at the meter’s count and balance', async () => {
    const r = await adopt();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.lines.map((l) => [l.meterId, l.outcome])).toEqual(METERS.map((m) => [m.id, 'adopted']));
    withStore((store) => {
      for (const m of METERS) {
        // The books key a DL/T 645 meter by its address, as its cards carry it.
        const entries = store.ledger.list({ meterId: m.address });
        expect(entries.map((e) => [e.channel, e.purchaseCount, e.operator, e.after?.balance])).toEqual([
          ['opening', m.purchaseCount, 'zhang', Math.round(m.balance * 100)],
        ]);
      }
      // Through the daemon: its router recorded one socket `read` per meter for the adoption, with the operator.
      const reads = store.transaction((tx) => listCommands(tx)).filter((c) => c.requestId.startsWith('adopt-read-'));
      expect(reads.map((c) => [c.command, c.origin, c.operator, c.status]).sort()).toEqual(
        METERS.map(() => ['read', 'socket', 'zhang', 'done']),
      );
    });
  });

  it('run again it changes nothing; a meter whose count moved since is reported, not adopted again', async () => {
    const again = await adopt();
    expect(again.status).toBe(0);
    expect(again.lines.map((l) => l.outcome)).toEqual(['already-adopted', 'already-adopted', 'already-adopted']);

    // A card load from outside meterd on flat-2.
    expect(sim.meters.get('000000000612')!.insertCardLoad(6, 1000, Date.now())).toBe('loaded');
    const moved = await adopt();
    expect(moved.status).toBe(1);
    expect(moved.lines.map((l) => [l.meterId, l.outcome])).toEqual([
      ['flat-1', 'already-adopted'],
      ['flat-2', 'moved'],
      ['flat-3', 'already-adopted'],
    ]);
    expect(moved.stderr).toMatch(/ADOPT_INCOMPLETE: 1 meter\(s\) not adopted \(flat-2\)/);
    withStore((store) =>
      expect(store.ledger.list({ meterId: '000000000612' }).map((e) => [e.channel, e.purchaseCount])).toEqual([['opening', 5]]),
    );
  });
});
