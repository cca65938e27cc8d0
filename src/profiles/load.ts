import { basename } from 'node:path';
import type { z } from 'zod';
import { findDataItem, formatSize, layoutSize, parseFormatNotation, type ValueFormat } from '../../protocols/dlt645/index.js';
import { registerCount, typeFitsTable } from '../../protocols/modbus/index.js';
import { parseDuration } from '../config/duration.js';
import { formatIssue, YamlSource, type SourceIssue } from '../config/yaml-source.js';
import {
  creditSchema,
  derivedPointSchema,
  dlt645PointSchema,
  lineSchema,
  modbusPointSchema,
  profileSchema,
  type RawProfile,
} from './schema.js';
import type { CreditSpec, DeviceProfile, ModbusPoint, PointGroup, PointSpec, StatusBit, SubsidySpec } from './types.js';
import { MeterdError } from '../errors.js';

/** A profile that failed validation: every issue with file and line. */
export class ProfileError extends MeterdError<'PROFILE_INVALID'> {
  override readonly name = 'ProfileError';
  constructor(readonly issues: SourceIssue[]) {
    super('PROFILE_INVALID', issues.map(formatIssue).join('\n'));
  }
}

/** Parse and validate one device profile; the id must equal the file name (without .yaml). */
export function parseProfile(text: string, file: string): { ok: true; profile: DeviceProfile } | { ok: false; issues: SourceIssue[] } {
  const src = new YamlSource(file, text);
  const syntax = src.syntaxIssues();
  if (syntax.length > 0) return { ok: false, issues: syntax };
  const parsed = profileSchema.safeParse(src.toJS());
  if (!parsed.success) return { ok: false, issues: src.zodIssues(parsed.error) };
  const issues: SourceIssue[] = [];
  const profile = resolve(parsed.data, src, file, issues);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, profile };
}

/** Like parseProfile, throwing a ProfileError that lists every issue. */
export function loadProfileText(text: string, file: string): DeviceProfile {
  const r = parseProfile(text, file);
  if (!r.ok) throw new ProfileError(r.issues);
  return r.profile;
}

function resolve(raw: RawProfile, src: YamlSource, file: string, issues: SourceIssue[]): DeviceProfile {
  const at = (path: PropertyKey[], message: string) => issues.push(src.issue(path, message));
  const expectedId = basename(file).replace(/\.ya?ml$/, '');
  if (file.match(/\.ya?ml$/) && raw.id !== expectedId) at(['id'], `the id "${raw.id}" must equal the file name "${expectedId}"`);

  const isDlt = raw.protocol.startsWith('dlt645');
  // References are checked against declared names, so one bad point is one error, not one per group using it.
  const declared = new Set(Object.keys(raw.points));
  const edition = raw.protocol === 'dlt645-1997' ? '1997' : '2007';
  const points = new Map<string, PointSpec>();
  const sizes = new Map<string, number>(); // bits available for status/derived bits

  for (const [name, body] of Object.entries(raw.points)) {
    const path = ['points', name];
    const keyed = (schema: z.ZodType) => {
      const r = schema.safeParse(body);
      if (!r.success) {
        issues.push(...src.zodIssues(r.error, path));
        return undefined;
      }
      return r.data;
    };
    if ('di' in body) {
      if (!isDlt) {
        at(path, `a DL/T 645 point (di) in a ${raw.protocol} profile; Modbus points need table, address and type`);
        continue;
      }
      const p = keyed(dlt645PointSchema) as z.infer<typeof dlt645PointSchema> | undefined;
      if (!p) continue;
      const di = p.di.toUpperCase();
      if ((edition === '2007') !== (di.length === 8)) {
        at([...path, 'di'], `${raw.protocol} identifiers have ${edition === '2007' ? 8 : 4} hex digits, "${p.di}" has ${di.length}`);
        continue;
      }
      const item = findDataItem(di, edition);
      let format: ValueFormat | undefined;
      if (p.format !== undefined) {
        format = parseFormatNotation(p.format, p.signed ?? false);
        if (!format) {
          at(
            [...path, 'format'],
            `unknown format "${p.format}": expected a notation like XXXXXX.XX, NNNN, YYMMDDhhmmss, word(2), digits(6), ascii(6) or raw`,
          );
          continue;
        }
      } else if (item) {
        format = p.signed === undefined || item.format.kind !== 'bcd' ? item.format : { ...item.format, signed: p.signed };
      } else {
        at(path, `identifier ${di} is not in meterd's table: give its format (e.g. XXXXXX.XX) and unit`);
        continue;
      }
      const element = elementFormat(format, p.item, p.field, item?.format);
      if (typeof element === 'string') {
        at([...path, p.item !== undefined ? 'item' : 'field'], element);
        continue;
      }
      const unit = p.unit ?? fieldUnit(item?.format, p.field) ?? item?.unit;
      if (unit === undefined && element.kind === 'bcd') {
        at(path, `missing unit: ${di} is a number; give its unit (kWh, V, A, kW, CNY, or "" for a ratio or count)`);
        continue;
      }
      points.set(name, { kind: 'dlt645', name, di, format, unit: unit ?? '', item: p.item, field: p.field, scale: p.scale ?? 1 });
      if (element.kind === 'word') sizes.set(name, element.bytes * 8);
    } else if ('table' in body) {
      if (isDlt) {
        at(path, `a Modbus point (table) in a ${raw.protocol} profile; DL/T 645 points need di`);
        continue;
      }
      const p = keyed(modbusPointSchema) as z.infer<typeof modbusPointSchema> | undefined;
      if (!p) continue;
      if (p.unit === undefined) {
        at(path, `missing unit: say what the value is in (kWh, V, A, kW, Hz, or "" for a ratio)`);
        continue;
      }
      if (!typeFitsTable(p.type, p.table)) {
        at(
          [...path, 'type'],
          `type ${p.type} does not fit the ${p.table} table: coils and discrete inputs are bool, registers are numbers`,
        );
        continue;
      }
      points.set(name, {
        kind: 'modbus',
        name,
        table: p.table,
        address: p.address,
        type: p.type,
        order: p.order,
        scale: p.scale,
        offset: p.offset,
        unit: p.unit,
      });
      if (p.type === 'uint16' || p.type === 'int16') sizes.set(name, 16);
      if (p.type === 'uint32' || p.type === 'int32') sizes.set(name, 32);
    } else if ('from' in body) {
      const p = keyed(derivedPointSchema) as z.infer<typeof derivedPointSchema> | undefined;
      if (!p) continue;
      points.set(name, { kind: 'derived', name, from: p.from, bit: p.bit, unit: p.unit ?? '' });
    } else {
      at(path, 'a point needs di (DL/T 645), table/address/type (Modbus) or from/bit (a bit of another point)');
    }
  }

  // Derived points read a bit of a status-like point.
  for (const p of points.values()) {
    if (p.kind !== 'derived') continue;
    const bits = sizes.get(p.from);
    if (!declared.has(p.from)) at(['points', p.name, 'from'], `no point named "${p.from}" in this profile`);
    else if (points.has(p.from) && bits === undefined)
      at(['points', p.name, 'from'], `"${p.from}" is not a status word or integer register, so it has no bits`);
    else if (bits !== undefined && p.bit >= bits)
      at(['points', p.name, 'bit'], `bit ${p.bit} is out of range: ${p.from} has ${bits} bits (0..${bits - 1})`);
  }

  // Two Modbus points must not share a register: the profile would be lying about one of them.
  const modbus = [...points.values()]
    .filter((p): p is ModbusPoint => p.kind === 'modbus')
    .sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : a.address - b.address));
  for (let i = 1; i < modbus.length; i++) {
    const prev = modbus[i - 1]!;
    const cur = modbus[i]!;
    const prevEnd = prev.address + registerCount(prev.type);
    if (cur.table === prev.table && cur.address < prevEnd) {
      at(
        ['points', cur.name, 'address'],
        `overlapping registers: ${cur.name} at ${cur.table} ${cur.address} overlaps ${prev.name} (${prev.table} ${prev.address}..${prevEnd - 1})`,
      );
    }
  }

  const groups: PointGroup[] = [];
  for (const [name, g] of Object.entries(raw.groups)) {
    const intervalMs = parseDuration(g.interval);
    if (intervalMs === undefined || intervalMs < 1000)
      at(['groups', name, 'interval'], `interval "${g.interval}" is not a duration of at least 1s (e.g. 60s, 15m, 1d)`);
    g.points.forEach((p, k) => {
      if (!declared.has(p)) at(['groups', name, 'points', k], `no point named "${p}" in this profile`);
    });
    groups.push({ name, intervalMs: intervalMs ?? 60_000, at: g.at, points: g.points });
  }

  (raw.blocks ?? []).forEach((b, k) => {
    if (!isDlt) at(['blocks', k], 'block identifiers are a DL/T 645 feature; Modbus reads are coalesced automatically');
    b.points.forEach((p, j) => {
      if (p !== null && !declared.has(p)) at(['blocks', k, 'points', j], `no point named "${p}" in this profile`);
    });
  });

  const status: StatusBit[] = [];
  for (const [point, bits] of Object.entries(raw.status ?? {})) {
    const size = sizes.get(point);
    if (!declared.has(point)) at(['status', point], `no point named "${point}" in this profile`);
    else if (points.has(point) && size === undefined) at(['status', point], `"${point}" is not a status word or integer register`);
    for (const [bitText, condition] of Object.entries(bits)) {
      const bit = Number(bitText);
      if (size !== undefined && bit >= size)
        at(['status', point, bitText], `status bit ${bit} is out of range: ${point} has ${size} bits (0..${size - 1})`);
      status.push({ point, bit, condition });
    }
  }

  const { credit, subsidy } = creditMethods(raw, src, issues);
  if (credit) {
    const c = credit.spec;
    const path = credit.path;
    if (c.method === 'modbus-write' && isDlt)
      at([...path, 'method'], `credit method modbus-write needs a Modbus profile, this one is ${raw.protocol}`);
    if (c.method !== 'modbus-write' && !isDlt)
      at([...path, 'method'], `credit method ${c.method} needs a DL/T 645 profile, this one is ${raw.protocol}`);
    for (const key of ['count', 'balance', 'overdraft'] as const) {
      const p = c.readBack[key];
      if (p !== undefined && !declared.has(p)) at([...path, 'readBack', key], `no point named "${p}" in this profile`);
    }
    if (c.method === 'dlt645-write') {
      c.layout.forEach((f, k) => {
        if (!layoutSize([f]).ok)
          at(
            [...path, 'layout', k, 'format'],
            `unknown format "${f.format}": expected a notation like NNNN, XXXXXX.XX, digits(6), or uint32le`,
          );
      });
      if (!c.layout.some((f) => f.field === 'amount')) at([...path, 'layout'], 'the layout has no amount field');
    }
  }
  if (subsidy) {
    const c = subsidy.spec;
    const path = subsidy.path;
    if (isDlt) at([...path, 'method'], `credit method ${c.method} needs a Modbus profile, this one is ${raw.protocol}`);
    const kwhPoint = (name: string, where: PropertyKey[], writable: boolean): void => {
      const p = points.get(name);
      if (!declared.has(name)) {
        at(where, `no point named "${name}" in this profile`);
        return;
      }
      if (p?.kind !== 'modbus') {
        at(where, `"${name}" is not a Modbus register`);
        return;
      }
      if (p.unit !== 'kWh') at(where, `"${name}" is in ${p.unit || 'no unit'}; a free-energy method reads and writes kWh`);
      if (writable && p.table !== 'holding')
        at(where, `"${name}" is a ${p.table} point; the meter can only take writes to holding registers`);
    };
    const seen = new Set<string>();
    c.registers.forEach((r, k) => {
      kwhPoint(r.point, [...path, 'registers', k, 'point'], true);
      if (seen.has(r.point)) at([...path, 'registers', k, 'point'], `"${r.point}" is listed twice`);
      seen.add(r.point);
      if (credit && Object.values(credit.spec.readBack).includes(r.point))
        at(
          [...path, 'registers', k, 'point'],
          `"${r.point}" is the purchase wallet of the other credit method, not a free-energy register`,
        );
    });
    kwhPoint(c.consumed, [...path, 'consumed'], false);
  }
  if (raw.relay?.method === 'dlt645-remote-control') {
    const s = raw.relay.state;
    const size = sizes.get(s.point);
    if (!declared.has(s.point)) at(['relay', 'state', 'point'], `no point named "${s.point}" in this profile`);
    else if (size !== undefined && (s.actualBit >= size || (s.commandBit ?? 0) >= size))
      at(['relay', 'state'], `relay bits are out of range: ${s.point} has ${size} bits`);
  }

  if (raw.account?.method === 'dlt645-customer-number') {
    if (!isDlt) at(['account', 'method'], `account method dlt645-customer-number needs a DL/T 645 profile, this one is ${raw.protocol}`);
    if (!declared.has(raw.account.point)) at(['account', 'point'], `no point named "${raw.account.point}" in this profile`);
  }
  if (raw.account?.method === 'dlt645-esam-opening' && credit?.spec.method !== 'dlt645-esam')
    at(['account', 'method'], 'ESAM account opening needs the dlt645-esam credit method (the same handshake as a recharge)');

  for (const point of Object.keys(raw.alerts?.counters ?? {}))
    if (!declared.has(point)) at(['alerts', 'counters', point], `no point named "${point}" in this profile`);

  return {
    id: raw.id,
    name: raw.name,
    protocol: raw.protocol,
    line:
      raw.line ??
      lineSchema.parse({
        baudRate: raw.protocol.startsWith('modbus') ? 9600 : raw.protocol === 'dlt645-1997' ? 1200 : 2400,
        parity: raw.protocol.startsWith('modbus') ? 'none' : 'even',
      }),
    maxGap: raw.maxGap ?? 0,
    points,
    groups,
    blocks: (raw.blocks ?? []).map((b) => ({ di: b.di.toUpperCase(), points: b.points })),
    status,
    ...(credit ? { credit: credit.spec } : {}),
    ...(subsidy ? { subsidy: subsidy.spec } : {}),
    relay: raw.relay,
    verificationYears: raw.verification?.periodYears ?? DEFAULT_VERIFICATION_YEARS,
    ...(raw.account ? { account: raw.account } : {}),
    ...(raw.alerts ? { alerts: { conditions: raw.alerts.conditions ?? {}, counters: raw.alerts.counters ?? {} } } : {}),
    source: file,
  };
}

/**
 * The profile's credit methods, each checked by creditSchema where it stands: one method, or a list of at most one
 * purchase method and one free-energy method.
 */
function creditMethods(
  raw: RawProfile,
  src: YamlSource,
  issues: SourceIssue[],
): { credit?: { spec: CreditSpec; path: PropertyKey[] }; subsidy?: { spec: SubsidySpec; path: PropertyKey[] } } {
  if (raw.credit === undefined) return {};
  const listed = Array.isArray(raw.credit);
  const bodies = Array.isArray(raw.credit) ? raw.credit : [raw.credit];
  const out: { credit?: { spec: CreditSpec; path: PropertyKey[] }; subsidy?: { spec: SubsidySpec; path: PropertyKey[] } } = {};
  bodies.forEach((body, k) => {
    const path: PropertyKey[] = listed ? ['credit', k] : ['credit'];
    const r = creditSchema.safeParse(body);
    if (!r.success) {
      issues.push(...src.zodIssues(r.error, path));
      return;
    }
    const spec = r.data;
    if (spec.method === 'modbus-subsidy') {
      if (out.subsidy) issues.push(src.issue([...path, 'method'], 'a profile has at most one free-energy method'));
      else out.subsidy = { spec, path };
    } else if (out.credit) {
      issues.push(src.issue([...path, 'method'], `a profile has at most one purchase method (${out.credit.spec.method} is the other)`));
    } else out.credit = { spec, path };
  });
  return out;
}

/** Years between periodic verifications when a profile does not say (docs/lifecycle.md § Periodic verification). */
export const DEFAULT_VERIFICATION_YEARS = 8;

/** The format of the value a point finally yields (one item of a block, one field of a record), or why not. */
function elementFormat(
  format: ValueFormat,
  item: number | undefined,
  field: string | undefined,
  _tableFormat?: ValueFormat,
): ValueFormat | string {
  if (item !== undefined) {
    if (format.kind !== 'repeat') return `item ${item} needs a block or list identifier, this one is a single value`;
    return format.item;
  }
  if (field !== undefined) {
    if (format.kind !== 'record') return `field "${field}" needs a record identifier, this one has no fields`;
    const f = format.fields.find((x) => x.name === field);
    return f ? f.format : `no field "${field}"; the record has ${format.fields.map((x) => x.name).join(', ')}`;
  }
  return format;
}

function fieldUnit(format: ValueFormat | undefined, field: string | undefined): string | undefined {
  if (!format || field === undefined || format.kind !== 'record') return undefined;
  return format.fields.find((f) => f.name === field)?.unit;
}

/** Byte size helper re-exported for drivers that plan block reads. */
export { formatSize };
