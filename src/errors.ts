/** What every meterd error may carry besides its code and message. */
export interface MeterdErrorOptions {
  /** Facts a caller can act on (attempts left, the issues found, …), for logs and replies; never parsed from the message. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

/**
 * The one shape of every failure meterd raises on purpose: a stable `code` that code, scripts and the station switch
 * on, and a `message` written for the person who has to act on it. Each layer narrows `Code` to its own union
 * (BusErrorCode, StoreErrorCode, …), so a switch over a layer's codes is checked by the compiler.
 *
 * @example
 * class StoreError extends MeterdError<StoreErrorCode> {
 *   override readonly name = 'StoreError';
 * }
 * if (isMeterdError(err)) log.warn({ code: err.code }, err.message);
 */
export class MeterdError<Code extends string = string> extends Error {
  override readonly name: string = 'MeterdError';
  readonly code: Code;
  // Declared, not initialised: an error without details has no `details` property at all.
  declare readonly details?: Readonly<Record<string, unknown>>;

  constructor(code: Code, message: string, options: MeterdErrorOptions = {}) {
    // Only pass `cause` when there is one: `{ cause: undefined }` would still create the property.
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** True for any meterd error, or only for one with `code` when given. */
export function isMeterdError<Code extends string = string>(err: unknown, code?: Code): err is MeterdError<Code> {
  return err instanceof MeterdError && (code === undefined || err.code === code);
}
