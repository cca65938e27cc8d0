export interface BackoffOptions {
  /** First delay. Default 1000 ms. */
  readonly initialMs?: number;
  /** Delays stop doubling here (before jitter). Default 30,000 ms (config `mqtt.reconnectMaxDelay`). */
  readonly maxMs?: number;
  /** Each delay is spread uniformly over ±jitter of itself. Default 0.2. */
  readonly jitter?: number;
  /** Uniform in [0, 1); injected so tests can name the exact delays. Default Math.random. */
  readonly random?: () => number;
}

/**
 * Capped exponential backoff with jitter for reconnects: 1 s, 2 s, 4 s … 30 s, each ±20 %. The jitter spreads the
 * reconnects of a fleet of gateways after a broker restart, so they do not all knock at the same second.
 *
 * ```ts
 * const backoff = new ReconnectBackoff({ random: () => 0.5 });
 * backoff.next(); // 1000
 * backoff.next(); // 2000
 * backoff.reset();
 * ```
 */
export class ReconnectBackoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly jitter: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 1_000;
    this.maxMs = options.maxMs ?? 30_000;
    this.jitter = options.jitter ?? 0.2;
    this.#random = options.random ?? Math.random;
    if (!(this.initialMs > 0) || !Number.isFinite(this.initialMs)) throw new TypeError('initialMs is not greater than 0');
    if (!(this.maxMs >= this.initialMs) || !Number.isFinite(this.maxMs)) throw new TypeError('maxMs is not at least initialMs');
    if (!(this.jitter >= 0 && this.jitter < 1)) throw new TypeError('jitter is not in [0, 1)');
  }

  /** How many delays have been handed out since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt, in whole milliseconds. */
  next(): number {
    // Stop growing the exponent once capped, so it cannot overflow during a weeks-long outage.
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#attempt, 52));
    this.#attempt++;
    const spread = 1 + this.jitter * (2 * this.#random() - 1);
    return Math.round(base * spread);
  }

  /** After a connection that held: the next outage starts again from the first delay. */
  reset(): void {
    this.#attempt = 0;
  }
}
