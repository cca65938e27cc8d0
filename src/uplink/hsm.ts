import { randomUUID } from 'node:crypto';
import { silentLogger, type Logger } from '../log.js';
import type { EncryptionMachine, IdentityData, RechargeMacInput } from '../devices/encryption-machine.js';
import { MeterdError } from '../errors.js';
import type { InboundMessage, MqttSession, Subscription } from './session.js';

export type EncryptionMachineErrorCode =
  /** The gateway stopped, or the caller aborted, while the request was out. */
  | 'HSM_STOPPED'
  | 'HSM_ABORTED'
  | 'HSM_TIMEOUT'
  /** The request could not be published. */
  | 'HSM_UNREACHABLE'
  /** The machine answered with an error. */
  | 'HSM_REFUSED'
  /** An answer without the bytes it must carry. */
  | 'HSM_BAD_REPLY';

export class EncryptionMachineError extends MeterdError<EncryptionMachineErrorCode> {
  override readonly name = 'EncryptionMachineError';
}

export interface MqttEncryptionMachineOptions {
  /** How long one answer may take before the request is given up. Default 60 s (inside the meter's 5-minute window). */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

interface Pending {
  readonly op: string;
  resolve(reply: Record<string, unknown>): void;
  reject(err: Error): void;
}

/**
 * The station's encryption machine reached over MQTT (docs/mqtt-api.md "Encryption machine"): each question is a
 * QoS 1 publish on `<prefix>/<gatewayId>/hsm/request` with a fresh `requestId`; the answer arrives on
 * `<prefix>/<gatewayId>/hsm/reply` carrying the same `requestId`. Requests are published directly, not through the
 * outbox: an answer is only useful inside the meter's authentication window, so a request that cannot go out now
 * fails now instead of waiting in a queue. A reply nobody waits for any more (late, unknown id) is dropped.
 */
export class MqttEncryptionMachine implements EncryptionMachine {
  private readonly pending = new Map<string, Pending>();
  private readonly log: Logger;
  private subscription: Promise<Subscription> | undefined;

  constructor(
    private readonly session: MqttSession,
    private readonly options: MqttEncryptionMachineOptions = {},
  ) {
    this.log = (options.logger ?? silentLogger).child({ component: 'hsm' });
  }

  get requestTopic(): string {
    return this.session.topics.absolute('hsm/request');
  }

  get replyTopic(): string {
    return this.session.topics.absolute('hsm/reply');
  }

  /** Subscribe to the reply topic (done by the first request when not called). */
  start(): Promise<Subscription> {
    this.subscription ??= this.session.subscribe(this.replyTopic, (m) => this.onReply(m), { qos: 1 });
    this.subscription.catch(() => (this.subscription = undefined));
    return this.subscription;
  }

  async stop(): Promise<void> {
    for (const [id, p] of this.pending)
      p.reject(new EncryptionMachineError('HSM_STOPPED', `request ${id} (${p.op}) abandoned: the gateway is stopping`));
    this.pending.clear();
    const s = this.subscription;
    this.subscription = undefined;
    if (s) await (await s).unsubscribe().catch(() => undefined);
  }

  async identity(meter: { readonly address: string; readonly meterNumber: string }, signal?: AbortSignal): Promise<IdentityData> {
    const r = await this.request('identity', { address: meter.address, meterNumber: meter.meterNumber }, signal);
    return { ciphertext: hexField(r, 'ciphertext', 8), random: hexField(r, 'random', 8), diversifier: hexField(r, 'diversifier', 8) };
  }

  async rechargeMacs(input: RechargeMacInput, signal?: AbortSignal): Promise<{ mac1: string; mac2: string }> {
    const { opening, ...fields } = input;
    const r = await this.request(opening ? 'opening-macs' : 'recharge-macs', fields, signal);
    return { mac1: hexField(r, 'mac1', 4), mac2: hexField(r, 'mac2', 4) };
  }

  private async request(
    op: 'identity' | 'recharge-macs' | 'opening-macs',
    body: Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<Record<string, unknown>> {
    signal?.throwIfAborted();
    await this.start();
    const requestId = randomUUID();
    const timeoutMs = this.options.timeoutMs ?? 60_000;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(requestId);
      };
      const onAbort = () => {
        done();
        reject(
          signal?.reason instanceof Error
            ? signal.reason
            : new EncryptionMachineError('HSM_ABORTED', `request ${requestId} (${op}) aborted`),
        );
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new EncryptionMachineError(
            'HSM_TIMEOUT',
            `the encryption machine did not answer ${op} request ${requestId} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(requestId, {
        op,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      this.session.publish(this.requestTopic, JSON.stringify({ requestId, op, ...body }), { qos: 1 }).catch((err: unknown) => {
        this.pending
          .get(requestId)
          ?.reject(new EncryptionMachineError('HSM_UNREACHABLE', `could not send ${op} request ${requestId}: ${(err as Error).message}`));
      });
    });
  }

  private onReply(m: InboundMessage): void {
    let reply: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(m.payload.toString('utf8'));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
      reply = parsed as Record<string, unknown>;
    } catch (err) {
      this.log.warn({ topic: m.topic, err: (err as Error).message }, 'encryption machine reply is not a JSON object; dropped');
      return;
    }
    const id = reply.requestId;
    const p = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (!p) {
      this.log.warn({ requestId: id }, 'encryption machine reply for no waiting request (late or unknown); dropped');
      return;
    }
    const error = reply.error as { code?: unknown; message?: unknown } | undefined;
    if (error && typeof error === 'object') {
      p.reject(
        new EncryptionMachineError(
          'HSM_REFUSED',
          `the encryption machine refused ${p.op}: ${String(error.code ?? '')} ${String(error.message ?? '')}`.trim(),
        ),
      );
      return;
    }
    p.resolve(reply);
  }
}

function hexField(r: Record<string, unknown>, name: string, bytes: number): string {
  const v = r[name];
  if (typeof v !== 'string' || !new RegExp(`^[0-9A-Fa-f]{${bytes * 2}}$`).test(v)) {
    throw new EncryptionMachineError(
      'HSM_BAD_REPLY',
      `the encryption machine's ${name} is not ${bytes} bytes of hex (${JSON.stringify(v)})`,
    );
  }
  return v.toUpperCase();
}
