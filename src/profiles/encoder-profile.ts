import { PACKAGE_ROOT } from '../paths.js';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { CARD_FAMILIES, STAR_MAX_DATA, STX_MAX_DATA, type CardFamily } from '../../protocols/card/index.js';
import { parseDuration } from '../config/duration.js';
import { YamlSource, type SourceIssue } from '../config/yaml-source.js';
import { ProfileError } from './load.js';
import { lineSchema } from './schema.js';
import type { LineSettings } from './types.js';
import { MeterdError } from '../errors.js';

/** Where the shipped encoder profiles live. */
export const BUILTIN_ENCODER_PROFILES_DIR = join(PACKAGE_ROOT, 'device-profiles', 'encoders');

/** One counter encoder model: how to talk to it and what it can do. */
export interface EncoderProfile {
  readonly id: string;
  readonly name: string;
  readonly framing: CardFamily;
  readonly line: LineSettings;
  /** Reply deadline for reads, status and PSC presentation. */
  readonly replyTimeoutMs: number;
  /** Reply deadline for writes (EEPROM programming is slower than reading). */
  readonly writeTimeoutMs: number;
  /** How often `waitForCard` asks whether a card is in. */
  readonly cardPollMs: number;
  /** Re-sends of a read after silence. Writes and PSC presentations are never re-sent. */
  readonly readRetries: number;
  /** Largest read or write per request. */
  readonly chunkBytes: number;
  readonly capabilities: {
    readonly eject: boolean;
    readonly beep: boolean;
    /** The reader must be told the card type before a memory-card power-up. */
    readonly selectCardType: boolean;
    /** The reader answers a model/firmware/serial request. */
    readonly readerInfo: boolean;
    readonly cpuCards: boolean;
  };
  readonly source: string;
}

const duration = z.union([z.string(), z.number()]);

const encoderProfileSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'an id is lowercase letters, digits and dashes, e.g. star-st102'),
  name: z.string().min(1),
  framing: z.enum(CARD_FAMILIES as [CardFamily, ...CardFamily[]]),
  line: lineSchema.default({ baudRate: 9600, parity: 'none', dataBits: 8, stopBits: 1 }),
  timeouts: z
    .strictObject({ reply: duration.default('1s'), write: duration.default('2s'), cardPoll: duration.default('250ms') })
    .default({ reply: '1s', write: '2s', cardPoll: '250ms' }),
  readRetries: z.number().int().min(0).max(5).default(1),
  chunkBytes: z.number().int().min(1).default(64),
  capabilities: z.strictObject({
    eject: z.boolean(),
    beep: z.boolean(),
    selectCardType: z.boolean().default(false),
    readerInfo: z.boolean().default(false),
    cpuCards: z.boolean().default(false),
  }),
});

/** The largest chunk each family can move in one request (the write carries its zone/address/length header too). */
const MAX_CHUNK: Record<CardFamily, number> = { star: STAR_MAX_DATA - 3, stx: STX_MAX_DATA - 3 };

/** Parse and validate one encoder profile; the id must equal the file name. Every problem has its file and line. */
export function parseEncoderProfile(
  text: string,
  file: string,
): { ok: true; profile: EncoderProfile } | { ok: false; issues: SourceIssue[] } {
  const src = new YamlSource(file, text);
  const syntax = src.syntaxIssues();
  if (syntax.length > 0) return { ok: false, issues: syntax };
  const parsed = encoderProfileSchema.safeParse(src.toJS());
  if (!parsed.success) return { ok: false, issues: src.zodIssues(parsed.error) };
  const raw = parsed.data;
  const issues: SourceIssue[] = [];
  const at = (path: PropertyKey[], message: string) => issues.push(src.issue(path, message));

  const expectedId = basename(file).replace(/\.ya?ml$/, '');
  if (/\.ya?ml$/.test(file) && raw.id !== expectedId) at(['id'], `the id "${raw.id}" must equal the file name "${expectedId}"`);
  const ms = (key: 'reply' | 'write' | 'cardPoll', min: number): number => {
    const v = parseDuration(raw.timeouts[key]);
    if (v === undefined || v < min)
      at(['timeouts', key], `"${raw.timeouts[key]}" is not a duration of at least ${min} ms (e.g. 250ms, 1s)`);
    return v ?? min;
  };
  const replyTimeoutMs = ms('reply', 50);
  const writeTimeoutMs = ms('write', 50);
  const cardPollMs = ms('cardPoll', 20);
  if (raw.chunkBytes > MAX_CHUNK[raw.framing])
    at(['chunkBytes'], `${raw.framing} requests carry at most ${MAX_CHUNK[raw.framing]} bytes of card data, not ${raw.chunkBytes}`);
  if (raw.framing === 'star' && raw.capabilities.readerInfo)
    at(['capabilities', 'readerInfo'], 'STAR readers have no reader-information command; set readerInfo: false');
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    profile: {
      id: raw.id,
      name: raw.name,
      framing: raw.framing,
      line: raw.line,
      replyTimeoutMs,
      writeTimeoutMs,
      cardPollMs,
      readRetries: raw.readRetries,
      chunkBytes: raw.chunkBytes,
      capabilities: raw.capabilities,
      source: file,
    },
  };
}

/**
 * An encoder profile by id (a file `<id>.yaml` in the folders, later folders first) or by path. Throws a ProfileError
 * (PROFILE_INVALID, every issue with file and line), or an Error naming where it looked.
 *
 * @example
 * const profile = loadEncoderProfile('star-st102');
 */
export function loadEncoderProfile(idOrPath: string, dirs: readonly string[] = [BUILTIN_ENCODER_PROFILES_DIR]): EncoderProfile {
  const file = findProfileFile(idOrPath, dirs, 'encoder profile');
  const r = parseEncoderProfile(readFileSync(file, 'utf8'), file);
  if (!r.ok) throw new ProfileError(r.issues);
  return r.profile;
}

/** A file path as given, or `<id>.yaml` in the last folder that has it. Shared with the card layout loader. */
export function findProfileFile(idOrPath: string, dirs: readonly string[], what: string): string {
  if (/[/\\]|\.ya?ml$/.test(idOrPath)) {
    if (!existsSync(idOrPath)) throw new ProfileFileMissing(`${what} file ${idOrPath} does not exist`);
    return idOrPath;
  }
  for (const dir of [...dirs].reverse()) {
    const file = join(dir, `${idOrPath}.yaml`);
    if (existsSync(file)) return file;
  }
  throw new ProfileFileMissing(`no ${what} "${idOrPath}" in ${dirs.join(', ')}; give an id from there or a path to a .yaml file`);
}

/** A profile named by id or path that is not there. */
export class ProfileFileMissing extends MeterdError<'PROFILE_NOT_FOUND'> {
  override readonly name = 'ProfileFileMissing';
  constructor(message: string) {
    super('PROFILE_NOT_FOUND', message);
  }
}
