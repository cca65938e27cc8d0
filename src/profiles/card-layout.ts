import { PACKAGE_ROOT } from '../paths.js';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import {
  CARD_KINDS,
  fromHex,
  SLE4442_MAIN_SIZE,
  SLE4442_PROTECTABLE_BYTES,
  type CardKind,
  type FieldFormat,
  type LayoutArea,
  type LayoutField,
  type RecordLayout,
} from '../../protocols/card/index.js';
import { YamlSource, type SourceIssue } from '../config/yaml-source.js';
import { findProfileFile } from './encoder-profile.js';
import { ProfileError } from './load.js';

/** Where the shipped card layouts live. */
export const BUILTIN_CARD_LAYOUTS_DIR = join(PACKAGE_ROOT, 'device-profiles', 'cards');

/** Card roles (docs/reference/cards.md § Card roles); the codes written on the card are the layout's. */
export type CardRole = 'opening' | 'purchase' | 'replacement' | 'check' | 'clear' | 'parameter';
export const CARD_ROLES: readonly CardRole[] = ['opening', 'purchase', 'replacement', 'check', 'clear', 'parameter'];
/** Roles that carry a customer's purchase. */
export const USER_ROLES: readonly CardRole[] = ['opening', 'purchase', 'replacement'];

/** What purchaseAmount and wbBalance count: hundredths of a kWh, or fen (0.01 CNY). */
export type AmountUnit = '0.01kWh' | 'fen';

/** The names workflows read and write; a layout places them. */
export type CardFieldName =
  | 'magic'
  | 'version'
  | 'meterNumber'
  | 'customerNumber'
  | 'cardSerial'
  | 'role'
  | 'purchaseCount'
  | 'purchaseAmount'
  | 'wbBalance'
  | 'wbPurchaseCount'
  | 'wbEvents'
  | 'wbTime'
  | 'paramPrice'
  | 'paramAlarm1'
  | 'paramAlarm2'
  | 'paramOverdraft'
  | 'paramHoarding';

export type CardAreaName = 'identity' | 'purchase' | 'writeBack' | 'parameter';

/** The parameter area's fields, by the name the workflows use (docs/reference/cards.md § Parameter area). */
export const PARAMETER_FIELDS = {
  price: 'paramPrice',
  alarm1: 'paramAlarm1',
  alarm2: 'paramAlarm2',
  overdraft: 'paramOverdraft',
  hoarding: 'paramHoarding',
} as const satisfies Record<string, CardFieldName>;

/** A validated card layout: the record codec's view plus what the workflows need to know. */
export interface CardLayout extends RecordLayout {
  readonly id: string;
  readonly name: string;
  readonly card: CardKind;
  readonly amountUnit: AmountUnit;
  /** The text in `magic` that marks a card as this system's. */
  readonly magic: string;
  /** The value of `version` on cards written with this layout, when the layout has that field. */
  readonly version: number | undefined;
  readonly roles: Readonly<Record<CardRole, number>>;
  /** The PSC this system's cards are issued with (a site overrides it, e.g. with METERD_CARD_PSC). */
  readonly psc: Uint8Array;
  /** Write-back event bits: bit number → condition name. */
  readonly eventBits: ReadonlyMap<number, string>;
  readonly fields: ReadonlyMap<CardFieldName, LayoutField>;
  readonly hasWriteBack: boolean;
  /** The layout has a parameter area: parameter cards (参数卡) can be written. */
  readonly hasParameters: boolean;
  readonly source: string;
}

const UINT: FieldFormat[] = ['uint-be', 'uint-le'];
const FIELD_RULES: Record<CardFieldName, { area: CardAreaName; formats: FieldFormat[]; required: boolean | 'with-area'; length?: number }> =
  {
    magic: { area: 'identity', formats: ['ascii'], required: true },
    version: { area: 'identity', formats: UINT, required: false },
    meterNumber: { area: 'identity', formats: ['bcd'], required: true },
    customerNumber: { area: 'identity', formats: ['bcd'], required: false },
    cardSerial: { area: 'identity', formats: [...UINT, 'bcd'], required: false },
    role: { area: 'purchase', formats: UINT, required: true, length: 1 },
    purchaseCount: { area: 'purchase', formats: UINT, required: true },
    purchaseAmount: { area: 'purchase', formats: UINT, required: true },
    wbBalance: { area: 'writeBack', formats: UINT, required: 'with-area' },
    wbPurchaseCount: { area: 'writeBack', formats: UINT, required: 'with-area' },
    wbEvents: { area: 'writeBack', formats: UINT, required: false },
    wbTime: { area: 'writeBack', formats: ['datetime'], required: false },
    // The parameter area: price in 0.0001 yuan per kWh, the limits in the layout's amount unit.
    paramPrice: { area: 'parameter', formats: UINT, required: 'with-area' },
    paramAlarm1: { area: 'parameter', formats: UINT, required: 'with-area' },
    paramAlarm2: { area: 'parameter', formats: UINT, required: 'with-area' },
    paramOverdraft: { area: 'parameter', formats: UINT, required: 'with-area' },
    paramHoarding: { area: 'parameter', formats: UINT, required: 'with-area' },
  };
const FIELD_NAMES = Object.keys(FIELD_RULES) as [CardFieldName, ...CardFieldName[]];

const byte = z.number().int().min(0).max(255);
const address = z.number().int().min(0).max(0xffff);
const fieldSchema = z.strictObject({
  offset: address,
  length: z.number().int().min(1).max(32),
  format: z.enum(['bcd', 'uint-be', 'uint-le', 'ascii', 'datetime', 'flag']),
  signed: z.boolean().optional(),
  doc: z.string().optional(),
});
const areaSchema = z.strictObject({
  from: address,
  to: address,
  checksum: z.strictObject({ kind: z.enum(['sum8', 'xor8']), at: address }),
  backupAt: address.optional(),
  doc: z.string().optional(),
});

const layoutSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'an id is lowercase letters, digits and dashes, e.g. sle4442-dorm'),
  name: z.string().min(1),
  card: z.enum(CARD_KINDS as [CardKind, ...CardKind[]]),
  size: z.number().int().min(16).max(65536),
  amountUnit: z.enum(['0.01kWh', 'fen']),
  magic: z.string().min(1),
  version: z.number().int().min(0).optional(),
  psc: z
    .string({ error: 'the PSC is 6 hex digits in quotes, e.g. "FFFFFF"' })
    .regex(/^[0-9A-Fa-f]{6}$/, 'the PSC is 6 hex digits in quotes, e.g. "FFFFFF"'),
  roles: z.strictObject({ opening: byte, purchase: byte, replacement: byte, check: byte, clear: byte, parameter: byte }),
  areas: z.strictObject({
    identity: areaSchema,
    purchase: areaSchema,
    writeBack: areaSchema.optional(),
    parameter: areaSchema.optional(),
  }),
  valid: z.strictObject({ at: address, set: byte, clear: byte.default(0) }),
  fields: z.partialRecord(z.enum(FIELD_NAMES), fieldSchema),
  eventBits: z
    .record(
      z.string().regex(/^\d+$/, 'an event bit is a bit number'),
      z.string().regex(/^[a-z][a-z0-9-]*$/, 'an event is a lowercase-dashed name, e.g. relay-open'),
    )
    .optional(),
});

const hex = (n: number): string => `${n.toString(16).toUpperCase().padStart(2, '0')}H`;

/** Parse and validate a card layout; the id must equal the file name. Every problem has its file and line. */
export function parseCardLayout(text: string, file: string): { ok: true; layout: CardLayout } | { ok: false; issues: SourceIssue[] } {
  const src = new YamlSource(file, text);
  const syntax = src.syntaxIssues();
  if (syntax.length > 0) return { ok: false, issues: syntax };
  const parsed = layoutSchema.safeParse(src.toJS());
  if (!parsed.success) return { ok: false, issues: src.zodIssues(parsed.error) };
  const raw = parsed.data;
  const issues: SourceIssue[] = [];
  const at = (path: PropertyKey[], message: string) => issues.push(src.issue(path, message));

  const expectedId = basename(file).replace(/\.ya?ml$/, '');
  if (/\.ya?ml$/.test(file) && raw.id !== expectedId) at(['id'], `the id "${raw.id}" must equal the file name "${expectedId}"`);
  if (raw.card === 'SLE4442' && raw.size !== SLE4442_MAIN_SIZE)
    at(['size'], `an SLE4442 has ${SLE4442_MAIN_SIZE} bytes of main memory, not ${raw.size}`);

  // Every byte the record uses, with who uses it, so overlaps are named.
  const used: { from: number; to: number; what: string; path: PropertyKey[] }[] = [];
  const claim = (from: number, to: number, what: string, path: PropertyKey[]): void => {
    if (to >= raw.size) at(path, `${what} (${hex(from)}–${hex(to)}) runs past the end of the ${raw.size}-byte memory`);
    const clash = used.find((u) => from <= u.to && u.from <= to);
    if (clash) at(path, `${what} (${hex(from)}–${hex(to)}) overlaps ${clash.what} (${hex(clash.from)}–${hex(clash.to)})`);
    used.push({ from, to, what, path });
  };

  const areas: LayoutArea[] = [];
  for (const name of ['identity', 'purchase', 'writeBack', 'parameter'] as const) {
    const a = raw.areas[name];
    if (!a) continue;
    const path = ['areas', name];
    if (a.to < a.from) {
      at([...path, 'to'], `the area ends (${hex(a.to)}) before it starts (${hex(a.from)})`);
      continue;
    }
    claim(a.from, a.to, `area ${name}`, path);
    claim(a.checksum.at, a.checksum.at, `the checksum of ${name}`, [...path, 'checksum', 'at']);
    if (a.backupAt !== undefined) claim(a.backupAt, a.backupAt + a.to - a.from + 1, `the backup of ${name}`, [...path, 'backupAt']);
    // The station rewrites these on every sale; a protection bit set there by mistake would make every card unsellable.
    if (name !== 'identity' && a.from < SLE4442_PROTECTABLE_BYTES && raw.card === 'SLE4442') {
      at([...path, 'from'], `bytes 00H–1FH can be write-protected for good; keep the ${name} area, which is rewritten, at 20H or above`);
    }
    areas.push({ name, from: a.from, to: a.to, checksum: a.checksum, ...(a.backupAt !== undefined ? { backupAt: a.backupAt } : {}) });
  }
  if (raw.areas.purchase.backupAt === undefined)
    at(['areas', 'purchase'], 'the purchase area needs backupAt: the meter falls back to the copy when the area is damaged');
  claim(raw.valid.at, raw.valid.at, 'the valid flag', ['valid', 'at']);
  if (raw.valid.set === raw.valid.clear) at(['valid', 'set'], `the set value ${hex(raw.valid.set)} must differ from the clear value`);
  if (raw.valid.set === 0x00 || raw.valid.set === 0xff)
    at(['valid', 'set'], 'a set value of 00H or FFH would make a blank card look valid; use a pattern such as A5H');

  const fields = new Map<CardFieldName, LayoutField>();
  const fieldRanges: { from: number; to: number; name: string }[] = [];
  for (const [name, rule] of Object.entries(FIELD_RULES) as [CardFieldName, (typeof FIELD_RULES)[CardFieldName]][]) {
    const f = raw.fields[name];
    const path = ['fields', name];
    const area = raw.areas[rule.area];
    if (!f) {
      if (rule.required === true || (rule.required === 'with-area' && area))
        at(['fields'], `missing field ${name} (in the ${rule.area} area)`);
      continue;
    }
    if (!area) {
      at(path, `${name} belongs in the ${rule.area} area, which this layout does not have`);
      continue;
    }
    if (!rule.formats.includes(f.format)) at([...path, 'format'], `${name} is ${rule.formats.join(' or ')}, not ${f.format}`);
    if (rule.length !== undefined && f.length !== rule.length)
      at([...path, 'length'], `${name} is ${rule.length} byte(s), not ${f.length}`);
    if ((f.format === 'uint-be' || f.format === 'uint-le') && f.length > 6)
      at([...path, 'length'], `a binary integer has at most 6 bytes (exact in JavaScript), not ${f.length}`);
    if (f.format === 'datetime' && f.length !== 6) at([...path, 'length'], `a datetime is 6 BCD bytes YYMMDDhhmmss, not ${f.length}`);
    const end = f.offset + f.length - 1;
    if (f.offset < area.from || end > area.to)
      at(
        [...path, 'offset'],
        `${name} (${hex(f.offset)}–${hex(end)}) is not inside the ${rule.area} area (${hex(area.from)}–${hex(area.to)})`,
      );
    const clash = fieldRanges.find((u) => f.offset <= u.to && u.from <= end);
    if (clash)
      at([...path, 'offset'], `${name} (${hex(f.offset)}–${hex(end)}) overlaps ${clash.name} (${hex(clash.from)}–${hex(clash.to)})`);
    fieldRanges.push({ from: f.offset, to: end, name });
    fields.set(name, { name, offset: f.offset, length: f.length, format: f.format, ...(f.signed ? { signed: true } : {}) });
  }
  const magicField = raw.fields.magic;
  if (magicField && raw.magic.length !== magicField.length)
    at(['magic'], `the magic "${raw.magic}" must fill the magic field exactly (${magicField.length} characters)`);
  if (raw.version !== undefined && !raw.fields.version) at(['version'], 'a version needs a version field on the card');
  if (raw.fields.version && raw.version === undefined)
    at(['fields', 'version'], 'give the layout a version: the value written on its cards');

  const codes = new Map<number, string>();
  for (const role of CARD_ROLES) {
    const code = raw.roles[role];
    if (code === 0x00 || code === 0xff) at(['roles', role], `role code ${hex(code)} is what a blank card holds; pick another`);
    const other = codes.get(code);
    if (other) at(['roles', role], `role code ${hex(code)} is already ${other}`);
    codes.set(code, role);
  }
  const eventBits = new Map<number, string>();
  const eventsWidth = (raw.fields.wbEvents?.length ?? 0) * 8;
  for (const [bitText, name] of Object.entries(raw.eventBits ?? {})) {
    const bit = Number(bitText);
    if (bit >= eventsWidth)
      at(
        ['eventBits', bitText],
        eventsWidth === 0 ? 'event bits need a wbEvents field' : `bit ${bit} is outside wbEvents (${eventsWidth} bits)`,
      );
    eventBits.set(bit, name);
  }

  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    layout: {
      id: raw.id,
      name: raw.name,
      card: raw.card,
      size: raw.size,
      amountUnit: raw.amountUnit,
      magic: raw.magic,
      version: raw.version,
      roles: raw.roles,
      psc: fromHex(raw.psc)!,
      eventBits,
      fields,
      areas,
      valid: raw.valid,
      hasWriteBack: raw.areas.writeBack !== undefined,
      hasParameters: raw.areas.parameter !== undefined,
      source: file,
    },
  };
}

/**
 * A card layout by id (`<id>.yaml` in the folders, later folders first) or by path. Throws a ProfileError
 * (PROFILE_INVALID, every issue with file and line) or a ProfileFileMissing.
 *
 * @example
 * const layout = loadCardLayout('sle4442-dorm');
 */
export function loadCardLayout(idOrPath: string, dirs: readonly string[] = [BUILTIN_CARD_LAYOUTS_DIR]): CardLayout {
  const file = findProfileFile(idOrPath, dirs, 'card layout');
  const r = parseCardLayout(readFileSync(file, 'utf8'), file);
  if (!r.ok) throw new ProfileError(r.issues);
  return r.layout;
}

/** The role a code on the card stands for, if the layout knows it. */
export function roleOfCode(layout: CardLayout, code: number): CardRole | undefined {
  return CARD_ROLES.find((r) => layout.roles[r] === code);
}
