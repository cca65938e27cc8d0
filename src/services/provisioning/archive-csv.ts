import { z } from 'zod';
import { csvField, parseCustomerNo } from '../../values/index.js';

// A station's existing customer archive as CSV (docs/provisioning.md § The customer archive): one header line naming
// the columns, then one customer per line. Parsed whole before anything is imported, every bad line named.

export const ARCHIVE_COLUMNS = ['customer', 'name', 'room', 'meter', 'tags'] as const;
const REQUIRED = ['customer', 'name', 'room'] as const;

/** One customer line of the file, checked. */
export interface ArchiveRow {
  /** 1-based line number in the file. */
  readonly line: number;
  readonly customerNo: string;
  readonly name: string;
  readonly room: string;
  /** 12 digits, left-padded, as cards and DL/T 645 frames carry it; null when the line names none. */
  readonly meterAddress: string | null;
  readonly tags: readonly string[];
}

export interface BadLine {
  readonly line: number;
  readonly message: string;
}

export interface ParsedArchive {
  readonly rows: readonly ArchiveRow[];
  readonly bad: readonly BadLine[];
}

const text = (what: string, max: number) =>
  z
    .string()
    .trim()
    .min(1, `${what} is empty`)
    .max(max, `${what} is longer than ${max} characters`)
    .refine((v) => !/\p{Cc}/u.test(v), `${what} holds a control character`);

const rowSchema = z.object({
  customer: z.string().superRefine((v, ctx) => {
    const p = parseCustomerNo(v.trim());
    if (!p.ok) ctx.addIssue({ code: 'custom', message: `customer number ${p.reason}` });
  }),
  name: text('name', 64),
  room: text('room', 64),
  meter: z
    .string()
    .trim()
    .regex(/^(\d{1,12})?$/, 'meter must be the meter address: 1 to 12 digits as on its nameplate'),
  tags: z
    .string()
    .trim()
    .refine((v) => v.split(/[;|]/).every((t) => t.trim().length <= 32), 'a tag is longer than 32 characters'),
});

/**
 * Parses the archive file's text: a header line (columns customer, name, room, and optionally meter and tags, in any
 * order; tags separated by `;` or `|`), then customers. Quoted fields ("…", "" for a quote) may hold commas. Every bad
 * line is reported with its number; duplicates of a customer number or of a meter inside the file are bad lines too.
 *
 * @example
 * parseArchiveCsv('customer,name,room,meter\n1001,Wang Li,3-201,000000000101\n');
 */
export function parseArchiveCsv(source: string): ParsedArchive {
  const lines = splitLines(source.replace(/^\uFEFF/, ''));
  const bad: BadLine[] = [];
  const rows: ArchiveRow[] = [];
  const headerAt = lines.findIndex((l) => l.text.trim() !== '');
  if (headerAt < 0)
    return { rows, bad: [{ line: 1, message: `the file is empty: the first line names the columns (${ARCHIVE_COLUMNS.join(',')})` }] };
  const header = splitFields(lines[headerAt]!.text);
  if (!header.ok) return { rows, bad: [{ line: lines[headerAt]!.number, message: header.message }] };
  const columns = header.fields.map((h) => h.trim().toLowerCase());
  const unknown = columns.filter((c) => !(ARCHIVE_COLUMNS as readonly string[]).includes(c));
  const missing = REQUIRED.filter((c) => !columns.includes(c));
  if (unknown.length > 0 || missing.length > 0) {
    const why = [
      ...(unknown.length > 0 ? [`unknown column ${unknown.map((u) => JSON.stringify(u)).join(', ')}`] : []),
      ...(missing.length > 0 ? [`missing column ${missing.join(', ')}`] : []),
    ];
    return {
      rows,
      bad: [
        {
          line: lines[headerAt]!.number,
          message: `${why.join('; ')}: the header names ${ARCHIVE_COLUMNS.join(',')} (meter and tags optional)`,
        },
      ],
    };
  }
  const seenCustomer = new Map<string, number>();
  const seenMeter = new Map<string, number>();
  for (const { number, text: raw } of lines.slice(headerAt + 1)) {
    if (raw.trim() === '') continue;
    const split = splitFields(raw);
    if (!split.ok) {
      bad.push({ line: number, message: split.message });
      continue;
    }
    if (split.fields.length !== columns.length) {
      bad.push({ line: number, message: `${split.fields.length} fields where the header names ${columns.length}` });
      continue;
    }
    const record: Record<string, string> = { meter: '', tags: '' };
    for (const [i, c] of columns.entries()) record[c] = split.fields[i]!;
    const parsed = rowSchema.safeParse(record);
    if (!parsed.success) {
      bad.push({ line: number, message: parsed.error.issues.map((i) => i.message).join('; ') });
      continue;
    }
    const v = parsed.data;
    const customerNo = v.customer.trim();
    const meterAddress = v.meter === '' ? null : v.meter.padStart(12, '0');
    const dupCustomer = seenCustomer.get(customerNo);
    if (dupCustomer !== undefined) {
      bad.push({ line: number, message: `customer number ${customerNo} is already on line ${dupCustomer}` });
      continue;
    }
    if (meterAddress !== null && seenMeter.has(meterAddress)) {
      bad.push({ line: number, message: `meter ${meterAddress} is already bound to the customer on line ${seenMeter.get(meterAddress)}` });
      continue;
    }
    seenCustomer.set(customerNo, number);
    if (meterAddress !== null) seenMeter.set(meterAddress, number);
    rows.push({
      line: number,
      customerNo,
      name: v.name,
      room: v.room,
      meterAddress,
      tags:
        v.tags === ''
          ? []
          : v.tags
              .split(/[;|]/)
              .map((t) => t.trim())
              .filter((t) => t !== ''),
    });
  }
  return { rows, bad };
}

/** The archive as CSV, in the format parseArchiveCsv reads (with the state and card serial as extra columns for people). */
export function archiveCsv(
  customers: readonly { customerNo: string; name: string; room: string; meterAddress: string | null; tags: readonly string[] }[],
): string {
  const out = [ARCHIVE_COLUMNS.join(',')];
  for (const c of customers) out.push([c.customerNo, c.name, c.room, c.meterAddress ?? '', c.tags.join(';')].map(csvField).join(','));
  return `${out.join('\n')}\n`;
}

/** Physical lines with their numbers; a quoted field may span lines (it keeps the number of the line it starts on). */
function splitLines(source: string): { number: number; text: string }[] {
  const out: { number: number; text: string }[] = [];
  const physical = source.split(/\r?\n/);
  let i = 0;
  while (i < physical.length) {
    const start = i;
    let t = physical[i]!;
    while (countQuotes(t) % 2 === 1 && i + 1 < physical.length) t += `\n${physical[++i]!}`;
    out.push({ number: start + 1, text: t });
    i++;
  }
  if (out.length > 0 && out.at(-1)!.text === '') out.pop();
  return out;
}

function countQuotes(s: string): number {
  let n = 0;
  for (const ch of s) if (ch === '"') n++;
  return n;
}

function splitFields(line: string): { ok: true; fields: string[] } | { ok: false; message: string } {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= line.length) return { ok: false, message: 'a quoted field is not closed (a " is missing)' };
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            v += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += line[i++];
      }
      fields.push(v);
      if (i < line.length && line[i] !== ',') return { ok: false, message: 'text after a closing quote: quote the whole field' };
    } else {
      const end = line.indexOf(',', i);
      fields.push(end < 0 ? line.slice(i) : line.slice(i, end));
      i = end < 0 ? line.length : end;
    }
    if (i >= line.length) return { ok: true, fields };
    i++; // the comma
  }
}
