import { silentLogger, type Logger } from '../../log.js';
import type { CardFamily } from '../../../protocols/card/index.js';
import type { VirtualCard } from './card.js';
import { SimulatedEncoder } from './encoder.js';

export {
  cards,
  insertIntoMeter,
  VirtualCpuCard,
  VirtualSle4442,
  type MeterInsertion,
  type OurCardSpec,
  type VirtualCard,
  type VirtualCpuCardOptions,
  type VirtualSle4442Options,
} from './card.js';
export { SimulatedEncoder, type AttachedEncoder, type RemovalPlan, type SimulatedEncoderOptions } from './encoder.js';

export interface EncoderSimulatorOptions {
  readonly framing: CardFamily;
  /** Serial device to serve, normally one end of a pty pair (meterd opens the other). */
  readonly port?: string;
  /** TCP port to listen on (0 = any free port). */
  readonly tcpPort?: number;
  readonly host?: string;
  /** A card in the slot from the start. */
  readonly card?: VirtualCard;
  readonly canEject?: boolean;
  readonly logger?: Logger;
}

/**
 * Starts a simulated counter encoder on a pty path and/or a TCP port.
 *
 * @example
 * const sim = await startEncoderSimulator({ framing: 'stx', port: pty.b, card: cards.blank() });
 * sim.encoder.remove();
 * await sim.close();
 */
export async function startEncoderSimulator(
  options: EncoderSimulatorOptions,
): Promise<{ encoder: SimulatedEncoder; tcpPort?: number; close(): Promise<void> }> {
  if (options.port === undefined && options.tcpPort === undefined) throw new TypeError('give a pty path (port) or a tcpPort to serve');
  const encoder = new SimulatedEncoder({
    framing: options.framing,
    logger: options.logger ?? silentLogger,
    ...(options.canEject !== undefined ? { canEject: options.canEject } : {}),
  });
  if (options.card) encoder.insert(options.card);
  try {
    let tcpPort: number | undefined;
    if (options.port !== undefined) await encoder.attach(options.port);
    if (options.tcpPort !== undefined) {
      const a = await encoder.attach(options.tcpPort, options.host !== undefined ? { host: options.host } : {});
      if (a.kind === 'tcp') tcpPort = a.port;
    }
    return { encoder, ...(tcpPort !== undefined ? { tcpPort } : {}), close: () => encoder.close() };
  } catch (err) {
    await encoder.close();
    throw err;
  }
}
