import { z } from 'zod';
import type { CommandReply } from '../uplink/commands/types.js';
import { parseOperatorName } from '../values/index.js';
import type { DaemonStatus } from './status.js';

/**
 * The frames of the local control socket: one JSON object per line (UTF-8, `\n`), each at most MAX_FRAME_BYTES. A
 * command frame carries a request exactly as the station would publish it on `cmd/<command>` (the MQTT command
 * schemas of src/uplink/commands/schema.ts); the daemon answers with the same replies the station gets. Shared by the
 * server (src/control/server.ts) and the CLI's client (src/cli/daemon-client.ts). docs/control-socket.md.
 */

/** A frame longer than this is refused (FRAME_TOO_LARGE) and the connection closed: the stream cannot be resynced. */
export const MAX_FRAME_BYTES = 64 * 1024;

const operator = z.unknown().transform((value, ctx) => {
  const parsed = parseOperatorName(value);
  if (parsed.ok) return parsed.value;
  ctx.addIssue({ code: 'custom', message: parsed.reason });
  return z.NEVER;
});

export const requestFrameSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      type: z.literal('command'),
      /** The command name, as the last level of `cmd/<command>`. */
      command: z.string({ error: 'must be a command name' }).min(1, 'cannot be empty').max(64, 'is longer than 64 characters'),
      /** Recorded with the command: `--operator`, default the OS user name. */
      operator,
      /** The request, as on MQTT: `requestId`, `meter`, … (no signature: the socket's file mode is the authentication). */
      request: z.record(z.string(), z.unknown(), { error: 'must be a JSON object, the request as on MQTT' }),
    }),
    z.strictObject({ type: z.literal('status') }),
  ],
  { error: 'type must be "command" or "status"' },
);

export type RequestFrame = z.output<typeof requestFrameSchema>;

/** Codes of the error frames: the frame itself was wrong, nothing was recorded or run. */
export type FrameErrorCode = 'FRAME_TOO_LARGE' | 'NOT_JSON' | 'BAD_FRAME' | 'DAEMON_STARTING' | 'DAEMON_STOPPING';

export type ReplyFrame =
  /** A command's reply. `final: false` only for `accepted` while the handler runs; the final one follows. */
  | { readonly type: 'reply'; readonly command: string; readonly final: boolean; readonly reply: CommandReply }
  | { readonly type: 'status'; readonly status: DaemonStatus }
  | { readonly type: 'error'; readonly error: { readonly code: FrameErrorCode; readonly message: string; readonly field?: string } };

/** One line of the socket, parsed: a typed frame or the error frame to answer with. */
export function parseRequestFrame(line: string): { ok: true; frame: RequestFrame } | { ok: false; error: ReplyFrame & { type: 'error' } } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    return {
      ok: false,
      error: { type: 'error', error: { code: 'NOT_JSON', message: `the frame is not JSON: ${(err as Error).message}` } },
    };
  }
  const parsed = requestFrameSchema.safeParse(json);
  if (parsed.success) return { ok: true, frame: parsed.data };
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : undefined;
  const message =
    issue?.code === 'unrecognized_keys'
      ? `unknown field ${issue.keys.join(', ')} in a control frame`
      : `${field ?? 'the frame'} ${issue?.message ?? 'does not fit a control frame'}`;
  return {
    ok: false,
    error: { type: 'error', error: field === undefined ? { code: 'BAD_FRAME', message } : { code: 'BAD_FRAME', message, field } },
  };
}
