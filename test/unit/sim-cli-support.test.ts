import { describe, expect, it } from 'vitest';
import { describeListen, parseListen, ptyPairCommand, SimUsageError, untilStopped, wholeNumber } from '../../src/sim/cli-support.js';

describe('simulator command helpers', () => {
  it('take exactly one of --pty and --tcp, naming them in the order the command lists them', () => {
    expect(parseListen({ pty: '/tmp/ttyB' })).toEqual({ kind: 'pty', path: '/tmp/ttyB' });
    expect(parseListen({ tcp: '8899' })).toEqual({ kind: 'tcp', port: 8899, host: '127.0.0.1' });
    expect(parseListen({ tcp: 0, host: '0.0.0.0' })).toEqual({ kind: 'tcp', port: 0, host: '0.0.0.0' });
    expect(() => parseListen({})).toThrow('give exactly one of --pty PATH or --tcp PORT');
    expect(() => parseListen({ pty: '/tmp/x', tcp: 1 }, 'tcp-first')).toThrow('give exactly one of --tcp PORT or --pty PATH');
    expect(() => parseListen({ tcp: '70000' })).toThrow('--tcp 70000 is not a whole number from 0 to 65535');
  });

  it('refuse bad numbers with SIM_USAGE and exit code 2', () => {
    expect(wholeNumber('12', '--count', 1, 100)).toBe(12);
    for (const bad of ['0x10', '1.5', '', 'ten', '101']) {
      let caught: unknown;
      try {
        wholeNumber(bad, '--count', 1, 100);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(SimUsageError);
      expect(caught).toMatchObject({ code: 'SIM_USAGE', exitCode: 2, message: `--count ${bad} is not a whole number from 1 to 100` });
    }
  });

  it('say where they serve, with the port actually bound, and how to make a pty pair', () => {
    expect(describeListen({ kind: 'pty', path: '/tmp/ttyB' })).toBe('pty /tmp/ttyB');
    expect(describeListen({ kind: 'tcp', port: 0, host: '127.0.0.1' }, 40123)).toBe('tcp 127.0.0.1:40123');
    expect(ptyPairCommand('/tmp/ttyA', '/tmp/ttyB')).toBe('socat -d -d pty,raw,echo=0,link=/tmp/ttyA pty,raw,echo=0,link=/tmp/ttyB');
  });

  it('stop on the signal given, leaving no process handler behind', async () => {
    const before = process.listenerCount('SIGTERM');
    const stop = new AbortController();
    const stopped = untilStopped(stop.signal);
    stop.abort();
    await expect(stopped).resolves.toBeUndefined();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});
