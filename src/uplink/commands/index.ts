/** Station commands over MQTT: schemas, signatures, the router, and the handler interface the services implement. */
export {
  CommandRouter,
  type CommandRouterOptions,
  type CommandRouterStats,
  type CommandSession,
  type LocalSender,
  type LocalSubmission,
} from './router.js';
export type {
  CommandContext,
  CommandError,
  CommandHandlers,
  CommandOutcome,
  CommandRejectionCode,
  CommandReply,
  CommandReplyStatus,
} from './types.js';
export {
  COMMAND_NAMES,
  RESERVED_COMMAND_NAMES,
  MAX_TOPUP_ENERGY_KWH,
  MAX_TOPUP_AMOUNT_FEN,
  parseCommand,
  isCommandName,
  type CommandName,
  type ParsedCommand,
  type TopupCommand,
  type RelayCommand,
  type ReadCommand,
  type TimeSyncCommand,
  type FieldProblem,
} from './schema.js';
export { canonicalJson, signingString, commandSignature, signatureMatches, DEFAULT_SIGNATURE_WINDOW_MS } from './signature.js';
