import type {
  AccountOpenCommand,
  AlertAckCommand,
  AllowanceResolveCommand,
  AllowanceRunCommand,
  CardOpenCommand,
  CardParamCommand,
  CardReadCommand,
  CardReplaceCommand,
  CardRewriteCommand,
  MeterReplaceCommand,
  RecallCommand,
  CardSellCommand,
  SupplyApproveCommand,
  SupplyCancelCommand,
  SupplyNoticeCommand,
  SupplyRestoreCommand,
  ReadCommand,
  RelayCommand,
  TimeSyncCommand,
  TopupCommand,
} from './schema.js';

export type {
  AccountOpenCommand,
  AllowanceResolveCommand,
  AllowanceRunCommand,
  CardOpenCommand,
  CardParamCommand,
  CardReadCommand,
  CardReplaceCommand,
  CardRewriteCommand,
  CardSellCommand,
  CommandName,
  MeterReplaceCommand,
  ParsedCommand,
  ReadCommand,
  RelayCommand,
  SupplyApproveCommand,
  SupplyCancelCommand,
  SupplyNoticeCommand,
  SupplyRestoreCommand,
  TimeSyncCommand,
  TopupCommand,
} from './schema.js';

/** A command's error as the station sees it: a stable code and a message a technician can act on. */
export interface CommandError {
  readonly code: string;
  readonly message: string;
}

/**
 * How a command ended, as its handler reports it. `done` with the result; `failed` when it did not happen or its
 * effect is unknown (say which in `result` when a timeout was settled by reading the meter); `rejected` when the
 * meter or the service refused it (keep-power refuses a trip, a customer number mismatch, …).
 */
export type CommandOutcome =
  | { readonly status: 'done'; readonly result: Record<string, unknown> }
  | { readonly status: 'failed' | 'rejected'; readonly error: CommandError; readonly result?: Record<string, unknown> };

export interface CommandContext {
  readonly requestId: string;
  /** `topup`, `relay`, `read` or `time-sync`. */
  readonly command: string;
  /** When the gateway received the request, epoch ms. */
  readonly receivedAt: number;
  /**
   * Aborted when the router stops (gateway shutdown). A handler that cannot finish should throw: the command then
   * stays `accepted` and is resumed at the next start. Returning an outcome makes it final.
   */
  readonly signal: AbortSignal;
  /**
   * True when the gateway restarted while this command was running: the handler is called again with the same
   * request and must settle what happened (the credit ledger by its request id, the meter by reading it), never
   * repeat an action blindly. It must also check `expiresAt` itself, which may have passed in the meantime.
   */
  readonly resumed: boolean;
  /** `mqtt` for the station's requests, `socket` for the local CLI's (authenticated by the socket's file mode). */
  readonly origin: 'mqtt' | 'socket';
  /** Who sent a socket request (`--operator`, default the OS user); undefined for MQTT. */
  readonly operator?: string;
}

/**
 * What the command router calls once a request is validated, authenticated, de-duplicated and accepted. Implemented
 * by the composition root over the credit, relay, reading and clock services (docs/architecture.md § Design rules, 8: services know
 * nothing of MQTT). Each request id reaches a handler once, except after a restart (`ctx.resumed`). A handler that
 * throws ends the command `failed` with `INTERNAL`.
 */
export interface CommandHandlers {
  topup(cmd: TopupCommand, ctx: CommandContext): Promise<CommandOutcome>;
  relay(cmd: RelayCommand, ctx: CommandContext): Promise<CommandOutcome>;
  read(cmd: ReadCommand, ctx: CommandContext): Promise<CommandOutcome>;
  timeSync(cmd: TimeSyncCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardSell(cmd: CardSellCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardRead(cmd: CardReadCommand, ctx: CommandContext): Promise<CommandOutcome>;
  alertAck(cmd: AlertAckCommand, ctx: CommandContext): Promise<CommandOutcome>;
  allowanceRun(cmd: AllowanceRunCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardOpen(cmd: CardOpenCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardReplace(cmd: CardReplaceCommand, ctx: CommandContext): Promise<CommandOutcome>;
  allowanceResolve(cmd: AllowanceResolveCommand, ctx: CommandContext): Promise<CommandOutcome>;
  recall(cmd: RecallCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardRewrite(cmd: CardRewriteCommand, ctx: CommandContext): Promise<CommandOutcome>;
  cardParam(cmd: CardParamCommand, ctx: CommandContext): Promise<CommandOutcome>;
  supplyNotice(cmd: SupplyNoticeCommand, ctx: CommandContext): Promise<CommandOutcome>;
  supplyApprove(cmd: SupplyApproveCommand, ctx: CommandContext): Promise<CommandOutcome>;
  supplyCancel(cmd: SupplyCancelCommand, ctx: CommandContext): Promise<CommandOutcome>;
  supplyRestore(cmd: SupplyRestoreCommand, ctx: CommandContext): Promise<CommandOutcome>;
  meterReplace(cmd: MeterReplaceCommand, ctx: CommandContext): Promise<CommandOutcome>;
  accountOpen(cmd: AccountOpenCommand, ctx: CommandContext): Promise<CommandOutcome>;
}

export type CommandReplyStatus = 'accepted' | 'done' | 'rejected' | 'failed';

/** The JSON of every reply, on `cmd/<command>/result` or the request's MQTT 5 response topic. */
export interface CommandReply {
  /** The request's id; null when the payload had none that could be read. */
  readonly requestId: string | null;
  readonly status: CommandReplyStatus;
  /** On `rejected` and `failed`. `field` names the request field a validation error is about. */
  readonly error?: CommandError & { readonly field?: string };
  readonly result?: Record<string, unknown>;
}

/**
 * Codes of the rejections the router itself gives (handlers add their own: `REPEAT_RECHARGE`, `METER_TIMEOUT`, …).
 * A rejected request changed nothing.
 */
export type CommandRejectionCode =
  | 'PAYLOAD_TOO_LARGE'
  | 'NOT_JSON'
  | 'NOT_AN_OBJECT'
  | 'MISSING_REQUEST_ID'
  | 'UNKNOWN_COMMAND'
  | 'UNSUPPORTED_COMMAND'
  | 'INVALID_FIELD'
  | 'UNKNOWN_METER'
  | 'EXPIRED'
  | 'UNSIGNED'
  | 'BAD_SIGNATURE'
  | 'STALE'
  | 'REPLAYED';
