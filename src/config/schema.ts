import { z } from 'zod';
import { alertsSchema, clockSchema } from './alerts.js';
import { parseBrokerUrl } from './broker-url.js';
import { MODBUS_UNIT_MAX, MODBUS_UNIT_MIN } from './limits.js';
import { districtLinelossSchema, linelossSchema } from './lineloss.js';
import { parseCustomerNo } from '../values/index.js';
import { allowanceSchema } from './allowances.js';
import { webSchema } from './web.js';
import { supplySchema } from './supply.js';

/** Ids become MQTT topic levels: no wildcards, no separators, not empty. */
export const topicSafeId = z
  .string()
  .min(1, 'an id cannot be empty')
  .max(64)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'an id may hold letters, digits, dot, dash and underscore (no "/", "+", "#" or spaces: it becomes an MQTT topic level)',
  );

/** A secret written inline, or read from an environment variable or a file so it never sits in the config. */
export const secret = z.union([z.string(), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })]);

const duration = z.union([z.string(), z.number()]);

/** A broker URL checked the way the gateway will use it (broker-url.ts). */
const brokerUrl = z.string().superRefine((url, ctx) => {
  const checked = parseBrokerUrl(url);
  if (!checked.ok) ctx.addIssue({ code: 'custom', message: checked.message });
});

export const busSchema = z.strictObject({
  id: topicSafeId,
  /** /dev/ttyUSB0, or tcp://host:port for a serial-over-Ethernet converter. */
  port: z.string().min(1),
  /**
   * Modbus framing on this bus when it differs from the meters' profiles: `modbus-tcp` for RTU meters behind a
   * Modbus TCP gateway, `modbus-rtu` for a transparent serial-over-TCP converter. Default: from the profiles.
   */
  protocol: z.enum(['modbus-rtu', 'modbus-tcp']).optional(),
  baudRate: z.number().int().positive().optional(),
  parity: z.enum(['none', 'even', 'odd']).optional(),
  dataBits: z.union([z.literal(7), z.literal(8)]).optional(),
  stopBits: z.union([z.literal(1), z.literal(2)]).optional(),
  /** Reply deadline per attempt; default from the baud rate. */
  timeout: duration.optional(),
  retries: z.number().int().min(0).max(5).default(2),
  /**
   * Pause between frames, for RS-485 turnaround: about four character times at 2400 baud, enough for adapters with
   * automatic direction control. Raise it for slow converters or radio links.
   */
  gap: duration.default('20ms'),
  /** How many routine polls may wait for the bus before new ones are skipped (and counted). */
  maxQueuedPolls: z.number().int().min(1).default(64),
});

export const meterSchema = z.strictObject({
  id: topicSafeId,
  bus: topicSafeId,
  /** DL/T 645 address, 12 digits (quote it: leading zeros matter). */
  address: z.string().optional(),
  /** Modbus unit id: 1 to 247 (0 is broadcast, which no meter answers). */
  unit: z
    .number()
    .int()
    .min(MODBUS_UNIT_MIN, `a Modbus unit id is ${MODBUS_UNIT_MIN} to ${MODBUS_UNIT_MAX} (0 is broadcast, which no meter answers)`)
    .max(MODBUS_UNIT_MAX, `a Modbus unit id is ${MODBUS_UNIT_MIN} to ${MODBUS_UNIT_MAX}`)
    .optional(),
  profile: z.string().min(1),
  district: topicSafeId.optional(),
  /** Customer number the meter checks on every load (prepaid meters bound to an account), 1 to 12 digits. */
  customerNo: z
    .string()
    .superRefine((value, ctx) => {
      // The rule every door uses (src/values), so a number the config takes is one a top-up may carry.
      const parsed = parseCustomerNo(value);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', message: `a customer number ${parsed.reason}` });
    })
    .optional(),
  tags: z.array(z.string()).default([]),
  /** This meter's periodic verification period, over its profile's (docs/lifecycle.md). */
  verification: z.strictObject({ periodYears: z.number().int('is a whole number of years').min(1).max(30) }).optional(),
});

export const configSchema = z.strictObject({
  gateway: z.strictObject({
    id: topicSafeId,
    dataDir: z.string().default('./data'),
    /** IANA zone for schedules, daily books and meter clocks, e.g. Asia/Shanghai; default: the system zone. */
    timeZone: z.string().optional(),
  }),
  mqtt: z.strictObject({
    /** mqtt://host:port, mqtts://, ws://host:port/path or wss://; host and port required (broker-url.ts). */
    /**
     * One broker, or the nodes of a broker cluster in order: the gateway connects to the first that answers and moves
     * to the next on failure. An entry may carry its own credentials and TLS files.
     */
    url: z.union([
      brokerUrl,
      z
        .array(
          z.union([
            brokerUrl,
            z.strictObject({
              url: brokerUrl,
              username: z.string().optional(),
              password: secret.optional(),
              ca: z.string().optional(),
              cert: z.string().optional(),
              key: z.string().optional(),
            }),
          ]),
        )
        .min(1, 'name at least one broker url')
        .max(16, 'at most 16 broker urls'),
    ]),
    clientId: z.string().optional(),
    username: z.string().optional(),
    password: secret.optional(),
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    topicPrefix: z
      .string()
      .regex(/^[^+#]+$/, 'the topic prefix cannot hold + or #')
      .default('meterd'),
    keepalive: z.number().int().min(5).max(3600).default(30),
    /** 5 (MQTT 5, default) or 4 (3.1.1; the embedded broker speaks only 3.1.1). */
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
    /** Messages in flight at once while draining the outbox. */
    inflight: z.number().int().min(1).max(1000).default(32),
    /**
     * Longest wait between reconnect attempts (doubling from 1 s, each ±20 %): after a broker outage the gateway is
     * back at most about this long after the broker.
     */
    reconnectMaxDelay: duration.default('30s'),
    /** Refusals by the broker after which a message moves to the dead letters, so it holds nothing up. */
    deadLetterAfter: z.number().int().min(1).max(100).default(5),
  }),
  buses: z.array(busSchema).default([]),
  meters: z.array(meterSchema).default([]),
  districts: z
    .array(
      z.strictObject({
        id: topicSafeId,
        name: z.string().optional(),
        supplyMeter: topicSafeId.optional(),
        ctRatio: z.number().positive().default(1),
        ptRatio: z.number().positive().default(1),
        /** Line-loss thresholds (docs/lineloss.md). */
        lineloss: districtLinelossSchema,
      }),
    )
    .default([]),
  /** When the districts' daily freezes are read and how long missing ones are recalled (docs/lineloss.md). */
  lineloss: linelossSchema,
  polling: z
    .strictObject({
      /** Override a profile group's interval by group name: { instant: 10s }. */
      intervals: z.record(z.string(), duration).default({}),
      offlineAfter: z.number().int().min(1).default(3),
      offlineProbe: duration.default('5m'),
    })
    .default({ intervals: {}, offlineAfter: 3, offlineProbe: '5m' }),
  storage: z
    .strictObject({
      retentionDays: z.number().int().min(1).default(90),
      maxBytes: z
        .union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB)$/i, 'a size like 500MB or 2GB')])
        .default('1GB'),
    })
    .default({ retentionDays: 90, maxBytes: '1GB' }),
  credentials: z
    .strictObject({
      /** DL/T 645 password (level + password, 8 hex digits) and operator code for writes and relay commands. */
      dlt645: z
        .strictObject({
          password: secret.default('02000000'),
          operator: z
            .string()
            .regex(/^[0-9A-Fa-f]{8}$/, 'the operator code is 8 hex digits')
            .default('00000000'),
        })
        .optional(),
    })
    .default({}),
  credit: z
    .strictObject({
      /** After a remote top-up, close a relay the meter left open (station policy; default yes). */
      closeRelayAfterTopup: z.boolean().default(true),
      /** ESAM meters: how long one answer of the station's encryption machine may take (inside the meter's 5-minute window). */
      hsmTimeout: duration.default('60s'),
    })
    .default({ closeRelayAfterTopup: true, hsmTimeout: '60s' }),
  commands: z
    .strictObject({
      /** HMAC-SHA256 key shared with the station; when set, every command must be signed with it. */
      hmacKey: secret.optional(),
      /**
       * Without hmacKey: run unsigned commands that move money or cut power (top-up, relay, card sale, time-sync).
       * Off by default; for the demo and test benches only.
       */
      allowUnsigned: z.boolean().default(false),
      /**
       * MQTT 5 response topics a request may name must lie below this prefix, e.g. `station/replies`. Not set: every
       * reply goes to `<topicPrefix>/<gatewayId>/cmd/<command>/result`.
       */
      responseTopicPrefix: z
        .string()
        .refine(
          (prefix) => /^[^$/+#][^+#]*$/.test(prefix) && !prefix.includes('\0'),
          'a response topic prefix is a topic such as station/replies: no +, # or NUL, not starting with $ or /',
        )
        .refine(
          (prefix) => !prefix.endsWith('/') && !prefix.includes('//'),
          'a response topic prefix has no empty level (no trailing or double /)',
        )
        .optional(),
      maxPayloadBytes: z.number().int().min(256).default(16384),
      /**
       * How long the record of a finished command is kept (a request id seen again within it is answered from the
       * record and never runs twice). At least 2d, the replay window; default 30d.
       */
      keepFor: duration.default('30d'),
    })
    .optional(),
  /** The local control socket the `meterd` CLI talks to the running daemon through (docs/control-socket.md). */
  control: z
    .strictObject({
      /** Path of the Unix socket; default `<dataDir>/meterd.sock`. Mode 0660: the service user and its group. */
      socket: z.string().min(1).optional(),
    })
    .optional(),
  profiles: z.strictObject({ dirs: z.array(z.string()).default([]) }).optional(),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).optional(),
  /** Sections owned by later features; kept so configs written for them still load. */
  /** IC-card encoders at the counter, served over MQTT (card-sell, card-read). */
  encoders: z
    .array(
      z.strictObject({
        id: topicSafeId,
        /** /dev/ttyUSB1, or tcp://host:port for an encoder behind a serial-over-Ethernet converter. */
        port: z.string().min(1),
        /** Encoder profile id (device-profiles/encoders). */
        profile: z.string().default('star-st102'),
        /** Card layout id (device-profiles/cards). */
        layout: z.string().default('sle4442-dorm'),
        /** The cards' PSC, 6 hex digits; default the layout's. */
        psc: secret.optional(),
      }),
    )
    .default([]),
  /** Free electricity for groups of meters on the dates of a term calendar (docs/allowances.md). */
  allowances: z.array(allowanceSchema).default([]),
  /** The station's recall of telemetry it missed (docs/mqtt-api.md § recall). */
  uplink: z
    .strictObject({
      /** The most `seq` numbers one recall request may ask for. */
      recallMaxRange: z.number().int().min(1).max(1_000_000).default(10_000),
      /** Recalled messages are queued in chunks of this many, only while the live backlog is small. */
      recallChunk: z.number().int().min(1).max(10_000).default(200),
    })
    .optional(),
  /** Meter-fault alert thresholds and severities (docs/alerts.md). */
  alerts: alertsSchema.optional(),
  /** Keeping meter clocks right (docs/alerts.md § Meter clocks). */
  clock: clockSchema.optional(),
  /** The local web console (docs/web-console.md). */
  web: webSchema.optional(),
  /** Cut off and restore with a notice and a second person's approval (docs/lifecycle.md). */
  supply: supplySchema,
});

export type RawConfig = z.infer<typeof configSchema>;
