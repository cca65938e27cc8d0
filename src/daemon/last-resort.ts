import type { Logger } from '../log.js';

/** Exit code after an error nothing caught (EX_SOFTWARE); `Restart=on-failure` restarts the unit. */
export const UNCAUGHT_EXIT_CODE = 70;

/**
 * The daemon's last resort: an exception or a rejection that no code path caught is logged as one JSON line (fatal,
 * with the error and which of the two it was) and the process exits non-zero, instead of a bare stack trace on stderr.
 * Every known path catches its own errors; this is for the ones nobody knows about yet. Returns the uninstaller.
 */
export function installLastResort(logger: Logger, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  let exiting = false;
  const handler = (event: 'uncaughtException' | 'unhandledRejection') => (error: unknown) => {
    if (exiting) return;
    exiting = true;
    logger.fatal({ code: 'UNCAUGHT', event, err: error }, 'an error nothing caught: exiting so the service manager restarts meterd');
    // The log destination is asynchronous: exit once the line is written.
    logger.flush(() => exit(UNCAUGHT_EXIT_CODE));
  };
  const onException = handler('uncaughtException');
  const onRejection = handler('unhandledRejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
