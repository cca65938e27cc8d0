import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleBackend } from '../../src/daemon/console.js';
import { systemClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import { startMetricsServer } from '../../src/web/metrics.js';
import { ConsoleClient, eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/** /metrics and the books API on a real gateway: every series of docs/metrics.md is there with real values. */
let rig: ConsoleRig;
let metrics: { url: string; close(): Promise<void> };

beforeAll(async () => {
  rig = await startConsoleRig();
  await eventually(() => rig.gateway.store.meterStates.get('room-101')?.online, 'room-101 online');
  metrics = await startMetricsServer(
    { host: '127.0.0.1', port: 0 },
    () => consoleBackend(rig.gateway, systemClock).metrics(),
    silentLogger,
  );
}, 30_000);

afterAll(async () => {
  await metrics?.close();
  await rig?.close();
});

describe('/metrics', () => {
  it('answers in the Prometheus text format without a sign-in, with every series docs/metrics.md lists', async () => {
    const c = new ConsoleClient(rig.url);
    await c.signIn('cashier', rig.passwords.cashier!);
    await c.json('POST', '/api/meters/room-101/topup', { requestId: 'metrics-topup-1', unit: 'money', amount: '1.00' });
    const res = await fetch(metrics.url);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^meterd_bus_up\{bus="bus1"\} 1$/m);
    expect(text).toMatch(/^meterd_bus_utilisation_ratio\{bus="bus1"\} [0-9.]+$/m);
    expect(text).toMatch(/^meterd_meters\{state="online"\} 3$/m);
    expect(text).toMatch(/^meterd_commands\{command="topup",status="done"\} 1$/m);
    expect(text).toMatch(/^meterd_readings_stored_total [1-9]\d*$/m);
    expect(text).toMatch(/^meterd_outbox_depth \d+$/m);
    expect(text).toMatch(/^meterd_process_resident_memory_bytes \d+$/m);
    const { readFileSync } = await import('node:fs');
    const documented = [
      ...readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8').matchAll(/^\| `(meterd_[a-z_]+)`/gm),
    ].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThanOrEqual(15);
    for (const name of documented) expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
  });
});

describe('the books API', () => {
  it('gives the day per operator and channel to a cashier, refuses a technician, and says what a bad date is', async () => {
    const c = new ConsoleClient(rig.url);
    await c.signIn('cashier', rig.passwords.cashier!);
    const day = new Intl.DateTimeFormat('en-CA', { timeZone: rig.gateway.config.gateway.timeZone }).format(new Date());
    const r = await c.json<{ byOperator: { operator: string; loads: { count: number } }[] }>('GET', `/api/books?kind=daily&period=${day}`);
    expect(r.status).toBe(200);
    expect(r.body.byOperator.find((o) => o.operator === 'cashier')?.loads.count).toBeGreaterThanOrEqual(1);
    const bad = await c.json<{ error: { message: string } }>('GET', '/api/books?kind=daily&period=2026-13-01');
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toMatch(/2026-13-01/);
    const tech = new ConsoleClient(rig.url);
    await tech.signIn('tech', rig.passwords.tech!);
    expect((await tech.request('GET', `/api/books?kind=daily&period=${day}`)).status).toBe(403);
  });
});
