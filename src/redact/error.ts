/*
 * The one error of redaction: a value that pass 1 found could not be removed
 * (or might survive). The SMTP side turns it into quarantine ('redact_failed'),
 * never into delivery.
 */
export class RedactionError extends Error {
  readonly code = 'MV_REDACT';
}
