export {
  AllowanceError,
  AllowanceService,
  previewRound,
  type AllowanceErrorCode,
  type AllowanceMeter,
  type AllowanceServiceOptions,
  type PlannedLoad,
  type ResolveAction,
  type RoundStatus,
} from './service.js';
export { allowanceRequestId, dueRounds, retryDelayMs, roundDueAt, roundSchedule, type RoundSchedule } from './rounds.js';
export { allowanceReportTopic, allowanceTopic, countsMessage, progressMessage, reportMessage } from './messages.js';
