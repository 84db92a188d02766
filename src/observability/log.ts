/*
 * pino JSON logs. Nothing in clear that identifies a person: addresses and
 * IPs are pseudonymised before they reach a log call, and these paths are
 * redacted as a second line of defence in case a careless call passes them.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

const REDACT = ['to', 'rcpt', 'address', 'remoteAddress', 'subject', 'email', '*.address', '*.email', 'envelope'];

export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  return pino(
    {
      level,
      base: { svc: 'mailveil' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    typeof destination === 'number' ? // sync so the last lines before an exit are never lost
    pino.destination({ fd: destination, sync: true }) : destination,
  );
}
