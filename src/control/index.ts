/** The daemon's local control socket: frames, the server, the status it reports (docs/control-socket.md). */
export { ControlServer, type ControlDesk, type ControlServerOptions } from './server.js';
export { ControlError, type ControlErrorCode } from './errors.js';
export {
  MAX_FRAME_BYTES,
  parseRequestFrame,
  requestFrameSchema,
  type FrameErrorCode,
  type ReplyFrame,
  type RequestFrame,
} from './frames.js';
export type { DaemonStatus } from './status.js';
