import { CARD_FAMILIES, type CardFamily } from '../../../protocols/card/index.js';
import { silentLogger, type Logger } from '../../log.js';
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

/** A refusal of the simulator's flags, printed as one line. */
export class EncoderSimUsageError extends Error {
  readonly code = 'SIM_USAGE';
  readonly exitCode = 2;
}

const CARD_CHOICES = ['none', 'blank', 'ours', 'foreign', 'cpu'] as const;

/** Runs the encoder simulator until stopped, after one line saying where it listens and which card is in the slot. */
export async function runEncoderSimCommand(options: EncoderSimCommandOptions, io: EncoderSimCommandIo): Promise<void> {
  if ((options.pty === undefined) === (options.tcp === undefined))
    throw new EncoderSimUsageError('give exactly one of --pty PATH or --tcp PORT');
  const framing = (options.framing ?? 'star') as CardFamily;
  if (!CARD_FAMILIES.includes(framing)) throw new EncoderSimUsageError(`--framing is star or stx, not "${options.framing}"`);
  const cardKind = options.card ?? 'ours';
  if (!(CARD_CHOICES as readonly string[]).includes(cardKind))
    throw new EncoderSimUsageError(`--card is one of ${CARD_CHOICES.join(', ')}, not "${cardKind}"`);
  const tcpPort = options.tcp === undefined ? undefined : Number(options.tcp);
  if (tcpPort !== undefined && (!Number.isInteger(tcpPort) || tcpPort < 0 || tcpPort > 65535))
    throw new EncoderSimUsageError(`--tcp ${String(options.tcp)} is not a port number from 0 to 65535`);
  const meter = (options.meter ?? '000012345678').padStart(12, '0');
  if (!/^\d{12}$/.test(meter)) throw new EncoderSimUsageError(`--meter must be up to 12 digits, not "${options.meter}"`);
  const count = Number(options.count ?? 0);
  if (!Number.isInteger(count) || count < 0)
    throw new EncoderSimUsageError(`--count must be a whole number ≥ 0, not "${String(options.count)}"`);

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
    ...(options.pty !== undefined ? { port: options.pty } : {}),
    ...(tcpPort !== undefined ? { tcpPort } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(card ? { card } : {}),
    ...(options.eject === false ? { canEject: false } : {}),
  });
  const where = options.pty !== undefined ? `pty ${options.pty}` : `tcp ${options.host ?? '127.0.0.1'}:${sim.tcpPort}`;
  io.out(`${framing} encoder simulator on ${where} with ${what} in the slot`);
  await untilStopped(io.signal);
  await sim.close();
}

function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  if (signal)
    return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
