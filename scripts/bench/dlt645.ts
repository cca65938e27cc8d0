/**
 * DL/T 645 benchmarks: decoder throughput, and request/reply round trips per second through the real bus
 * (serialport over a pty pair, and TCP) against the zero-delay simulator. Prints figures; asserts nothing.
 * Run: npx tsx scripts/bench/dlt645.ts
 */
import { Dlt645Decoder, encodeFrame, normalReply, readData, readReplyData, type Frame } from '../../protocols/dlt645/index.js';
import { openBus } from '../../src/bus/index.js';
import { Dlt645Meter } from '../../src/devices/dlt645-meter.js';
import { startDlt645Simulator } from '../../src/sim/dlt645/index.js';
import { createPtyPair } from '../../test/helpers/pty.js';

const LINE = { baudRate: 2400, parity: 'even', dataBits: 8, stopBits: 1 } as const;

function decoderThroughput(): void {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 2000; i++) {
    const req = readData(String(i).padStart(12, '0'), '00010000');
    const data = readReplyData('00010000', Uint8Array.of(0x78, 0x56, 0x34, 0x12, ...new Uint8Array(i % 40)));
    frames.push(encodeFrame(normalReply(req, req.address, data), { preamble: 4 }));
  }
  const stream = Buffer.concat(frames);
  const chunk = 64;
  const rounds = 50;
  const decoder = new Dlt645Decoder();
  let count = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) {
    for (let o = 0; o < stream.length; o += chunk) {
      for (const ev of decoder.push(stream.subarray(o, o + chunk))) if (ev.kind === 'frame') count++;
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `decoder: ${Math.round(count / s).toLocaleString('en')} frames/s, ${((stream.length * rounds) / s / 1e6).toFixed(1)} MB/s (${count} frames of 16-56 data bytes, 64-byte chunks)`,
  );
}

async function roundTrips(kind: 'pty' | 'tcp', gapMs: number, seconds = 3): Promise<void> {
  const pty = kind === 'pty' ? await createPtyPair() : undefined;
  const sim = await startDlt645Simulator(
    kind === 'pty' ? { port: pty!.b, spec: { meters: [{ address: '1' }] } } : { tcpPort: 0, spec: { meters: [{ address: '1' }] } },
  );
  const port = kind === 'pty' ? pty!.a : `tcp://127.0.0.1:${sim.address!.tcpPort}`;
  const bus = await openBus<Frame>({ id: 'bench', port, line: LINE, decoder: new Dlt645Decoder(), gapMs });
  const meter = new Dlt645Meter({ link: bus, address: '000000000001', timeoutMs: 1000 });
  const latencies: number[] = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const t = process.hrtime.bigint();
    await meter.read('00010000', { priority: 'poll' });
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  latencies.sort((a, b) => a - b);
  const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!.toFixed(2);
  console.log(
    `round trips over ${kind} (gap ${gapMs} ms): ${Math.round(latencies.length / seconds).toLocaleString('en')}/s, latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`,
  );
  await bus.close();
  await sim.close();
  await pty?.close();
}

decoderThroughput();
await roundTrips('pty', 0);
await roundTrips('tcp', 0);
await roundTrips('pty', 20, 2);
console.log(
  '(gap 20 ms is the RS-485 turnaround default; on a real 2400-baud line a 20-byte request and 24-byte reply take ~200 ms of line time alone)',
);
