import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleClient, eventually, startConsoleRig, type ConsoleRig } from '../helpers/web-console.js';

/** The Allowances page's API on a real gateway: a round due today runs at start and its progress is shown. */
let rig: ConsoleRig;

beforeAll(async () => {
  rig = await startConsoleRig({ allowance: true });
}, 30_000);

afterAll(async () => {
  await rig?.close();
});

describe('allowances in the console', () => {
  it('shows the round running to completion, and refuses to resolve a row that waits for nobody, in a sentence', async () => {
    const c = new ConsoleClient(rig.url);
    await c.signIn('tech', rig.passwords.tech!);
    type View = { rounds: { allowance: string; round: string; complete: boolean; counts: Record<string, number> }[]; attention: unknown[] };
    const done = (await eventually(
      async () => {
        const v = (await c.json<View>('GET', '/api/allowances')).body;
        return v.rounds[0]?.complete ? v : undefined;
      },
      'the round complete',
      20_000,
    ))!;
    expect(done.rounds[0]).toMatchObject({ allowance: 'dorm-free', round: 'r1', counts: { applied: 3, 'needs-attention': 0 } });
    expect(done.attention).toEqual([]);
    const r = await c.json<{ status: string; error: { message: string } }>('POST', '/api/allowances/resolve', {
      requestId: 'web-resolve-1',
      allowance: 'dorm-free',
      term: 't1',
      round: 'r1',
      meter: 'room-101',
      action: 'retry',
    });
    expect(r.status).toBe(422);
    expect(r.body.status).toBe('rejected');
    expect(r.body.error.message).toMatch(/room-101/);
    const admin = new ConsoleClient(rig.url);
    await admin.signIn('admin', rig.passwords.admin!);
    expect((await admin.request('POST', '/api/allowances/resolve', { requestId: 'web-resolve-2' })).status).toBe(403);
  });
});
