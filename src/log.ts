import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** The daemon's root logger: one JSON line per event on stderr, so stdout stays free for command output. */
export function createLogger(level: LevelWithSilent = 'info', destination: number = 2): Logger {
  return pino(
    { level, base: { app: 'meterd' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: destination, sync: false }),
  );
}

/** A logger that drops everything: for tests and for library code called without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
