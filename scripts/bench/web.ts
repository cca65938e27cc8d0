/**
 * The web console: first-load bytes of each page (the shell, the ES modules it imports, the vendor files and the
 * page's first API answers) as they cross the wire, without compression and with what a browser asks for
 * (`accept-encoding: gzip, deflate, br`), and the latency of the meters table's API (GET /api/meters) with 2,000
 * meters in the config and in the meter-state table, both ways. The meters sit on a bus whose converter does not
 * answer (nothing polls), so what is measured is the console's own work.
 * Run: npm run bench -- web   (or npx tsx scripts/bench/web.ts [count])
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realTimers, systemClock } from '../../src/clock.js';
import { loadGatewayConfig } from '../../src/config/index.js';
import { consoleBackend } from '../../src/daemon/console.js';
import { startGateway } from '../../src/daemon/gateway.js';
import { silentLogger } from '../../src/log.js';
import { upsertMeterState } from '../../src/store/index.js';
import { startEmbeddedBroker } from '../../src/uplink/index.js';
import { startWebConsole } from '../../src/web/server.js';

const METERS = 2_000;
const COUNT = Number(process.argv[2] ?? 300);

// Ports that accept nothing: the buses stay down, the poller idles. 250 meters per bus (an RS-485 line carries 256).
const BUSES = 8;
const deadPorts: number[] = [];
for (let b = 0; b < BUSES; b++) {
  const dead = createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
  deadPorts.push((dead.address() as { port: number }).port);
  await new Promise<void>((r) => dead.close(() => r()));
}

const broker = await startEmbeddedBroker({ port: 0 });
const dir = mkdtempSync(join(tmpdir(), 'meterd-bench-web-'));
writeFileSync(
  join(dir, 'meterd.yaml'),
  `gateway: { id: bench-web, dataDir: ./data }
mqtt: { url: "${broker.url}", protocolVersion: 4 }
buses:
${deadPorts.map((p, b) => `  - { id: bus${b + 1}, port: "tcp://127.0.0.1:${p}" }`).join('\n')}
meters:
${Array.from({ length: METERS }, (_, i) => `  - { id: room-${10000 + i}, bus: bus${1 + Math.floor(i / (METERS / BUSES))}, address: "${String(i + 1).padStart(12, '0')}", customerNo: "${String(880000000000 + i)}", profile: dlt645-2007-single-phase-prepaid-money }`).join('\n')}
web: { listen: 127.0.0.1:0 }
`,
);
const config = loadGatewayConfig(join(dir, 'meterd.yaml'), {});
const gateway = await startGateway(config, { logger: silentLogger });
gateway.store.transaction((tx) => {
  for (let i = 0; i < METERS; i++)
    upsertMeterState(tx, `room-${10000 + i}`, {
      online: i % 50 !== 0,
      lastGoodReadAt: Date.now() - i * 1000,
      relayState: i % 97 === 0 ? 'open' : 'closed',
      balance: { moneyYuan: (i * 37) % 500, overdraftYuan: 0, purchaseCount: i % 20 },
    });
});
const backend = consoleBackend(gateway, systemClock);
await backend.users.add('bench', 'cashier', 'bench-password');
const web = await startWebConsole({ web: config.web, backend, logger: silentLogger, clock: systemClock, timers: realTimers });
const base = web.url!;

const signIn = await fetch(new URL('/api/session', base), {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ name: 'bench', password: 'bench-password' }),
});
const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
const BROWSER = 'gzip, deflate, br';
/** The bytes of an answer's body as sent (compressed or not: node:http does not decode), and its content-encoding. */
const get = (path: string, encoding = 'identity') =>
  new Promise<{ bytes: number; encoding: string }>((resolve, reject) => {
    const req = request(new URL(path, base), { headers: { cookie, 'accept-encoding': encoding } }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      res.on('end', () => resolve({ bytes, encoding: String(res.headers['content-encoding'] ?? 'identity') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
const kib = (n: number) => (n / 1024).toFixed(1);

// First load: the shell and every module and stylesheet it pulls in (one module graph for all pages), then what
// each page asks the API for when it opens.
const assets = ['/', '/vendor/uplot.css', '/app/style.css', '/app/app.js', '/app/api.js', '/app/i18n.js', '/app/live.js'];
for (const p of ['overview', 'meters', 'meter', 'alerts', 'users', 'books', 'counter', 'allowances', 'lineloss'])
  assets.push(`/app/pages/${p}.js`);
for (const v of ['preact.mjs', 'hooks.mjs', 'htm.mjs', 'htm-preact.mjs', 'uplot.mjs']) assets.push(`/vendor/${v}`);
const moduleBytes = { plain: 0, wire: 0 };
const used = new Set<string>();
for (const a of assets) {
  moduleBytes.plain += (await get(a)).bytes;
  const w = await get(a, BROWSER);
  moduleBytes.wire += w.bytes;
  used.add(w.encoding);
}
const day = new Intl.DateTimeFormat('en-CA', { timeZone: config.gateway.timeZone }).format(new Date());
const pages: [string, string[]][] = [
  ['overview', ['/api/session', '/api/overview']],
  ['meters', ['/api/session', '/api/meters']],
  ['meter', ['/api/session', '/api/meters/room-10001', '/api/meters/room-10001/readings?days=7']],
  ['alerts', ['/api/session', '/api/alerts']],
  ['books', ['/api/session', `/api/books?kind=daily&period=${day}`]],
];
console.log(
  `first load (shell + modules + vendor + CSS, shared by every page): ${kib(moduleBytes.plain)} KiB uncompressed, ` +
    `${kib(moduleBytes.wire)} KiB on the wire with accept-encoding "${BROWSER}" (sent as ${[...used].join(', ')})`,
);
for (const [name, paths] of pages) {
  const api = { plain: 0, wire: 0 };
  for (const p of paths) {
    api.plain += (await get(p)).bytes;
    api.wire += (await get(p, BROWSER)).bytes;
  }
  console.log(
    `  ${name.padEnd(9)} ${kib(moduleBytes.plain + api.plain).padStart(7)} KiB → ${kib(moduleBytes.wire + api.wire).padStart(6)} KiB` +
      `  (its API answers ${kib(api.plain)} → ${kib(api.wire)} KiB)`,
  );
}

for (const encoding of ['identity', BROWSER]) {
  for (let i = 0; i < 20; i++) await get('/api/meters', encoding);
  const times: number[] = [];
  let answer = { bytes: 0, encoding: '' };
  for (let i = 0; i < COUNT; i++) {
    const t0 = performance.now();
    answer = await get('/api/meters', encoding);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!.toFixed(1);
  console.log(
    `GET /api/meters with ${METERS} meters, accept-encoding "${encoding}": ${kib(answer.bytes)} KiB sent (${answer.encoding}), ${COUNT} requests one at a time:`,
  );
  console.log(`  p50 ${pct(50)} ms   p99 ${pct(99)} ms   max ${times.at(-1)!.toFixed(1)} ms`);
}

await web.close();
await gateway.stop();
await broker.close();
