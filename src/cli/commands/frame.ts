import type { Command } from 'commander';
import { Dlt645Decoder, decodeFrame, describeFrame, fromHex, toHex, type Edition } from '../../../protocols/dlt645/index.js';
import { usageError } from '../errors.js';

interface FrameDecodeOptions {
  stream?: boolean;
  raw?: boolean;
  edition?: string;
}

function parseEdition(text: string | undefined): Edition | undefined {
  if (text === undefined) return undefined;
  if (text === '2007' || text === '1997') return text;
  throw usageError(`--edition must be 2007 or 1997, not "${text}"`);
}

export function registerFrameCommand(program: Command, io: { stdin: NodeJS.ReadableStream; out: (line: string) => void }): void {
  const frame = program.command('frame').description('work with DL/T 645 frames: decode captures by hand or from a bus sniffer');
  frame
    .command('decode')
    .description('decode a DL/T 645 frame given as hex, or a capture stream from stdin, and print it as JSON')
    .argument('[hex...]', 'frame bytes in hex; spaces allowed (FE preamble optional)')
    .option('--stream', 'read a capture from stdin: hex text (whitespace ignored), one JSON line per frame and per discarded byte run')
    .option('--raw', 'with --stream: stdin is raw bytes, not hex text')
    .option('--edition <year>', '2007 or 1997 (default: guessed from the function code)')
    .addHelpText(
      'after',
      `
Examples:
  meterd frame decode 68 12 90 78 56 34 12 68 91 08 33 33 34 33 AB 89 67 45 CC 16
  socat -u /dev/ttyUSB0,raw,b2400,parenb - | meterd frame decode --stream --raw

Output fields: address (12 digits, most significant first), control, function, direction, abnormal,
di (when present), data (de-scrambled hex after the identifier), value and unit (known identifiers),
errors (named bits of an abnormal reply).`,
    )
    .action(async (hexParts: string[], opts: FrameDecodeOptions) => {
      const edition = parseEdition(opts.edition);
      if (opts.stream) {
        await decodeStream(io.stdin, Boolean(opts.raw), edition, io.out);
        return;
      }
      if (hexParts.length === 0)
        throw usageError('give the frame as hex, e.g. meterd frame decode 68 AA AA AA AA AA AA 68 13 00 DF 16, or use --stream');
      const bytes = fromHex(hexParts.join(''));
      if (!bytes) throw usageError('the frame is not hex: use pairs of 0-9/A-F, spaces allowed');
      const r = decodeFrame(bytes);
      if (!r.ok) throw Object.assign(new Error(r.error.message), { code: r.error.code });
      if (r.value.end !== bytes.length) {
        throw Object.assign(
          new Error(`${bytes.length - r.value.end} bytes follow the frame; use --stream for captures with several frames`),
          { code: 'DLT645_TRAILING' },
        );
      }
      io.out(JSON.stringify(describeFrame(r.value.frame, edition)));
    });
}

async function decodeStream(
  stdin: NodeJS.ReadableStream,
  raw: boolean,
  edition: Edition | undefined,
  out: (line: string) => void,
): Promise<void> {
  const decoder = new Dlt645Decoder();
  let offset = 0;
  let carry = '';
  const emit = (chunk: Uint8Array): void => {
    for (const ev of decoder.push(chunk)) {
      if (ev.kind === 'frame') out(JSON.stringify(describeFrame(ev.frame, edition)));
      else out(JSON.stringify({ discarded: toHex(ev.bytes), bytes: ev.bytes.length, reason: ev.reason }));
    }
    offset += chunk.length;
  };
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    if (raw) {
      emit(buf);
      continue;
    }
    const text = carry + buf.toString('latin1').replace(/\s+/g, '');
    if (!/^[0-9A-Fa-f]*$/.test(text)) throw usageError(`stdin is not hex text near byte ${offset}; use --raw for binary captures`);
    const whole = text.length - (text.length % 2);
    carry = text.slice(whole);
    emit(fromHex(text.slice(0, whole))!);
  }
  if (carry) throw usageError('the hex capture ends with half a byte');
}
