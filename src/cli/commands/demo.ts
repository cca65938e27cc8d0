import type { Command } from 'commander';
import { Dlt645Decoder, type Frame } from '../../../protocols/dlt645/index.js';
import { openBus } from '../../bus/index.js';
import { Dlt645Meter } from '../../devices/dlt645-meter.js';
import { Dlt645PointReader } from '../../devices/dlt645-points.js';
import { loadProfiles } from '../../profiles/registry.js';
import { defaultMeters, startDlt645Simulator } from '../../sim/dlt645/index.js';

/** `npm start`: simulated meters and a reading loop, so a new user sees meterd work with no hardware and no config. */
export function registerDemoCommand(program: Command, io: { out: (line: string) => void }): void {
  program
    .command('demo')
    .description('run meterd against simulated meters with no configuration (what `npm start` does); Ctrl-C stops it')
    .option('--meters <n>', 'number of simulated DL/T 645 meters', '3')
    .option('--interval <s>', 'seconds between reading rounds', '5')
    .action(async (opts: { meters: string; interval: string }) => {
      const count = Math.max(1, Math.min(50, Number(opts.meters) || 3));
      const intervalMs = Math.max(1, Number(opts.interval) || 5) * 1000;
      const sim = await startDlt645Simulator({ tcpPort: 0, spec: { meters: defaultMeters(count).map((m) => ({ ...m, powerKw: 1.2 })) } });
      const port = `tcp://127.0.0.1:${sim.address!.tcpPort}`;
      const bus = await openBus<Frame>({ id: 'demo', port, line: { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 }, decoder: new Dlt645Decoder() });
      const profile = loadProfiles().get('dlt645-2007-single-phase-prepaid-money')!;
      const readers = [...sim.meters.keys()].map((address) => new Dlt645PointReader(new Dlt645Meter({ link: bus, address, timeoutMs: 1000 }), profile));
      io.out(`meterd demo: ${count} simulated DL/T 645 meters on ${port}; reading every ${intervalMs / 1000} s (Ctrl-C to stop)`);
      io.out(`try in another terminal: npm run meterd -- read --port ${port} --addr 1 --point energy.active.import`);
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const points = ['energy.active.import', 'voltage.a', 'current.a', 'power.active', 'credit.balance.money', 'relay.state', 'status.word3'];
      while (!stop.signal.aborted) {
        for (const reader of readers) {
          const values = await reader.read(points, { priority: 'poll' }).catch((err: Error) => new Map([['error', { error: err.message }]]));
          const text = [...values].map(([k, v]) => `${k}=${'v' in v ? `${v.v}${v.unit ? ` ${v.unit}` : ''}` : v.error}`).join('  ');
          io.out(`${new Date().toISOString()} ${reader.meter.address}  ${text}`);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, intervalMs);
          stop.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
      }
      await bus.close();
      await sim.close();
      io.out('meterd demo stopped');
    });
}
