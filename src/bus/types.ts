/**
 * Who is waiting for the bus, in the order they are served: a technician's command first, routine polls last;
 * `batch` is the rows of a scheduled batch (allowances), behind every single request and ahead of polling.
 */
export type Priority = 'operator' | 'credit' | 'alarm' | 'batch' | 'poll';

/** Every priority, highest first. */
export const PRIORITIES: readonly Priority[] = ['operator', 'credit', 'alarm', 'batch', 'poll'];

/** How bytes are framed on the RS-485 line; DL/T 645 meters are usually 2400 8E1. */
export interface LineSettings {
  baudRate: number;
  dataBits: 7 | 8;
  parity: 'none' | 'even' | 'odd';
  stopBits: 1 | 2;
}

/** A streaming frame decoder: feed chunks of any size, get complete frames and discarded byte runs. Never throws. */
export interface StreamDecoder<F> {
  push(chunk: Uint8Array): DecodeEvent<F>[];
  reset(): void;
}

export type DecodeEvent<F> = { kind: 'frame'; frame: F; raw: Uint8Array } | { kind: 'discard'; bytes: Uint8Array; reason: string };

/** `2400 8E1`: the notation printed on meter nameplates and in converter manuals. */
export function describeLine(line: LineSettings): string {
  const parity = line.parity === 'none' ? 'N' : line.parity === 'even' ? 'E' : 'O';
  return `${line.baudRate} ${line.dataBits}${parity}${line.stopBits}`;
}
