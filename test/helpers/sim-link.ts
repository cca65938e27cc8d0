import { Dlt645Decoder, encodeFrame, type Address, type Frame } from '../../protocols/dlt645/index.js';
import { BusError } from '../../src/bus/errors.js';
import type { FrameRequest } from '../../src/bus/frame-bus.js';
import type { Clock } from '../../src/clock.js';
import type { FrameLink } from '../../src/devices/dlt645-meter.js';
import type { SimulatedMeter } from '../../src/sim/dlt645/index.js';

/**
 * A bus without a wire, for tests that compress days into seconds: the real codec on both sides (the driver's
 * encoded bytes are decoded, the simulated meters answer, their reply is encoded and decoded again), but no port and
 * no timers. A meter in `silent` does not answer (the request times out at once, as BUS_TIMEOUT).
 */
export class SimLink implements FrameLink {
  readonly silent = new Set<Address>();
  /** Every frame that went on the "wire", for assertions (broadcasts included). */
  readonly sent: Frame[] = [];

  constructor(
    private readonly meters: readonly SimulatedMeter[],
    private readonly clock: Clock,
  ) {}

  request(_priority: string, req: FrameRequest<Frame>): Promise<Frame | undefined> {
    return Promise.resolve().then(() => this.exchange(req));
  }

  session<T>(_priority: string, fn: (tx: { request(req: FrameRequest<Frame>): Promise<Frame | undefined> }) => Promise<T>): Promise<T> {
    return fn({ request: (req) => Promise.resolve().then(() => this.exchange(req)) });
  }

  private exchange(req: FrameRequest<Frame>): Frame | undefined {
    const [request] = decodeAll(req.bytes);
    if (!request) throw new Error('the driver sent bytes that are not a frame');
    this.sent.push(request);
    const now = this.clock.now();
    const replies: Frame[] = [];
    for (const m of this.meters) {
      if (!m.hears(request.address)) continue;
      if (this.silent.has(m.address)) {
        m.advance(now);
        continue;
      }
      for (const reply of m.handle(request, now)) replies.push(...decodeAll(encodeFrame(reply)));
    }
    if (!req.match) return undefined;
    const reply = replies.find((f) => req.match!(f));
    if (!reply) throw new BusError('BUS_TIMEOUT', `no reply to ${req.label ?? 'request'} (simulated meter silent)`);
    return reply;
  }
}

function decodeAll(bytes: Uint8Array): Frame[] {
  return new Dlt645Decoder().push(bytes).flatMap((e) => (e.kind === 'frame' ? [e.frame] : []));
}
