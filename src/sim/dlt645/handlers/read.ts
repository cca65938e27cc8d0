import {
  addressToBytes,
  allDataItems,
  diFromBytes,
  encodeTime,
  findDataItem,
  normalReply,
  readReplyData,
  type Frame,
} from '../../../../protocols/dlt645/index.js';
import { bcd, concat, hex2 } from '../bytes.js';
import { MAX_FREEZES } from '../energy.js';
import { ERR, errReply, okReply, supports, type MeterState } from '../meter-state.js';
import { blockMembers, defaultBytes, isBlockIdentifier } from '../registers.js';

/**
 * Reads: 0x11 read data, 0x12 follow-up frames, 0x13 read address (and the 1997 read and follow-up). A value
 * longer than one frame is cut into follow-up chunks the master asks for by SEQ (docs/reference/dlt645.md
 * § Follow-up frames). Block identifiers are the concatenation of their members.
 */
export class ReadHandler {
  #pending: { di: string; chunks: Uint8Array[]; next: number } | undefined;
  // The identifiers a meter has are fixed once it is built, so block expansions are computed once each.
  #candidates: string[] | undefined;
  readonly #blocks = new Map<string, string[]>();

  constructor(private readonly m: MeterState) {}

  /** 0x11 (2007, 4-byte DI) or 0x01 (1997, 2-byte DI). */
  read(req: Frame, diSize: number): Frame {
    const m = this.m;
    if (req.data.length < diSize) return errReply(m, req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, diSize));
    const value = this.valueOf(di);
    if (!value) return errReply(m, req, ERR.noData);
    const first = m.maxReplyData - diSize;
    if (value.length <= first) return okReply(m, req, readReplyData(di, value));
    // Follow-up frames carry DI + chunk (+ SEQ in 2007); the master asks for them with 0x12 SEQ 1, 2, ...
    const step = m.maxReplyData - diSize - (m.edition === '2007' ? 1 : 0);
    const chunks: Uint8Array[] = [];
    for (let p = first; p < value.length; p += step) chunks.push(value.slice(p, p + step));
    this.#pending = { di, chunks, next: 0 };
    return normalReply(req, m.address, readReplyData(di, value.subarray(0, first)), true);
  }

  /** 0x12: SEQ indexes the chunk, so a master that lost a follow-up reply can ask for the same SEQ again. */
  readFollowUp(req: Frame): Frame {
    const m = this.m;
    if (req.data.length < 5) return errReply(m, req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, 4));
    const seq = req.data[4]!;
    const pending = this.#pending;
    const chunk = pending?.di === di ? pending.chunks[seq - 1] : undefined;
    if (!chunk || !pending) return errReply(m, req, ERR.noData);
    return normalReply(req, m.address, readReplyData(di, chunk, seq), seq < pending.chunks.length);
  }

  /** 1997 follow-up (0x02): no SEQ, the next chunk each time. */
  readFollowUp1997(req: Frame): Frame {
    const m = this.m;
    if (req.data.length < 2) return errReply(m, req, ERR.other);
    const di = diFromBytes(req.data.subarray(0, 2));
    const p = this.#pending;
    const chunk = p?.di === di ? p.chunks[p.next] : undefined;
    if (!chunk || !p) return errReply(m, req, ERR.noData);
    p.next++;
    return normalReply(req, m.address, readReplyData(di, chunk), p.next < p.chunks.length);
  }

  /** 0x13: the meter's address, to a wildcard request. */
  readAddress(req: Frame): Frame {
    return normalReply(req, this.m.address, addressToBytes(this.m.address));
  }

  /** The bytes a read of `di` returns, or undefined for "no requested data". */
  valueOf(di: string): Uint8Array | undefined {
    const m = this.m;
    if (!supports(m, di)) return undefined;
    const live = m.live.get(di);
    if (live) return live.read();
    const family = this.#familyValue(di);
    if (family !== null) return family;
    const stored = m.registers.get(di);
    if (stored) return stored;
    const item = findDataItem(di, m.edition);
    if (isBlockIdentifier(di, m.edition)) return m.edition === '2007' && !item ? undefined : this.#blockValue(di);
    return item ? defaultBytes(item.format) : undefined;
  }

  #blockValue(di: string): Uint8Array | undefined {
    if (!this.m.blockReads) return undefined;
    const parts: Uint8Array[] = [];
    let members = this.#blocks.get(di);
    if (!members) {
      members = blockMembers(di, this.#candidateIds(), this.m.edition);
      this.#blocks.set(di, members);
    }
    for (const member of members) {
      const v = this.valueOf(member);
      if (v) parts.push(v);
    }
    return parts.length > 0 ? concat(parts) : undefined;
  }

  /** Every identifier this meter might answer, for expanding blocks. */
  #candidateIds(): string[] {
    if (!this.#candidates) {
      const m = this.m;
      const set = new Set<string>([...allDataItems(m.edition).map((i) => i.di), ...m.registers.keys(), ...m.live.keys()]);
      if (m.wallet) for (let f = 1; f <= 6; f++) for (let n = 1; n <= 10; n++) set.add(`03330${f}${hex2(n)}`);
      this.#candidates = [...set];
    }
    return this.#candidates;
  }

  /** Purchase records and daily freezes, generated from state; null when `di` is not one of them. */
  #familyValue(di: string): Uint8Array | undefined | null {
    const m = this.m;
    if (m.edition !== '2007') return null;
    const n = parseInt(di.slice(6, 8), 16);
    const purchase = /^0333(0[1-6])/.exec(di);
    if (purchase && n >= 1 && n <= 10 && m.wallet) {
      const r = m.wallet.records[n - 1];
      switch (purchase[1]) {
        case '01':
          return r ? encodeTime('YYMMDDhhmm', r.at) : new Uint8Array(5).fill(0xff);
        case '02':
          // A meter seeded with a purchase count has had that many purchases, even if their records were not seeded.
          return bcd((r ? r.countAfter : n === 1 ? m.wallet.purchaseCount : 0) % 10_000, 2);
        case '03':
          return bcd(r?.amount ?? 0, 4);
        case '04':
          return bcd(r?.balanceBefore ?? 0, 4);
        case '05':
          return bcd(r?.balanceAfter ?? 0, 4);
        default:
          return bcd(r?.cumulative ?? 0, 4);
      }
    }
    if (/^05060[0-2]/.test(di) && n >= 1 && n <= MAX_FREEZES) {
      const f = m.energy.freezes[n - 1];
      if (!f) return undefined;
      if (di.startsWith('050600')) return encodeTime('YYMMDDhhmm', f.at);
      return concat((di.startsWith('050601') ? f.energy : f.exported).map((e) => bcd(e, 4)));
    }
    return null;
  }
}
