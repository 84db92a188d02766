/*
 * The one error of redaction: a value that pass 1 found could not be removed
 * (or might survive). The SMTP side turns it into quarantine ('redact_failed'),
 * never into delivery.
 */
import type { MvCode } from '../errors';

export class RedactionError extends Error {
  readonly code: MvCode = 'MV_REDACT';
}
