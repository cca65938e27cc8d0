import { isMeterdError, MeterdError } from '../errors.js';

/** A failure the CLI reports as one line and a non-zero exit code; `code` is the typed error code. */
export class CliError extends MeterdError {
  override readonly name = 'CliError';
  constructor(
    code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(code, message);
  }
}

/** Exit codes: 1 operational failure (timeout, refusal), 2 bad usage or bad input. */
export const EXIT_USAGE = 2;

export function usageError(message: string): CliError {
  return new CliError('USAGE', message, EXIT_USAGE);
}

/**
 * The one line printed for any error: typed code first, so scripts can grep it. The code appears once: Node's own
 * errors already start their message with it (`EACCES: permission denied, open …`).
 */
export function errorLine(err: unknown): string {
  const code = isMeterdError(err) ? err.code : err instanceof Error ? (err as { code?: unknown }).code : undefined;
  if (err instanceof Error && typeof code === 'string' && code !== '') {
    const message = err.message.startsWith(`${code}: `) ? err.message.slice(code.length + 2) : err.message;
    return `meterd: ${code}: ${message}`;
  }
  return `meterd: ${err instanceof Error ? err.message : String(err)}`;
}
