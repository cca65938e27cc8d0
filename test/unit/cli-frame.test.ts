import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

async function run(args: string[], stdin = ''): Promise<unknown[]> {
  const lines: string[] = [];
  const program = await buildProgram({ stdin: Readable.from([Buffer.from(stdin)]), out: (l) => lines.push(l) });
  await program.parseAsync(args, { from: 'user' });
  return lines.map((l) => JSON.parse(l));
}

describe('meterd frame decode', () => {
  it('prints address, function, DI, value and unit of a read reply as JSON', async () => {
    const [d] = await run(['frame', 'decode', '68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16']);
    expect(d).toMatchObject({
      address: '123456789012',
      control: 0x91,
      function: 'readData',
      direction: 'reply',
      abnormal: false,
      di: '00010000',
      data: '78563412',
      value: 123456.78,
      unit: 'kWh',
    });
  });

  it('names the errors of an abnormal reply', async () => {
    const [d] = await run(['frame', 'decode', '68', '12', '90', '78', '56', '34', '12', '68', 'D4', '01', '37', '92', '16']);
    expect(d).toMatchObject({ abnormal: true, errors: ['password-error'] });
  });

  it('fails with the checksum error code on a corrupted frame', async () => {
    await expect(run(['frame', 'decode', '68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CD 16'])).rejects.toMatchObject({
      code: 'DLT645_BAD_CHECKSUM',
    });
  });

  it('--stream prints one line per frame and per discarded byte run from a hex capture', async () => {
    const capture = 'FE FE 68 12 90 78 56 34 12 68 D1 01 35 8D 16\n01 02\n68 12 90 78 56 34 12 68 91 08 33 33\n34 33 AB 89 67 45 CC 16\n';
    const out = await run(['frame', 'decode', '--stream'], capture);
    expect(out).toEqual([
      expect.objectContaining({ function: 'readData', abnormal: true }),
      { discarded: '0102', bytes: 2, reason: 'noise' },
      expect.objectContaining({ di: '00010000', value: 123456.78 }),
    ]);
  });
});
