import { CARD_FAMILIES, type CardFamily } from '../../../protocols/card/index.js';
import { silentLogger, type Logger } from '../../log.js';
import { describeListen, listenOptions, parseListen, serveUntilStopped, SimUsageError } from '../cli-support.js';
import { loadCardLayout } from '../../profiles/card-layout.js';
import { cards, type VirtualCard } from './card.js';
import { startEncoderSimulator } from './index.js';

/** Flags of `meterd sim encoder (--pty PATH | --tcp PORT) [--framing star|stx] [--card KIND] [--meter ID] [--count N]`. */
export interface EncoderSimCommandOptions {
  readonly pty?: string;
  readonly tcp?: string | number;
  readonly host?: string;
  readonly framing?: string;
  /** none | blank | ours | foreign | cpu. Default ours. */
  readonly card?: string;
  readonly layout?: string;
  /** Meter number of an `ours` card. */
  readonly meter?: string;
  /** Purchase count on an `ours` card; the meter write-back shows the same count (the purchase was loaded). */
  readonly count?: string | number;
  readonly eject?: boolean;
}

export interface EncoderSimCommandIo {
  readonly out: (line: string) => void;
  readonly logger?: Logger;
  /** Stop when aborted. Default: SIGINT or SIGTERM. */
  readonly signal?: AbortSignal;
}

/** A refusal of the simulator's flags: the one shape all simulator commands share. */
export { SimUsageError as EncoderSimUsageError } from '../cli-support.js';

const CARD_CHOICES = ['none', 'blank', 'ours', 'foreign', 'cpu'] as const;

/** Runs the encoder simulator until stopped, after one line saying where it listens and which card is in the slot. */
export async function runEncoderSimCommand(options: EncoderSimCommandOptions, io: EncoderSimCommandIo): Promise<void> {
  const listen = parseListen(options, 'pty-first');
  const framing = (options.framing ?? 'star') as CardFamily;
  if (!CARD_FAMILIES.includes(framing)) throw new SimUsageError(`--framing is star or stx, not "${options.framing}"`);
  const cardKind = options.card ?? 'ours';
  if (!(CARD_CHOICES as readonly string[]).includes(cardKind))
    throw new SimUsageError(`--card is one of ${CARD_CHOICES.join(', ')}, not "${cardKind}"`);
  const meter = (options.meter ?? '000012345678').padStart(12, '0');
  if (!/^\d{12}$/.test(meter)) throw new SimUsageError(`--meter must be up to 12 digits, not "${options.meter}"`);
  const count = Number(options.count ?? 0);
  if (!Number.isInteger(count) || count < 0) throw new SimUsageError(`--count must be a whole number ≥ 0, not "${String(options.count)}"`);

  let card: VirtualCard | undefined;
  let what = 'no card';
  if (cardKind === 'ours') {
    const layout = loadCardLayout(options.layout ?? 'sle4442-dorm');
    card = cards.ours(layout, {
      meterNumber: meter,
      purchaseCount: count,
      purchaseAmount: count > 0 ? 1000 : 0,
      ...(count > 0 ? { writeBack: { balance: 500, purchaseCount: count } } : {}),
    });
    what = `a ${layout.id} card for meter ${meter}, purchase count ${count}`;
  } else if (cardKind === 'blank') {
    card = cards.blank();
    what = 'a blank SLE4442';
  } else if (cardKind === 'foreign') {
    card = cards.foreign();
    what = "another system's SLE4442";
  } else if (cardKind === 'cpu') {
    card = cards.cpu();
    what = 'a CPU card (T=0)';
  }
  const sim = await startEncoderSimulator({
    framing,
    logger: io.logger ?? silentLogger,
    ...listenOptions(listen),
    ...(card ? { card } : {}),
    ...(options.eject === false ? { canEject: false } : {}),
  });
  await serveUntilStopped(sim, `${framing} encoder simulator on ${describeListen(listen, sim.tcpPort)} with ${what} in the slot`, io);
}
