import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';

export interface ReopenOptions<T> {
  /** Stops the loop (the bus is closing). */
  readonly signal: AbortSignal;
  readonly firstDelayMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Waits before each attempt, e.g. for the previous connection to finish closing. */
  readonly settle: () => Promise<void>;
  /** One attempt to open the port; throws when it is still unavailable. */
  readonly open: (signal: AbortSignal) => Promise<T>;
  /** Undo an open that raced with the stop signal. */
  readonly discard: (opened: T) => Promise<void>;
  /** Told the reason of every failed attempt (the bus keeps it as its "down" reason). */
  readonly onFailure: (message: string) => void;
  readonly log: Logger;
}

/**
 * Reopens a lost port with capped exponential backoff until it opens or `signal` aborts. Resolves with what `open`
 * returned and how many attempts failed before, or undefined when stopped. Logs one warning per distinct failure:
 * the same failure every 5 s for hours is debug noise.
 */
export async function reopenWithBackoff<T>(o: ReopenOptions<T>): Promise<{ opened: T; failures: number } | undefined> {
  let delay = o.firstDelayMs;
  let failures = 0;
  let lastFailure = '';
  while (!o.signal.aborted) {
    await o.settle();
    if (delay > 0) {
      try {
        await sleep(delay, undefined, { signal: o.signal });
      } catch {
        return undefined;
      }
    }
    delay = Math.min(o.maxMs, Math.max(o.minMs, delay * 2));
    let opened: T;
    try {
      opened = await o.open(o.signal);
    } catch (err) {
      if (o.signal.aborted) return undefined;
      failures++;
      const message = err instanceof Error ? err.message : String(err);
      if (message !== lastFailure)
        o.log.warn({ event: 'reopen-failed', code: (err as { code?: string }).code, err, failures }, 'port still unavailable');
      else o.log.debug({ event: 'reopen-failed', failures }, 'port still unavailable');
      lastFailure = message;
      o.onFailure(message);
      continue;
    }
    if (o.signal.aborted) {
      await o.discard(opened);
      return undefined;
    }
    return { opened, failures };
  }
  return undefined;
}

/** The bus's "up" reason after a reopen. */
export function openedReason(failures: number): string {
  return failures === 0 ? 'opened' : `opened after ${failures} failed attempt${failures === 1 ? '' : 's'}`;
}
