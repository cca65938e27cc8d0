import { addressFromBytes, addressToBytes, type Address } from './address.js';
import { fail, ok, type Result } from './result.js';

/** A DL/T 645 frame with its data field already de-scrambled (−33H). Edition-neutral: 1997 and 2007 share the layout. */
export interface Frame {
  readonly address: Address;
  readonly control: number;
  /** Data field after subtracting 33H from every byte (DL/T 645-2007 §7.4). */
  readonly data: Uint8Array;
}

export const START = 0x68;
export const END = 0x16;
export const PREAMBLE = 0xfe;
/** Bytes in a frame around its data: 68 A0..A5 68 C L … CS 16. */
export const FRAME_OVERHEAD = 12;
export const MAX_DATA_LENGTH = 255;
/** The standard's limit for a read reply; longer frames are accepted but worth a warning (docs/reference/dlt645.md § Frame layout). */
export const STANDARD_READ_LIMIT = 200;

/** Modulo-256 sum from the first 68H to the last data byte (DL/T 645-2007 §7.5 checksum). */
export function checksum(bytes: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum += bytes[i]!;
  return sum & 0xff;
}

export interface EncodeOptions {
  /** Number of FE wake-up bytes before the frame; masters send 4 (DL/T 645-2007 §7.1). */
  readonly preamble?: number;
}

/** Encode a frame: [FE×n] 68 A0..A5 68 C L DATA+33H CS 16 (DL/T 645-2007 §7.1–7.5). */
export function encodeFrame(frame: Frame, options: EncodeOptions = {}): Uint8Array {
  const preamble = options.preamble ?? 0;
  const length = frame.data.length;
  if (length > MAX_DATA_LENGTH) throw new RangeError(`data field is ${length} bytes; a DL/T 645 frame holds at most 255`);
  if (!Number.isInteger(frame.control) || frame.control < 0 || frame.control > 0xff) {
    throw new RangeError(`control code ${frame.control} is not a byte`);
  }
  const out = new Uint8Array(preamble + FRAME_OVERHEAD + length);
  out.fill(PREAMBLE, 0, preamble);
  let p = preamble;
  out[p++] = START;
  out.set(addressToBytes(frame.address), p);
  p += 6;
  out[p++] = START;
  out[p++] = frame.control;
  out[p++] = length;
  for (let i = 0; i < length; i++) out[p++] = (frame.data[i]! + 0x33) & 0xff;
  out[p] = checksum(out, preamble, p);
  out[p + 1] = END;
  return out;
}

/**
 * Decode exactly one frame starting at `offset` (FE preamble allowed) from a complete byte string.
 * For a stream of chunks use {@link Dlt645Decoder} instead.
 */
export function decodeFrame(bytes: Uint8Array, offset = 0): Result<{ frame: Frame; end: number }> {
  let i = offset;
  while (i < bytes.length && bytes[i] === PREAMBLE) i++;
  if (bytes.length - i < FRAME_OVERHEAD)
    return fail('DLT645_SHORT', `frame too short: ${bytes.length - i} bytes after the preamble, at least 12 needed`);
  if (bytes[i] !== START) return fail('DLT645_BAD_START', `expected 68 at byte ${i}, found ${hex(bytes[i]!)}`);
  if (bytes[i + 7] !== START) return fail('DLT645_BAD_START', `expected the second 68 at byte ${i + 7}, found ${hex(bytes[i + 7]!)}`);
  const length = bytes[i + 9]!;
  const total = FRAME_OVERHEAD + length;
  if (bytes.length - i < total)
    return fail('DLT645_SHORT', `length byte says ${length} data bytes; frame needs ${total} bytes, got ${bytes.length - i}`);
  const cs = checksum(bytes, i, i + 10 + length);
  if (cs !== bytes[i + 10 + length]) {
    return fail('DLT645_BAD_CHECKSUM', `checksum ${hex(bytes[i + 10 + length]!)} does not match the computed ${hex(cs)}`);
  }
  if (bytes[i + 11 + length] !== END) return fail('DLT645_BAD_END', `expected 16 at the end, found ${hex(bytes[i + 11 + length]!)}`);
  return ok({ frame: frameAt(bytes, i), end: i + total });
}

/** Build the Frame for a validated frame starting at `start` (no checks: the caller has verified it). */
export function frameAt(bytes: Uint8Array, start: number): Frame {
  const length = bytes[start + 9]!;
  const data = new Uint8Array(length);
  for (let k = 0; k < length; k++) data[k] = (bytes[start + 10 + k]! - 0x33) & 0xff;
  return { address: addressFromBytes(bytes.subarray(start + 1, start + 7)), control: bytes[start + 8]!, data };
}

function hex(b: number): string {
  return b === undefined ? '--' : b.toString(16).padStart(2, '0').toUpperCase();
}
