import { z } from 'zod';
import {
  centiKwhFromNumber,
  fenFromNumber,
  MAX_AMOUNT_FEN,
  MAX_ENERGY_KWH,
  MAX_REQUEST_ID_LENGTH,
  type Parsed,
  checkParameterLimits,
  limitFromNumber,
  parseCustomerNo,
  parseMeterAddress,
  parseRequestId,
  priceFromNumber,
} from '../../values/index.js';

/** Command names the router runs, as the last level of `<prefix>/<gatewayId>/cmd/<command>`. */
export const COMMAND_NAMES = [
  'topup',
  'relay',
  'read',
  'time-sync',
  'card-sell',
  'card-read',
  'alert-ack',
  'allowance-run',
  'allowance-resolve',
  'card-open',
  'card-replace',
  'recall',
  'card-rewrite',
  'card-param',
  'supply-notice',
  'supply-approve',
  'supply-cancel',
  'supply-restore',
  'meter-replace',
  'account-open',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

/** Names kept for later commands; answered `UNSUPPORTED_COMMAND` until they are implemented. */
export const RESERVED_COMMAND_NAMES = [] as const;

/** The caps of src/values, the same on every door (CLI, MQTT, card counter, console). */
export const MAX_TOPUP_ENERGY_KWH = MAX_ENERGY_KWH;
export const MAX_TOPUP_AMOUNT_FEN = MAX_AMOUNT_FEN;
export { MAX_REQUEST_ID_LENGTH };
export const MAX_READ_POINTS = 64;

const hex16 = z.string().regex(/^[0-9A-Fa-f]{16}$/, 'must be 16 hex digits (8 bytes)');
const isoTime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time with a zone, e.g. 2025-03-01T08:00:00Z' });

/** Refines a zod type with a parser of src/values, so the schema says exactly what the CLI says. */
function by<T>(parse: (value: T) => Parsed<unknown>) {
  return (value: T, ctx: z.core.$RefinementCtx<T>): void => {
    const parsed = parse(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.reason });
  };
}

export const requestIdSchema = z.string({ error: 'must be a string' }).superRefine(by(parseRequestId));

/** kWh as a JSON number: above 0, at most MAX_ENERGY_KWH, at most two decimals. */
const energyKwh = z.number({ error: 'must be a number of kWh' }).superRefine(by(centiKwhFromNumber));
/** Whole fen as a JSON number: above 0, at most MAX_AMOUNT_FEN. */
const amountFen = z.number({ error: 'must be a number of fen' }).superRefine(by(fenFromNumber));

/** The config's id rule (src/config/schema.ts `topicSafeId`), with messages written for the station. */
const meterId = z
  .string({ error: 'must be a meter id (a string)' })
  .min(1, 'cannot be empty')
  .max(64, 'is longer than 64 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a meter id: letters, digits, dot, dash and underscore');

/** Fields every request may carry. `ts` and `signature` are checked only when `commands.hmacKey` is configured. */
const common = {
  requestId: requestIdSchema,
  /** After this time the gateway rejects the request with EXPIRED instead of running it. */
  expiresAt: isoTime.optional(),
  /** When the station signed the request (HMAC mode). */
  ts: isoTime.optional(),
  /** Hex HMAC-SHA256 over the canonical payload without `signature` (HMAC mode). */
  signature: z
    .string()
    .regex(/^[0-9A-Fa-f]{64}$/, 'must be 64 hex digits (HMAC-SHA256)')
    .optional(),
};

export const topupSchema = z
  .strictObject({
    ...common,
    meter: meterId,
    energyKwh: energyKwh.optional(),
    amountFen: amountFen.optional(),
    /** The station's purchase count for this load, when it keeps one (the gateway checks it against the meter's + 1). */
    purchaseCount: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(0xffff_ffff, 'must fit in 4 bytes')
      .optional(),
    /** 客户编号, 6 BCD bytes: up to 12 digits. */
    customerNo: z.string({ error: 'must be a string of digits' }).superRefine(by(parseCustomerNo)).optional(),
    /** ESAM meters: the station encryption machine's identity-authentication input for this meter (070000FF). */
    esam: z
      .strictObject({
        ciphertext: hex16,
        random: hex16,
        /** Diversification factor; default from the meter address. */
        diversifier: hex16.optional(),
      })
      .optional(),
  })
  .superRefine((value, ctx) => {
    const energy = value.energyKwh !== undefined;
    const money = value.amountFen !== undefined;
    if (energy && money) {
      ctx.addIssue({ code: 'custom', path: ['amountFen'], message: 'cannot be given together with energyKwh: give one of them' });
    } else if (!energy && !money) {
      ctx.addIssue({
        code: 'custom',
        path: ['energyKwh'],
        message: 'is missing: give energyKwh (kWh, at most two decimals) or amountFen (integer fen)',
      });
    }
  })
  .transform((value) => ({
    ...value,
    /** The amount in ledger units: 0.01 kWh for energy, fen for money. Never a float. */
    credit:
      value.energyKwh !== undefined
        ? { unit: 'energy' as const, amount: centiKwh(value.energyKwh) }
        : { unit: 'money' as const, amount: value.amountFen ?? 0 },
  }));

/** An energyKwh the schema passed, in 0.01 kWh: exact, from the number's decimal form. */
function centiKwh(kwh: number): number {
  const parsed = centiKwhFromNumber(kwh);
  if (!parsed.ok) throw new TypeError(`energyKwh ${kwh} passed the schema but ${parsed.reason}`);
  return parsed.value;
}

export const relaySchema = z.strictObject({
  ...common,
  meter: meterId,
  /** `trip` cuts the supply (relay open), `close` restores it. */
  action: z.enum(['trip', 'close'], { error: 'must be "trip" or "close"' }),
  /** Why (the console asks for it): kept in the command record with the operator. */
  reason: z.string({ error: 'must be text' }).max(200, 'is longer than 200 characters').optional(),
});

export const readSchema = z.strictObject({
  ...common,
  meter: meterId,
  /** Canonical point names from the meter's profile, e.g. `energy.active.import`. */
  points: z
    .array(
      z
        .string({ error: 'must be a point name (a string)' })
        .regex(
          /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(\[\d{1,3}\])?$/,
          'must be a point name such as energy.active.import or frozen.daily.energy.active.import[1]',
        ),
      {
        error: 'must be an array of point names',
      },
    )
    .min(1, 'must name at least one point')
    .max(MAX_READ_POINTS, `may name at most ${MAX_READ_POINTS} points`),
});

export const timeSyncSchema = z.strictObject({
  ...common,
  /** One meter, or `all` for every meter of the gateway. */
  meter: z.union([z.literal('all'), meterId], { error: 'must be a meter id or "all"' }),
});

const encoderId = z
  .string({ error: 'must be an encoder id (a string)' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be an encoder id from the gateway config')
  .optional();

/** Sell energy or money onto the customer card in the counter's encoder (card meters; the sale goes to the books). */
export const cardSellSchema = z
  .strictObject({
    ...common,
    meter: meterId,
    encoder: encoderId,
    energyKwh: energyKwh.optional(),
    amountFen: amountFen.optional(),
    /** The cashier selling, recorded in the books. */
    operator: z.string({ error: 'must be the cashier name' }).min(1, 'cannot be empty').max(64, 'is longer than 64 characters'),
    /** The operator confirms adopting a card meter the books have never seen from the count on its card (its first visit). */
    adopt: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .superRefine((value, ctx) => {
    if ((value.energyKwh === undefined) === (value.amountFen === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['energyKwh'],
        message: 'give exactly one of energyKwh (kWh, at most two decimals) or amountFen (integer fen)',
      });
    }
  });

/** Read the card in the counter's encoder. */
export const cardReadSchema = z.strictObject({ ...common, encoder: encoderId });

/** A technician acknowledges an alert and leaves a repair note (clears the kinds a person clears: cover-open, purchase-mismatch, malignant-load). */
export const alertAckSchema = z.strictObject({
  ...common,
  alertId: z
    .string({ error: 'must be an alert id (a string)' })
    .min(1, 'cannot be empty')
    .max(200, 'is longer than 200 characters')
    .regex(/^[A-Za-z0-9._:-]+$/, 'must be an alert id as published on meters/<id>/alerts'),
  /** The technician, recorded with the note. */
  operator: z.string({ error: 'must be the technician name' }).min(1, 'cannot be empty').max(64, 'is longer than 64 characters'),
  /** What was found and done (故障报修 record). */
  note: z.string({ error: 'must be text' }).max(2000, 'is longer than 2000 characters').optional(),
});

/** An allowance, term or round id of the gateway config (topic-safe, as there). */
const allowanceId = (what: string) =>
  z
    .string({ error: `must be ${what} id (a string)` })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, `must be ${what} id from the gateway config: letters, digits, dot, dash and underscore`);

const allowanceRound = {
  allowance: allowanceId('an allowance'),
  term: allowanceId('a term'),
  round: allowanceId('a round'),
};

/** Start a round of an allowance now: plan it if it is not planned, then run its planned and pending rows at once. */
export const allowanceRunSchema = z.strictObject({
  ...common,
  ...allowanceRound,
  /** Also reopen the round's expired rows with a fresh deadline (a round first seen after its deadline, offline meters). */
  force: z.boolean({ error: 'must be true or false' }).optional(),
});

/** A person's decision on an expired or parked row of a round. */
export const allowanceResolveSchema = z.strictObject({
  ...common,
  ...allowanceRound,
  meter: meterId,
  action: z.enum(['retry', 'carry-over', 'cancel'], { error: 'must be "retry", "carry-over" or "cancel"' }),
});
/** The largest seq range one recall may name, whatever the config says (the config's `uplink.recallMaxRange` is lower). */
export const MAX_RECALL_RANGE = 1_000_000;
/** Daily reports one recall may ask for. */
export const MAX_RECALL_DAYS = 62;

const seqNumber = z
  .number({ error: 'must be a seq number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(Number.MAX_SAFE_INTEGER, 'is too large');
const reportDate = z.string({ error: 'must be a date' }).regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD');

/** The station asks again for readings (by seq) or daily reports (by date) its broker lost (补召). */
export const recallSchema = z
  .strictObject({
    ...common,
    fromSeq: seqNumber.optional(),
    toSeq: seqNumber.optional(),
    reports: z.strictObject({ from: reportDate, to: reportDate }).optional(),
  })
  .superRefine((value, ctx) => {
    const bySeq = value.fromSeq !== undefined || value.toSeq !== undefined;
    if (bySeq === (value.reports !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['fromSeq'],
        message: 'give either fromSeq and toSeq (readings) or reports: { from, to } (daily reports)',
      });
      return;
    }
    if (bySeq) {
      if (value.fromSeq === undefined || value.toSeq === undefined)
        ctx.addIssue({ code: 'custom', path: [value.fromSeq === undefined ? 'fromSeq' : 'toSeq'], message: 'give both fromSeq and toSeq' });
      else if (value.toSeq < value.fromSeq) ctx.addIssue({ code: 'custom', path: ['toSeq'], message: 'must be at least fromSeq' });
      else if (value.toSeq - value.fromSeq + 1 > MAX_RECALL_RANGE)
        ctx.addIssue({ code: 'custom', path: ['toSeq'], message: `a recall names at most ${MAX_RECALL_RANGE} seq numbers` });
      return;
    }
    const { from, to } = value.reports!;
    const days = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000 + 1;
    if (!Number.isFinite(days)) ctx.addIssue({ code: 'custom', path: ['reports'], message: 'from and to must be dates on the calendar' });
    else if (days < 1) ctx.addIssue({ code: 'custom', path: ['reports', 'to'], message: 'must be on or after from' });
    else if (days > MAX_RECALL_DAYS)
      ctx.addIssue({ code: 'custom', path: ['reports', 'to'], message: `a recall names at most ${MAX_RECALL_DAYS} days of reports` });
  });

const customerNo = z.string({ error: 'must be a string of digits' }).superRefine(by(parseCustomerNo));
const cardSerial = z
  .number({ error: 'must be a card serial number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(999_999_999, 'must be at most 999999999');
const personText = (what: string) =>
  z
    .string({ error: `must be the ${what} (a string)` })
    .min(1, 'cannot be empty')
    .max(64, 'is longer than 64 characters');

/** Open an account on the blank card in the counter's encoder (开户), optionally with a first purchase. */
export const cardOpenSchema = z
  .strictObject({
    ...common,
    meter: meterId,
    encoder: encoderId,
    customerNo,
    /** For a customer not in the archive yet. */
    name: personText('customer name').optional(),
    room: personText('room or address').optional(),
    cardSerial: cardSerial.optional(),
    energyKwh: energyKwh.optional(),
    amountFen: amountFen.optional(),
    operator: personText('operator name'),
  })
  .superRefine((value, ctx) => {
    if (value.energyKwh !== undefined && value.amountFen !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['amountFen'],
        message: 'cannot be given together with energyKwh: give one of them, or neither',
      });
  });

/** Replace a customer's lost or broken card with the blank card in the encoder (补卡): the last purchase again. */
export const cardReplaceSchema = z.strictObject({
  ...common,
  encoder: encoderId,
  customerNo,
  reason: z.enum(['lost', 'broken'], { error: 'must be "lost" or "broken"' }),
  cardSerial: cardSerial.optional(),
  operator: personText('operator name'),
});

/** Rewrite the damaged customer card in the encoder from the books (the card's serial in the archive, or the customer or meter named). */
export const cardRewriteSchema = z.strictObject({
  ...common,
  encoder: encoderId,
  /** Whose card it is, when its serial cannot be read or the archive does not know it. */
  customerNo: customerNo.optional(),
  /** Or the meter (config id) whose active customer it is. */
  meter: meterId.optional(),
  operator: personText('operator name'),
});

/** A limit of a parameter card as a JSON number, in the layout's unit (kWh or yuan): 0 or more, at most 2 decimals. */
const parameterLimit = z
  .number({ error: 'must be a number (kWh or yuan, as the card layout counts)' })
  .superRefine(by((v: number) => limitFromNumber(v, 'fen')));

/** Write a parameter card (参数卡) on the card in the encoder: price, alarm thresholds 1 and 2, overdraft and hoarding limits. */
export const cardParamSchema = z
  .strictObject({
    ...common,
    encoder: encoderId,
    /** The one meter (config id) the card is for; absent: every meter of the system. */
    meter: meterId.optional(),
    /** Yuan per kWh, at most 4 decimals. */
    priceYuan: z.number({ error: 'must be a number of yuan per kWh' }).superRefine(by(priceFromNumber)),
    alarm1: parameterLimit,
    alarm2: parameterLimit,
    overdraft: parameterLimit,
    hoarding: parameterLimit,
    operator: personText('operator name'),
  })
  .superRefine((value, ctx) => {
    const hundredths = (n: number) => Math.round(n * 100);
    const bad = checkParameterLimits({
      alarm1: hundredths(value.alarm1),
      alarm2: hundredths(value.alarm2),
      overdraft: hundredths(value.overdraft),
      hoarding: hundredths(value.hoarding),
    });
    if (bad) ctx.addIssue({ code: 'custom', path: [bad.field], message: bad.reason });
  });
/** A supply notice's id as `supply-notice` returned it. */
const noticeId = z
  .number({ error: 'must be a notice id (a number)' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(Number.MAX_SAFE_INTEGER, 'is too large');

/** Give notice of a supply cut (停电通知): recorded with its earliest time; carried out only after a second person approves. */
export const supplyNoticeSchema = z.strictObject({
  ...common,
  meter: meterId,
  reason: z.enum(['arrears', 'safety', 'customer-request', 'other'], {
    error: 'must be "arrears", "safety", "customer-request" or "other"',
  }),
  /** Who asks for the cut; the approver must be someone else. */
  operator: personText('operator name'),
  note: z.string({ error: 'must be text' }).max(2000, 'is longer than 2000 characters').optional(),
});

/** A second person approves a notice (停(限)电审批); the gateway cuts at or after its earliest time. */
export const supplyApproveSchema = z.strictObject({ ...common, noticeId, operator: personText('approver name') });

/** Cancel a notice not carried out yet. */
export const supplyCancelSchema = z.strictObject({ ...common, noticeId, operator: personText('operator name') });

/** Restore supply (复电): close the relay and confirm it; the meter's cut notice ends restored. */
export const supplyRestoreSchema = z.strictObject({
  ...common,
  meter: meterId,
  operator: personText('operator name'),
  reason: z.string({ error: 'must be text' }).min(1, 'cannot be empty').max(200, 'is longer than 200 characters'),
});

/**
 * Where the new meter answers: a DL/T 645 address of 12 decimal digits (quote it: leading zeros matter), or `unit N`
 * for a Modbus meter's unit id, as the asset topic writes it; kept in that canonical form.
 */
const meterAddress = z
  .string({ error: "must be the new meter's 12-digit address, or unit N for a Modbus meter (a string)" })
  .superRefine(by(parseMeterAddress))
  .transform((text) => {
    const parsed = parseMeterAddress(text);
    return parsed.ok ? parsed.value : text;
  });
/** A register or balance off a meter's display: at least 0, at most two decimals. */
const displayed = (what: string) =>
  z
    .number({ error: `must be the ${what} (a number)` })
    .min(0, 'cannot be negative')
    .max(99_999_999.99, 'is larger than any meter register')
    .refine((v) => Math.abs(Math.round(v * 100) - v * 100) < 1e-6, 'has at most two decimals');

/**
 * Replace a faulty meter (拆旧换新, docs/lifecycle.md): the point `meter` moves onto the meter at `newAddress`, its
 * remaining credit with it. `final` is the old meter's display when it does not answer: balance in yuan (money
 * wallets) or kWh (energy wallets).
 */
export const meterReplaceSchema = z.strictObject({
  ...common,
  meter: meterId,
  newAddress: meterAddress,
  /** The new meter's profile when it is another model (same wallet kind); default the point's profile. */
  newProfile: z
    .string({ error: 'must be a profile id (a string)' })
    .regex(/^[a-z0-9][a-z0-9-]*$/, 'must be a profile id: lowercase letters, digits and dashes')
    .max(64, 'is longer than 64 characters')
    .optional(),
  newAssetNo: z
    .string({ error: 'must be the asset number (a string)' })
    .min(1, 'cannot be empty')
    .max(32, 'is longer than 32 characters')
    .optional(),
  operator: personText('technician name'),
  reason: z.string({ error: 'must say why (a string)' }).min(1, 'cannot be empty').max(200, 'is longer than 200 characters'),
  final: z
    .strictObject({
      importKwh: displayed('forward active energy in kWh'),
      exportKwh: displayed('reverse active energy in kWh').optional(),
      // Needed when the meter keeps a wallet (the job says FINAL_READING_NEEDED); a meter without one shows only energy.
      balance: displayed('remaining balance').optional(),
      overdraft: displayed('overdraft').optional(),
      purchaseCount: z
        .number({ error: 'must be the purchase count (a number)' })
        .int('must be a whole number')
        .min(0)
        .max(0xffff_ffff)
        .optional(),
    })
    .optional(),
});
/** Open an account on a remote meter: its customer number (plain meters) or ESAM account opening 070101FF, optionally with an opening purchase. */
export const accountOpenSchema = z
  .strictObject({
    ...common,
    meter: meterId,
    customerNo,
    /** For a customer not in the archive yet. */
    name: personText('customer name').optional(),
    room: personText('room or address').optional(),
    energyKwh: energyKwh.optional(),
    amountFen: amountFen.optional(),
    operator: personText('operator name'),
  })
  .superRefine((value, ctx) => {
    if (value.energyKwh !== undefined && value.amountFen !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['amountFen'],
        message: 'cannot be given together with energyKwh: give one of them, or neither',
      });
  });

export const COMMAND_SCHEMAS = {
  topup: topupSchema,
  relay: relaySchema,
  read: readSchema,
  'time-sync': timeSyncSchema,
  'card-sell': cardSellSchema,
  'card-read': cardReadSchema,
  'alert-ack': alertAckSchema,
  'allowance-run': allowanceRunSchema,
  'allowance-resolve': allowanceResolveSchema,
  'card-open': cardOpenSchema,
  'card-replace': cardReplaceSchema,
  recall: recallSchema,
  'card-rewrite': cardRewriteSchema,
  'card-param': cardParamSchema,
  'supply-notice': supplyNoticeSchema,
  'supply-approve': supplyApproveSchema,
  'supply-cancel': supplyCancelSchema,
  'supply-restore': supplyRestoreSchema,
  'meter-replace': meterReplaceSchema,
  'account-open': accountOpenSchema,
} as const;

export type TopupCommand = z.output<typeof topupSchema>;
export type RelayCommand = z.output<typeof relaySchema>;
export type ReadCommand = z.output<typeof readSchema>;
export type TimeSyncCommand = z.output<typeof timeSyncSchema>;
export type CardSellCommand = z.output<typeof cardSellSchema>;
export type CardReadCommand = z.output<typeof cardReadSchema>;
export type AlertAckCommand = z.output<typeof alertAckSchema>;
export type AllowanceRunCommand = z.output<typeof allowanceRunSchema>;
export type AllowanceResolveCommand = z.output<typeof allowanceResolveSchema>;
export type CardOpenCommand = z.output<typeof cardOpenSchema>;
export type CardReplaceCommand = z.output<typeof cardReplaceSchema>;
export type RecallCommand = z.output<typeof recallSchema>;
export type CardRewriteCommand = z.output<typeof cardRewriteSchema>;
export type CardParamCommand = z.output<typeof cardParamSchema>;
export type SupplyNoticeCommand = z.output<typeof supplyNoticeSchema>;
export type SupplyApproveCommand = z.output<typeof supplyApproveSchema>;
export type SupplyCancelCommand = z.output<typeof supplyCancelSchema>;
export type SupplyRestoreCommand = z.output<typeof supplyRestoreSchema>;
export type MeterReplaceCommand = z.output<typeof meterReplaceSchema>;
export type AccountOpenCommand = z.output<typeof accountOpenSchema>;

/** A request that passed its schema, tagged with its command. */
export type ParsedCommand =
  | { readonly command: 'topup'; readonly payload: TopupCommand }
  | { readonly command: 'relay'; readonly payload: RelayCommand }
  | { readonly command: 'read'; readonly payload: ReadCommand }
  | { readonly command: 'time-sync'; readonly payload: TimeSyncCommand }
  | { readonly command: 'card-sell'; readonly payload: CardSellCommand }
  | { readonly command: 'card-read'; readonly payload: CardReadCommand }
  | { readonly command: 'alert-ack'; readonly payload: AlertAckCommand }
  | { readonly command: 'allowance-run'; readonly payload: AllowanceRunCommand }
  | { readonly command: 'allowance-resolve'; readonly payload: AllowanceResolveCommand }
  | { readonly command: 'card-open'; readonly payload: CardOpenCommand }
  | { readonly command: 'card-replace'; readonly payload: CardReplaceCommand }
  | { readonly command: 'recall'; readonly payload: RecallCommand }
  | { readonly command: 'card-rewrite'; readonly payload: CardRewriteCommand }
  | { readonly command: 'card-param'; readonly payload: CardParamCommand }
  | { readonly command: 'supply-notice'; readonly payload: SupplyNoticeCommand }
  | { readonly command: 'supply-approve'; readonly payload: SupplyApproveCommand }
  | { readonly command: 'supply-cancel'; readonly payload: SupplyCancelCommand }
  | { readonly command: 'supply-restore'; readonly payload: SupplyRestoreCommand }
  | { readonly command: 'meter-replace'; readonly payload: MeterReplaceCommand }
  | { readonly command: 'account-open'; readonly payload: AccountOpenCommand };

/** Why a payload does not fit its schema: the first problem, with the field it is about. */
export interface FieldProblem {
  /** Dotted path, e.g. `energyKwh` or `esam.random`; `(payload)` for the whole object. */
  readonly field: string;
  readonly message: string;
}

export function isCommandName(name: string): name is CommandName {
  return (COMMAND_NAMES as readonly string[]).includes(name);
}

/**
 * Parses one request payload (already JSON-decoded) against its command's schema: a typed command, or the first
 * problem named by field. Pure.
 *
 * ```ts
 * parseCommand('topup', { requestId: 'r-1', meter: 'room-101', energyKwh: 12.5 });
 * // { ok: true, value: { command: 'topup', payload: { …, credit: { unit: 'energy', amount: 1250 } } } }
 * parseCommand('topup', { requestId: 'r-1', meter: 'room-101', energyKwh: 1.234 });
 * // { ok: false, problem: { field: 'energyKwh', message: 'energyKwh must have at most two decimals (0.01 kWh)' } }
 * ```
 */
export function parseCommand(
  command: CommandName,
  payload: unknown,
): { ok: true; value: ParsedCommand } | { ok: false; problem: FieldProblem } {
  const result = COMMAND_SCHEMAS[command].safeParse(payload);
  if (result.success) return { ok: true, value: { command, payload: result.data } as ParsedCommand };
  const issue = result.error.issues[0];
  if (issue === undefined) return { ok: false, problem: { field: '(payload)', message: 'the payload does not fit the schema' } };
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys;
    const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
    return {
      ok: false,
      problem: {
        field: `${prefix}${keys[0] ?? ''}`,
        message: `unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => `${prefix}${k}`).join(', ')} in a ${command} request`,
      },
    };
  }
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(payload)';
  const missing = valueAt(payload, issue.path) === undefined && issue.code === 'invalid_type';
  return { ok: false, problem: { field, message: `${field} ${missing ? 'is missing' : issue.message}` } };
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}
