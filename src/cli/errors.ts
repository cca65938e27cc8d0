/** A failure the CLI reports as one line and a non-zero exit code; `code` is the typed error code. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit codes: 1 operational failure (timeout, refusal), 2 bad usage or bad input. */
export const EXIT_USAGE = 2;

export function usageError(message: string): CliError {
  return new CliError('USAGE', message, EXIT_USAGE);
}

/** The one line printed for any error: typed code first, so scripts can grep it. */
export function errorLine(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string' && err instanceof Error) {
    return `meterd: ${(err as Error & { code: string }).code}: ${err.message}`;
  }
  return `meterd: ${err instanceof Error ? err.message : String(err)}`;
}
