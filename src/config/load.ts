import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { z } from 'zod';
import { parseAddress, parsePassword, type Address, type Password } from '../../protocols/dlt645/index.js';
import type { DeviceProfile, LineSettings } from '../profiles/types.js';
import { COMMAND_REPLAY_WINDOW_MS } from '../store/commands.js';
import { pseudoFileSystemProblem } from './data-dir.js';
import { resolveAlerts, type AlertsConfig, type ClockConfig } from './alerts.js';
import { durationProblem, parseDuration } from './duration.js';
import { LIMITS, MAX_CONFIG_BYTES } from './limits.js';
import { districtIssues, type DistrictConfig, type LinelossSettings } from './lineloss.js';
import { configSchema, type secret } from './schema.js';
import { resolveAllowances, type AllowanceConfig } from './allowances.js';
import { formatIssue, YamlSource, type SourceIssue } from './yaml-source.js';
import { MeterdError } from '../errors.js';
import { hostTimeZone, isTimeZone } from '../time-zone.js';
import { resolveWeb, type WebConfig } from './web.js';
import { resolveSupply, type SupplySettings } from './supply.js';

export type BusProtocol = 'dlt645' | 'modbus-rtu' | 'modbus-tcp';

export interface BusConfig {
  readonly id: string;
  readonly port: string;
  readonly protocol: BusProtocol;
  readonly line: LineSettings;
  readonly timeoutMs?: number;
  readonly retries: number;
  readonly gapMs: number;
  readonly maxQueuedPolls: number;
}

export interface MeterConfig {
  readonly id: string;
  readonly busId: string;
  readonly address?: Address;
  readonly unit?: number;
  readonly profile: DeviceProfile;
  readonly district?: string;
  readonly customerNo?: string;
  readonly tags: readonly string[];
  /** Years between periodic verifications: the meter's own, else its profile's (docs/lifecycle.md). */
  readonly verificationYears: number;
  /** The config line of its address (or of its entry), for messages that ask a person to change it. */
  readonly line: number;
}

/** The gateway configuration, validated and resolved: paths absolute, secrets read, profiles attached. */
export interface GatewayConfig {
  readonly source: string;
  readonly gateway: { readonly id: string; readonly dataDir: string; readonly timeZone: string };
  readonly mqtt: {
    /** The first broker (of `brokers`): what status lines show when no connection says otherwise. */
    readonly url: string;
    /** Every broker to try, in order, with its own credentials and TLS files (a cluster's nodes, or one broker). */
    readonly brokers: readonly BrokerEndpoint[];
    readonly clientId: string;
    readonly username?: string;
    readonly password?: string;
    readonly ca?: string;
    readonly cert?: string;
    readonly key?: string;
    readonly topicPrefix: string;
    readonly keepalive: number;
    readonly protocolVersion: 4 | 5;
    readonly inflight: number;
    /** Reconnect delays double up to this (then ±20 % jitter, so a fleet does not reconnect in step). */
    readonly reconnectMaxDelayMs: number;
    /** Refusals by the broker after which a message moves to the dead letters. */
    readonly deadLetterAfter: number;
  };
  readonly buses: readonly BusConfig[];
  readonly meters: readonly MeterConfig[];
  readonly districts: readonly DistrictConfig[];
  /** When districts' daily freezes are read and how long missing ones are recalled (docs/lineloss.md). */
  readonly lineloss: LinelossSettings;
  readonly polling: {
    readonly intervalsMs: Readonly<Record<string, number>>;
    readonly offlineAfter: number;
    readonly offlineProbeMs: number;
  };
  readonly storage: { readonly retentionDays: number; readonly maxBytes: number };
  readonly credentials: { readonly dlt645: { readonly password: Password; readonly operator: string } };
  readonly commands: {
    readonly hmacKey?: string;
    /** Without hmacKey: run unsigned commands that move money or cut power (src/uplink/commands/auth-policy.ts). */
    readonly allowUnsigned: boolean;
    /** MQTT 5 response topics are used only below this prefix; undefined: replies go to cmd/<command>/result. */
    readonly responseTopicPrefix?: string;
    readonly maxPayloadBytes: number;
    /** Records of finished commands are deleted after this, never inside the replay window. */
    readonly keepForMs: number;
  };
  readonly credit: { readonly closeRelayAfterTopup: boolean; readonly hsmTimeoutMs?: number };
  /** The local control socket: absolute path (`control.socket`, default `<dataDir>/meterd.sock`). */
  readonly control: { readonly socketPath: string };
  readonly profileDirs: readonly string[];
  readonly logLevel: string;
  readonly uplink: { readonly recallMaxRange: number; readonly recallChunk: number };
  /** Meter-fault alert thresholds, with their per-tag, district and meter overrides. */
  readonly alerts: AlertsConfig;
  readonly clock: ClockConfig;
  readonly encoders: readonly {
    readonly id: string;
    readonly port: string;
    readonly profile: string;
    readonly layout: string;
    readonly psc?: string;
  }[];
  /** Free electricity allowances (docs/allowances.md). */
  readonly allowances: readonly AllowanceConfig[];
  /** The local web console (docs/web-console.md). */
  readonly web: WebConfig;
  /** Notice period and protected windows of supply cuts (docs/lifecycle.md). */
  readonly supply: SupplySettings;
  /** What `config check` prints and the daemon logs but does not refuse: a tag that selects nothing, … */
  readonly warnings: readonly SourceIssue[];
}

/** One broker node the gateway may connect to. */
export interface BrokerEndpoint {
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export class ConfigError extends MeterdError<'CONFIG_INVALID'> {
  override readonly name = 'ConfigError';
  constructor(readonly issues: SourceIssue[]) {
    super('CONFIG_INVALID', issues.map(formatIssue).join('\n'));
  }
}

export interface ConfigEnvironment {
  env: NodeJS.ProcessEnv;
  /** Profiles by id, already loaded from the shipped folder and the config's extra folders. */
  profiles: ReadonlyMap<string, DeviceProfile>;
  readFile?: (path: string) => string;
}

/** Parse and validate a config text; every problem is listed with file and line, nothing stops at the first. */
export function parseConfig(
  text: string,
  file: string,
  envs: ConfigEnvironment,
): { ok: true; config: GatewayConfig } | { ok: false; issues: SourceIssue[] } {
  return parseConfigSource(new YamlSource(file, text), envs);
}

/** parseConfig of a file already parsed as YAML (the loader reads `profiles.dirs` from the same parse). */
export function parseConfigSource(
  src: YamlSource,
  envs: ConfigEnvironment,
): { ok: true; config: GatewayConfig } | { ok: false; issues: SourceIssue[] } {
  const syntax = src.syntaxIssues();
  if (syntax.length > 0) return { ok: false, issues: syntax };
  // Counted before the schema walks every entry: a file far over the limits is refused at once.
  const counts = countIssues(src);
  if (counts.length > 0) return { ok: false, issues: counts };
  const parsed = configSchema.safeParse(src.toJS() ?? {});
  if (!parsed.success) return { ok: false, issues: src.zodIssues(parsed.error) };
  const issues: SourceIssue[] = [];
  const warnings: SourceIssue[] = [];
  const config = resolveConfig(parsed.data, src, src.file, envs, issues, warnings);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, config };
}

/**
 * A config file's text, refused before parsing when it is no regular file (a FIFO or /dev/zero would block or never
 * end) or larger than MAX_CONFIG_BYTES. Throws ConfigError naming the file, without a line.
 */
export function readConfigText(path: string): string {
  const refuse = (message: string): never => {
    throw new ConfigError([{ file: path, line: 0, path: '', message }]);
  };
  try {
    const stat = statSync(path);
    if (!stat.isFile()) refuse(`cannot read the config file: it is ${stat.isDirectory() ? 'a directory' : 'not a regular file'}`);
    if (stat.size > MAX_CONFIG_BYTES) {
      refuse(
        `the config file is ${stat.size} bytes; a config is at most ${MAX_CONFIG_BYTES} bytes (2 MiB, far more than ${LIMITS.metersPerGateway} meters need)`,
      );
    }
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return refuse(`cannot read the config file: ${(err as Error).message}`);
  }
}

export function loadConfigFile(path: string, envs: ConfigEnvironment): GatewayConfig {
  const r = parseConfig(readConfigText(path), path, envs);
  if (!r.ok) throw new ConfigError(r.issues);
  return r.config;
}

type Raw = z.infer<typeof configSchema>;

/** More buses or meters than one gateway is built for (LIMITS), each named at the first entry over the limit. */
function countIssues(src: YamlSource): SourceIssue[] {
  const value = src.toJS() as { buses?: unknown; meters?: unknown } | null | undefined;
  const issues: SourceIssue[] = [];
  const over = (section: 'buses' | 'meters', limit: number, what: string) => {
    const list = value?.[section];
    if (Array.isArray(list) && list.length > limit) {
      issues.push(src.issue([section, limit], `${list.length} ${section}; one gateway takes at most ${limit} ${section}${what}`));
    }
  };
  if (value !== null && typeof value === 'object') {
    over('buses', LIMITS.busesPerGateway, ' (serial adapters and converters): run a second gateway for the rest');
    over('meters', LIMITS.metersPerGateway, ': split them over more gateways');
  }
  return issues;
}

function resolveConfig(
  raw: Raw,
  src: YamlSource,
  file: string,
  envs: ConfigEnvironment,
  issues: SourceIssue[],
  warnings: SourceIssue[],
): GatewayConfig {
  const at = (path: PropertyKey[], message: string) => issues.push(src.issue(path, message));
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const readSecret = (value: z.infer<typeof secret> | undefined, path: PropertyKey[]): string | undefined => {
    if (value === undefined || typeof value === 'string') return value;
    if ('env' in value) {
      const v = envs.env[value.env];
      if (v === undefined) at(path, `environment variable ${value.env} is not set`);
      return v;
    }
    try {
      return (envs.readFile ?? ((p: string) => readFileSync(p, 'utf8')))(abs(value.file)).trim();
    } catch (err) {
      at(path, `cannot read secret file ${value.file}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const durationAt = (v: string | number, path: PropertyKey[], min: number): number => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min) at(path, durationProblem(v, min));
    return ms ?? min;
  };

  // One encryption-machine answer must leave room inside the meter's 5-minute authentication window for the recharge.
  const hsmTimeoutMs = () => {
    const ms = durationAt(raw.credit.hsmTimeout, ['credit', 'hsmTimeout'], 1000);
    if (ms > 240_000)
      at(
        ['credit', 'hsmTimeout'],
        `"${raw.credit.hsmTimeout}" is too long: an ESAM meter's authentication lasts 5 minutes; use at most 4m`,
      );
    return ms;
  };

  // Replies are never published in the gateways' own tree, so a prefix there would refuse every response topic.
  const responseTopicPrefix = () => {
    const prefix = raw.commands?.responseTopicPrefix;
    const tree = raw.mqtt.topicPrefix;
    if (prefix !== undefined && (prefix === tree || prefix.startsWith(`${tree}/`))) {
      at(
        ['commands', 'responseTopicPrefix'],
        `${prefix} lies in the gateways' tree ${tree}/…, where replies are never published; choose a prefix outside it, e.g. station/replies`,
      );
    }
    return prefix;
  };

  // A shorter keep would forget a request the broker may still deliver, or a station still retry, and run it twice.
  const commandsKeepForMs = () => {
    const keepFor = raw.commands?.keepFor ?? '30d';
    const ms = parseDuration(keepFor);
    if (ms === undefined) {
      at(['commands', 'keepFor'], durationProblem(keepFor, COMMAND_REPLAY_WINDOW_MS));
      return COMMAND_REPLAY_WINDOW_MS;
    }
    if (ms < COMMAND_REPLAY_WINDOW_MS) {
      at(
        ['commands', 'keepFor'],
        `"${keepFor}" is shorter than the replay window of 2d: a command the broker kept for an offline gateway, or a station's retry, must still find its record; use at least 2d (default 30d)`,
      );
    }
    return Math.max(ms, COMMAND_REPLAY_WINDOW_MS);
  };

  // Above an hour a gateway would sit out most of a short broker outage; below a second it would hammer the broker.
  const reconnectMaxDelayMs = () => {
    const ms = durationAt(raw.mqtt.reconnectMaxDelay, ['mqtt', 'reconnectMaxDelay'], 1000);
    if (ms > 3_600_000) at(['mqtt', 'reconnectMaxDelay'], `"${raw.mqtt.reconnectMaxDelay}" is too long; use at most 1h (default 30s)`);
    return ms;
  };

  const unique = (items: { id: string }[], section: string) => {
    const seen = new Map<string, number>();
    items.forEach((it, i) => {
      const first = seen.get(it.id);
      if (first !== undefined) at([section, i, 'id'], `duplicate id "${it.id}" (first used at ${section}[${first}])`);
      else seen.set(it.id, i);
    });
  };
  unique(raw.buses, 'buses');
  unique(raw.meters, 'meters');
  unique(raw.districts, 'districts');

  const perBus = new Map<string, number>();
  raw.meters.forEach((m, i) => {
    const count = (perBus.get(m.bus) ?? 0) + 1;
    perBus.set(m.bus, count);
    if (count === LIMITS.metersPerBus + 1) {
      const total = raw.meters.filter((other) => other.bus === m.bus).length;
      at(
        ['meters', i, 'bus'],
        `bus ${m.bus} has ${total} meters; one RS-485 line carries at most ${LIMITS.metersPerBus} (32 unit loads, 1/8-load transceivers): put the rest on another bus`,
      );
    }
  });

  const busIds = new Set(raw.buses.map((b) => b.id));
  const districtIds = new Set(raw.districts.map((d) => d.id));
  const meters: MeterConfig[] = [];
  const addressesOnBus = new Map<string, number>();
  raw.meters.forEach((m, i) => {
    const profile = envs.profiles.get(m.profile);
    if (!busIds.has(m.bus)) at(['meters', i, 'bus'], `no bus "${m.bus}"; buses are: ${[...busIds].join(', ') || '(none)'}`);
    if (m.district !== undefined && !districtIds.has(m.district)) at(['meters', i, 'district'], `no district "${m.district}" in districts`);
    if (!profile) {
      at(['meters', i, 'profile'], `unknown profile "${m.profile}"; known: ${[...envs.profiles.keys()].sort().join(', ')}`);
      return;
    }
    let address: Address | undefined;
    if (profile.protocol.startsWith('dlt645')) {
      if (m.address === undefined)
        at(['meters', i], `meter ${m.id} uses DL/T 645 profile ${profile.id}: give its address, e.g. address: "000012345678"`);
      else {
        const a = parseAddress(m.address);
        if (!a.ok) at(['meters', i, 'address'], a.error.message);
        else address = a.value;
      }
      if (m.unit !== undefined) at(['meters', i, 'unit'], 'unit is for Modbus meters; a DL/T 645 meter has an address');
    } else {
      if (m.unit === undefined) at(['meters', i], `meter ${m.id} uses Modbus profile ${profile.id}: give its unit id, e.g. unit: 1`);
      if (m.address !== undefined) at(['meters', i, 'address'], 'address is for DL/T 645 meters; a Modbus meter has a unit id');
    }
    const key = `${m.bus}/${address ?? `unit ${m.unit}`}`;
    const prior = addressesOnBus.get(key);
    if (prior !== undefined)
      at(['meters', i], `meter ${m.id} has the same ${address ? 'address' : 'unit id'} as meters[${prior}] on bus ${m.bus}`);
    else addressesOnBus.set(key, i);
    meters.push({
      id: m.id,
      busId: m.bus,
      address,
      unit: m.unit,
      profile,
      district: m.district,
      customerNo: m.customerNo,
      tags: m.tags,
      verificationYears: m.verification?.periodYears ?? profile.verificationYears,
      line: src.lineOf(['meters', i, m.address !== undefined ? 'address' : 'unit']),
    });
  });

  const buses: BusConfig[] = raw.buses.map((b, i) => {
    const on = meters.filter((m) => m.busId === b.id);
    const kinds = new Set(on.map((m) => (m.profile.protocol.startsWith('dlt645') ? 'dlt645' : m.profile.protocol)));
    // RTU and TCP profiles may share a bus whose framing the bus names; DL/T 645 and Modbus never can.
    if (b.protocol !== undefined && kinds.has('modbus-rtu') && kinds.has('modbus-tcp')) kinds.delete('modbus-rtu');
    if (kinds.size > 1) at(['buses', i], `bus ${b.id} mixes ${[...kinds].join(' and ')} meters; their framings cannot share one line`);
    const derived = ([...kinds][0] ?? (b.protocol ? b.protocol : 'dlt645')) as BusProtocol;
    if (b.protocol !== undefined && derived === 'dlt645' && on.length > 0)
      at(['buses', i, 'protocol'], `bus ${b.id} carries DL/T 645 meters; protocol ${b.protocol} is for Modbus buses`);
    const protocol: BusProtocol = derived !== 'dlt645' && b.protocol !== undefined ? b.protocol : derived;
    const lines = new Set(on.map((m) => JSON.stringify(m.profile.line)));
    const fromProfile = on[0]?.profile.line;
    const explicit = b.baudRate !== undefined && b.parity !== undefined;
    if (lines.size > 1 && !explicit)
      at(['buses', i], `meters on bus ${b.id} have profiles with different line settings; set baudRate and parity on the bus`);
    const line: LineSettings = {
      baudRate: b.baudRate ?? fromProfile?.baudRate ?? 2400,
      parity: b.parity ?? fromProfile?.parity ?? 'even',
      dataBits: b.dataBits ?? fromProfile?.dataBits ?? 8,
      stopBits: b.stopBits ?? fromProfile?.stopBits ?? 1,
    };
    if (protocol === 'modbus-tcp' && !b.port.startsWith('tcp://'))
      at(['buses', i, 'port'], `Modbus TCP meters need a tcp://host:port bus, not ${b.port}`);
    return {
      id: b.id,
      port: b.port,
      protocol,
      line,
      timeoutMs: b.timeout === undefined ? undefined : durationAt(b.timeout, ['buses', i, 'timeout'], 10),
      retries: b.retries,
      gapMs: durationAt(b.gap, ['buses', i, 'gap'], 0),
      maxQueuedPolls: b.maxQueuedPolls,
    };
  });

  for (const issue of districtIssues(raw.districts, raw.meters, busIds, envs.profiles)) at(issue.path, issue.message);

  const groupNames = new Set(meters.flatMap((m) => m.profile.groups.map((g) => g.name)));
  const intervalsMs: Record<string, number> = {};
  for (const [group, v] of Object.entries(raw.polling.intervals)) {
    if (meters.length > 0 && !groupNames.has(group))
      at(['polling', 'intervals', group], `no profile in use has a group "${group}"; groups are: ${[...groupNames].sort().join(', ')}`);
    intervalsMs[group] = durationAt(v, ['polling', 'intervals', group], 1000);
  }

  const dlt = raw.credentials.dlt645;
  const pwText = readSecret(dlt?.password ?? '02000000', ['credentials', 'dlt645', 'password']) ?? '02000000';
  const pw = parsePassword(pwText);
  if (!pw.ok) at(['credentials', 'dlt645', 'password'], pw.error.message);

  // Entries without their own credentials or TLS files take the section's.
  const brokers: BrokerEndpoint[] = (Array.isArray(raw.mqtt.url) ? raw.mqtt.url : [raw.mqtt.url]).map((entry, i) => {
    const e = typeof entry === 'string' ? { url: entry } : entry;
    const own = typeof entry === 'object';
    const password =
      own && e.password !== undefined
        ? readSecret(e.password, ['mqtt', 'url', i, 'password'])
        : readSecret(raw.mqtt.password, ['mqtt', 'password']);
    const file = (v: string | undefined) => v && abs(v);
    return {
      url: e.url,
      ...((own && e.username) || raw.mqtt.username ? { username: (own && e.username) || raw.mqtt.username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(file((own && e.ca) || raw.mqtt.ca) ? { ca: file((own && e.ca) || raw.mqtt.ca) } : {}),
      ...(file((own && e.cert) || raw.mqtt.cert) ? { cert: file((own && e.cert) || raw.mqtt.cert) } : {}),
      ...(file((own && e.key) || raw.mqtt.key) ? { key: file((own && e.key) || raw.mqtt.key) } : {}),
    };
  });
  const dataDir = abs(raw.gateway.dataDir);
  // A Unix socket's path fits in sockaddr_un.sun_path: 108 bytes with the NUL on Linux.
  const controlSocketPath = () => {
    const path = raw.control?.socket === undefined ? join(dataDir, 'meterd.sock') : abs(raw.control.socket);
    if (Buffer.byteLength(path) > 107)
      at(
        raw.control?.socket === undefined ? ['gateway', 'dataDir'] : ['control', 'socket'],
        `the control socket ${path} is longer than 107 bytes, the limit of a Unix socket path: choose a shorter path (control.socket)`,
      );
    return path;
  };
  if (raw.gateway.timeZone !== undefined && !isTimeZone(raw.gateway.timeZone))
    at(['gateway', 'timeZone'], `"${raw.gateway.timeZone}" is not a time zone: write an IANA name such as Asia/Shanghai or UTC`);
  const pseudo = pseudoFileSystemProblem(dataDir);
  if (pseudo !== undefined) at(['gateway', 'dataDir'], `${dataDir} ${pseudo}`);

  return {
    source: file,
    gateway: {
      id: raw.gateway.id,
      dataDir,
      timeZone: raw.gateway.timeZone ?? hostTimeZone(),
    },
    mqtt: {
      url: brokers[0]!.url,
      brokers,
      clientId: raw.mqtt.clientId ?? `meterd-${raw.gateway.id}`,
      username: raw.mqtt.username,
      password: readSecret(raw.mqtt.password, ['mqtt', 'password']),
      ca: raw.mqtt.ca && abs(raw.mqtt.ca),
      cert: raw.mqtt.cert && abs(raw.mqtt.cert),
      key: raw.mqtt.key && abs(raw.mqtt.key),
      topicPrefix: raw.mqtt.topicPrefix,
      keepalive: raw.mqtt.keepalive,
      protocolVersion: raw.mqtt.protocolVersion,
      inflight: raw.mqtt.inflight,
      reconnectMaxDelayMs: reconnectMaxDelayMs(),
      deadLetterAfter: raw.mqtt.deadLetterAfter,
    },
    buses,
    meters,
    districts: raw.districts.map((d) => ({
      id: d.id,
      name: d.name,
      supplyMeter: d.supplyMeter,
      ctRatio: d.ctRatio,
      ptRatio: d.ptRatio,
      lineloss: d.lineloss,
    })),
    lineloss: {
      readAt: raw.lineloss.readAt,
      recallDays: raw.lineloss.recallDays,
      recallEveryMs: durationAt(raw.lineloss.recallEvery, ['lineloss', 'recallEvery'], 60_000),
    },
    polling: {
      intervalsMs,
      offlineAfter: raw.polling.offlineAfter,
      offlineProbeMs: durationAt(raw.polling.offlineProbe, ['polling', 'offlineProbe'], 1000),
    },
    storage: { retentionDays: raw.storage.retentionDays, maxBytes: parseSize(raw.storage.maxBytes) },
    credentials: {
      dlt645: { password: pw.ok ? pw.value : { level: 2, code: '000000' }, operator: (dlt?.operator ?? '00000000').toUpperCase() },
    },
    commands: {
      hmacKey: readSecret(raw.commands?.hmacKey, ['commands', 'hmacKey']),
      allowUnsigned: raw.commands?.allowUnsigned ?? false,
      responseTopicPrefix: responseTopicPrefix(),
      maxPayloadBytes: raw.commands?.maxPayloadBytes ?? 16384,
      keepForMs: commandsKeepForMs(),
    },
    credit: { closeRelayAfterTopup: raw.credit.closeRelayAfterTopup, hsmTimeoutMs: hsmTimeoutMs() },
    control: { socketPath: controlSocketPath() },
    profileDirs: (raw.profiles?.dirs ?? []).map(abs),
    logLevel: raw.log?.level ?? 'info',
    uplink: { recallMaxRange: raw.uplink?.recallMaxRange ?? 10_000, recallChunk: raw.uplink?.recallChunk ?? 200 },
    alerts: resolveAlerts(raw.alerts, at),
    clock: { sync: raw.clock?.sync ?? 'auto', settlementTimes: raw.clock?.settlementTimes ?? [] },
    encoders: raw.encoders.map((e, i) => ({
      id: e.id,
      port: e.port,
      profile: e.profile,
      layout: e.layout,
      psc: readSecret(e.psc, ['encoders', i, 'psc']),
    })),
    allowances: resolveAllowances(
      raw.allowances,
      // An allowance goes to the free-energy registers when the profile has them: their unit is the one that must match.
      meters.map((m) => ({ ...m, creditUnit: m.profile.subsidy?.unit ?? m.profile.credit?.unit })),
      districtIds,
      (path, message) => src.issue(path, message),
      issues,
      warnings,
    ),
    web: resolveWeb(raw.web, at, abs),
    supply: resolveSupply(raw.supply),
    warnings,
  };
}

function parseSize(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)$/i.exec(v)!;
  const f = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2]!.toUpperCase() as 'B' | 'KB' | 'MB' | 'GB'];
  return Math.round(Number(m[1]) * f);
}
