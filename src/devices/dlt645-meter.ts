import {
  broadcastTime,
  decodeValue,
  describeControl,
  encodeFrame,
  findDataItem,
  formatSize,
  isReplyTo,
  parseReadReply,
  readAddress,
  readData,
  readData1997,
  readFollowUp,
  readFollowUp1997,
  remoteControl,
  checkReply,
  type Address,
  type DataItem,
  type DataValue,
  type Edition,
  type Frame,
  type MeterTime,
  type Password,
  type RemoteAction,
} from '../../protocols/dlt645/index.js';
import { systemClock, type Clock } from '../clock.js';
import { silentLogger, type Logger } from '../log.js';
import { MeterError } from './errors.js';

import type { Priority } from '../bus/types.js';

export type { Priority };

export interface FrameRequest {
  bytes: Uint8Array;
  match?: (frame: Frame) => boolean;
  timeoutMs: number;
  retries: number;
  settleMs?: number;
  label?: string;
  signal?: AbortSignal;
}

/** What a DL/T 645 driver needs from a bus: one request at a time, and a held session for multi-frame work. */
export interface FrameLink {
  request(priority: Priority, req: FrameRequest): Promise<Frame | undefined>;
  session<T>(priority: Priority, fn: (tx: { request(req: FrameRequest): Promise<Frame | undefined> }) => Promise<T>): Promise<T>;
}

export interface ReadResult {
  readonly di: string;
  readonly item?: DataItem;
  readonly value: DataValue;
  /** Value bytes as received (after −33H), all follow-up frames joined. */
  readonly raw: Uint8Array;
}

export interface Dlt645MeterOptions {
  link: FrameLink;
  address: Address;
  edition?: Edition;
  /** Reply deadline for one attempt; the bus layer derives a default from the line speed. */
  timeoutMs: number;
  /** Retries for reads only: writes and relay commands are never repeated blindly (docs/reference/dlt645.md § Timing and retries). */
  readRetries?: number;
  logger?: Logger;
  /** The gateway's wall clock, which the meter's clock is compared with; default the machine's. */
  clock?: Clock;
}

/** The standard's cap on follow-up frames is not given; 64 is what shixin08052 uses and far above real items. */
const MAX_FOLLOW_UPS = 64;
const PREAMBLE = 4;

/**
 * One DL/T 645 meter on a bus: turns identifiers and commands into frames and replies into typed values.
 * Owns no timers and no schedule; the poller and the services decide when to call it.
 */
export class Dlt645Meter {
  readonly address: Address;
  readonly edition: Edition;
  private readonly link: FrameLink;
  private readonly timeoutMs: number;
  private readonly readRetries: number;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(opts: Dlt645MeterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.link = opts.link;
    this.address = opts.address;
    this.edition = opts.edition ?? '2007';
    this.timeoutMs = opts.timeoutMs;
    this.readRetries = opts.readRetries ?? 2;
    this.log = (opts.logger ?? silentLogger).child({ meter: opts.address });
  }

  /** Read one identifier, following 0x12 follow-up frames when the meter has more (DL/T 645-2007 §7.3.1–7.3.2). */
  async read(di: string, opts: { priority?: Priority; signal?: AbortSignal } = {}): Promise<ReadResult> {
    const priority = opts.priority ?? 'operator';
    const key = di.toUpperCase();
    const item = findDataItem(key, this.edition);
    const raw = await this.link.session(priority, async (tx) => {
      const first = this.edition === '2007' ? readData(this.address, key) : readData1997(this.address, key);
      let reply = await this.exchange(tx, first, this.readRetries, opts.signal, `read ${key}`);
      let parsed = this.readReplyOf(reply, key);
      const parts: Uint8Array[] = [parsed.value];
      const fullSize = item ? formatSize(item.format) : undefined;
      let seq = 0;
      // State Grid 2013 meters set the follow-up bit on complete replies to flag pending events (docs/reference/dlt645.md § Follow-up frames).
      while (parsed.more && !(fullSize !== undefined && total(parts) >= fullSize)) {
        if (++seq > MAX_FOLLOW_UPS)
          throw new MeterError('DLT645_BAD_REPLY', `meter ${this.address} sent more than ${MAX_FOLLOW_UPS} follow-up frames for ${key}`);
        const next = this.edition === '2007' ? readFollowUp(this.address, key, seq) : readFollowUp1997(this.address, key);
        reply = await this.exchange(tx, next, this.readRetries, opts.signal, `read ${key} follow-up ${seq}`);
        parsed = this.readReplyOf(reply, key);
        parts.push(parsed.value);
      }
      return join(parts);
    });
    if (!item) return { di: key, value: { kind: 'raw', hex: Buffer.from(raw).toString('hex').toUpperCase() }, raw };
    const value = decodeValue(item.format, raw);
    if (!value.ok) throw new MeterError('DLT645_BAD_VALUE', `meter ${this.address} ${key} (${item.name}): ${value.error.message}`);
    return { di: key, item, value: value.value, raw };
  }

  /**
   * Remote trip / close / alarm / keep-power (0x1C), sent once: a lost acknowledgement is settled by reading
   * status word 3, never by sending the command again.
   */
  async remoteControl(
    action: RemoteAction,
    auth: { password: Password; operator: string; validUntil: MeterTime },
    opts: { priority?: Priority; signal?: AbortSignal } = {},
  ): Promise<void> {
    const frame = remoteControl(this.address, auth.password, auth.operator, action, auth.validUntil);
    const reply = await this.link.request(opts.priority ?? 'operator', this.request(frame, 0, opts.signal, `remote control ${action}`));
    this.checkAck(reply!, frame);
  }

  /**
   * Send one command frame to this meter, once (writes, loads and controls are never repeated blindly), and return
   * the meter's reply frame, normal or abnormal. A silent meter rejects with the bus's BUS_TIMEOUT.
   */
  async command(frame: Frame, opts: { priority?: Priority; signal?: AbortSignal; label?: string } = {}): Promise<Frame> {
    const reply = await this.link.request(
      opts.priority ?? 'operator',
      this.request(frame, 0, opts.signal, opts.label ?? `command 0x${frame.control.toString(16)}`),
    );
    if (!reply) throw new MeterError('DLT645_BAD_REPLY', `no reply frame for ${opts.label ?? 'command'}`);
    return reply;
  }

  /** Meter clock minus gateway clock in ms, from 04000101 (date) and 04000102 (time), both in the meter's local time. */
  async clockSkewMs(opts: { priority?: Priority; signal?: AbortSignal } = {}): Promise<{ skewMs: number; meterClock: string }> {
    const date = await this.read('04000101', opts);
    const time = await this.read('04000102', opts);
    const now = this.clock.now();
    if (date.value.kind !== 'time' || time.value.kind !== 'time')
      throw new MeterError('DLT645_BAD_VALUE', `meter ${this.address}: its clock is not available`);
    const meterClock = `${date.value.value}T${time.value.value}`;
    return { skewMs: new Date(meterClock).getTime() - now, meterClock };
  }

  private checkAck(reply: Frame, request: Frame): void {
    const r = checkReply(reply, request.control, this.edition);
    if (!r.ok) throw new MeterError(r.error.code, r.error.message, 'errors' in r.error ? r.error.errors : []);
  }

  private async exchange(
    tx: { request(req: FrameRequest): Promise<Frame | undefined> },
    frame: Frame,
    retries: number,
    signal: AbortSignal | undefined,
    label: string,
  ): Promise<Frame> {
    const reply = await tx.request(this.request(frame, retries, signal, label));
    if (!reply) throw new MeterError('DLT645_BAD_REPLY', `no reply frame for ${label}`);
    return reply;
  }

  private request(frame: Frame, retries: number, signal: AbortSignal | undefined, label: string): FrameRequest {
    return {
      bytes: encodeFrame(frame, { preamble: PREAMBLE }),
      match: (reply) => isReplyTo(frame, reply, this.edition),
      timeoutMs: this.timeoutMs,
      retries,
      label: `${this.address} ${label}`,
      signal,
    };
  }

  private readReplyOf(reply: Frame, di: string): { value: Uint8Array; more: boolean } {
    const r = parseReadReply(reply, this.edition);
    if (!r.ok) {
      const c = describeControl(reply.control, this.edition);
      this.log.debug({ di, control: reply.control, fn: c.name }, 'read refused');
      throw new MeterError(
        r.error.code,
        r.error.code === 'DLT645_ABNORMAL' ? `${di}: ${r.error.message}` : r.error.message,
        'errors' in r.error ? r.error.errors : [],
      );
    }
    if (r.value.di !== di) throw new MeterError('DLT645_BAD_REPLY', `meter ${this.address} answered ${r.value.di} to a read of ${di}`);
    return r.value;
  }
}

/** Read the address of the only meter on the line (0x13 to AAAAAAAAAAAA): every meter that hears it answers. */
export async function readLoneAddress(link: FrameLink, timeoutMs: number, signal?: AbortSignal): Promise<Address> {
  const frame = readAddress();
  const reply = await link.request('operator', {
    bytes: encodeFrame(frame, { preamble: PREAMBLE }),
    match: (f) => isReplyTo(frame, f),
    timeoutMs,
    retries: 1,
    label: 'read address',
    signal,
  });
  const r = checkReply(reply!, frame.control);
  if (!r.ok) throw new MeterError(r.error.code, r.error.message);
  return reply!.address;
}

/** Broadcast the time (0x08 to 999999999999): no meter answers, so the bus is held while they process it. */
export async function sendBroadcastTime(link: FrameLink, time: MeterTime, signal?: AbortSignal): Promise<void> {
  await link.request('operator', {
    bytes: encodeFrame(broadcastTime(time), { preamble: PREAMBLE }),
    timeoutMs: 0,
    retries: 0,
    settleMs: 500,
    label: 'broadcast time',
    signal,
  });
}

const total = (parts: Uint8Array[]): number => parts.reduce((n, p) => n + p.length, 0);
function join(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total(parts));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
