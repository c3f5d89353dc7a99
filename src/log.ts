import { type Logger, pino } from 'pino';

export type { Logger };

/** Root logger. Tests pass `silentLogger()`; components derive children with `logger.child({ component })`. */
export function createLogger(level: string = process.env.FORESIGHT_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: undefined,
    // Secrets must never reach a log line, whatever object is logged.
    redact: {
      paths: ['*.password', '*.secret', '*.token', '*.tokens', 'password', 'secret', 'token'],
      censor: '[redacted]',
    },
  });
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
