/**
 * An example station consumer that never keeps a gap: it tracks the `seq` of each gateway's readings, and asks the
 * gateway to recall (补召) every gap that stays open longer than a few seconds (a message may just be late). Gaps come
 * from the broker side (a node lost with a subscriber's queue, a broker restarted without persistence); the gateway
 * still holds the readings in its SQLite history. docs/mqtt-api.md § recall describes the contract.
 *
 *   npx tsx scripts/station-recall.ts --url mqtt://broker:1883 [--gateway ID] [--from-seq 1] [--hmac-key-file F]
 *
 * Shared-subscription consumers ($share/group/…, MQTT 5) each see part of a stream: track the union of their `seq`
 * sets in one place (one tracker fed by all of them), and ask for a gap only when the union misses it.
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { commandSignature } from '../src/uplink/commands/signature.js';

export interface StationOptions {
  readonly url: string;
  readonly prefix?: string;
  /** Gateways to follow; default every gateway (`+`). */
  readonly gatewayIds?: readonly string[];
  readonly clientId?: string;
  readonly protocolVersion?: 4 | 5;
  /** The gateways' command key (commands.hmacKey); recall is refused unsigned unless the gateway allows it. */
  readonly hmacKey?: string;
  /** A gap older than this is recalled (default 3 s). */
  readonly gapAgeMs?: number;
  /** A recall not answered by readings within this is asked again (default 30 s). */
  readonly retryMs?: number;
  /** Track each gateway from this seq (default: the first one seen). */
  readonly fromSeq?: number;
  /** Most seq numbers one recall asks for (the gateway's uplink.recallMaxRange). */
  readonly maxRange?: number;
}

interface Stream {
  readonly seen: Set<number>;
  low: number;
  high: number;
  /** When each open gap (by its first seq) was first noticed, and when it was last asked for. */
  readonly gaps: Map<number, { noticedAt: number; askedAt?: number }>;
}

/** Tracks every gateway's readings by seq and recalls what is missing. */
export class RecallingStation {
  readonly recalls: { gatewayId: string; fromSeq: number; toSeq: number }[] = [];
  private readonly streams = new Map<string, Stream>();
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly prefix: string;
  readonly clientId: string;

  constructor(private readonly opts: StationOptions) {
    this.prefix = opts.prefix ?? 'meterd';
    this.clientId = opts.clientId ?? `station-${randomUUID().slice(0, 8)}`;
  }

  async start(): Promise<void> {
    this.client = await mqtt.connectAsync(this.opts.url, {
      clientId: this.clientId,
      protocolVersion: this.opts.protocolVersion ?? 4,
      clean: false,
      reconnectPeriod: 1000,
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    const ids = this.opts.gatewayIds ?? ['+'];
    await this.client.subscribeAsync(
      ids.map((id) => `${this.prefix}/${id}/meters/+/readings`),
      { qos: 1 },
    );
    this.timer = setInterval(() => this.askForGaps(Date.now()), 500);
  }

  /** Disconnects, keeping what was seen: `start()` again resumes the same persistent session. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.client?.endAsync();
    this.client = undefined;
  }

  /** The seq numbers of `gatewayId` missing between the first tracked and the newest seen, as inclusive ranges. */
  gaps(gatewayId: string): [number, number][] {
    const s = this.streams.get(gatewayId);
    if (!s) return [];
    const out: [number, number][] = [];
    let start: number | undefined;
    for (let seq = s.low; seq <= s.high + 1; seq++) {
      const missing = seq <= s.high && !s.seen.has(seq);
      if (missing && start === undefined) start = seq;
      if (!missing && start !== undefined) {
        out.push([start, seq - 1]);
        start = undefined;
      }
    }
    return out;
  }

  /** The gateways seen so far. */
  gatewayIds(): string[] {
    return [...this.streams.keys()];
  }

  /** How many distinct seq numbers of `gatewayId` arrived. */
  count(gatewayId: string): number {
    return this.streams.get(gatewayId)?.seen.size ?? 0;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const gatewayId = topic.slice(this.prefix.length + 1).split('/')[0]!;
    let seq: unknown;
    try {
      seq = (JSON.parse(payload.toString('utf8')) as { seq?: unknown }).seq;
    } catch {
      return;
    }
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return;
    let s = this.streams.get(gatewayId);
    if (!s) {
      const low = Math.min(this.opts.fromSeq ?? seq, seq);
      s = { seen: new Set(), low, high: low - 1, gaps: new Map() };
      this.streams.set(gatewayId, s);
    }
    if (seq < s.low) return;
    s.seen.add(seq);
    if (seq > s.high) s.high = seq;
  }

  private askForGaps(now: number): void {
    const gapAge = this.opts.gapAgeMs ?? 3000;
    const retry = this.opts.retryMs ?? 30_000;
    for (const [gatewayId, s] of this.streams) {
      const open = this.gaps(gatewayId);
      const firsts = new Set(open.map(([a]) => a));
      for (const key of s.gaps.keys()) if (!firsts.has(key)) s.gaps.delete(key);
      for (const [from, to] of open) {
        const g = s.gaps.get(from) ?? { noticedAt: now };
        s.gaps.set(from, g);
        if (now - g.noticedAt < gapAge) continue;
        if (g.askedAt !== undefined && now - g.askedAt < retry) continue;
        g.askedAt = now;
        const max = this.opts.maxRange ?? 10_000;
        for (let a = from; a <= to; a += max) this.ask(gatewayId, a, Math.min(to, a + max - 1));
      }
    }
  }

  private ask(gatewayId: string, fromSeq: number, toSeq: number): void {
    this.recalls.push({ gatewayId, fromSeq, toSeq });
    let request: Record<string, unknown> = { requestId: `recall-${randomUUID()}`, fromSeq, toSeq };
    if (this.opts.hmacKey !== undefined) {
      request = { ...request, ts: new Date().toISOString() };
      request = { ...request, signature: commandSignature(request, this.opts.hmacKey) };
    }
    this.client?.publish(`${this.prefix}/${gatewayId}/cmd/recall`, JSON.stringify(request), { qos: 1 });
  }
}

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const url = arg('--url');
  if (!url) {
    process.stderr.write('usage: station-recall --url mqtt://host:port [--gateway ID] [--from-seq N] [--hmac-key-file F]\n');
    process.exitCode = 2;
    return;
  }
  const keyFile = arg('--hmac-key-file');
  const gateway = arg('--gateway');
  const fromSeq = arg('--from-seq');
  const station = new RecallingStation({
    url,
    ...(gateway ? { gatewayIds: [gateway] } : {}),
    ...(fromSeq ? { fromSeq: Number(fromSeq) } : {}),
    ...(keyFile ? { hmacKey: readFileSync(keyFile, 'utf8').trim() } : {}),
  });
  await station.start();
  setInterval(() => {
    for (const id of station.gatewayIds())
      process.stdout.write(`${id}: ${station.count(id)} readings, gaps ${JSON.stringify(station.gaps(id))}\n`);
  }, 5000);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
