/*
 * Errors the quarantine store raises, each with a stable code so callers can
 * map them without parsing messages: the SMTP path turns any of them into
 * MV_QUARANTINE_UNAVAILABLE (4xx, the client retries); the CLI prints each
 * as one line (their catalogue entries say so), the admin API answers the
 * catalogue's status. Messages never carry message
 * content, addresses or key material; an entry id is fine to show.
 */

import type { MvCode } from '../errors';

/** Each is a catalogue code (src/errors.ts), which gives its HTTP status. */
export type QuarantineErrorCode = Extract<
  MvCode,
  | 'MV_QUARANTINE_BAD_ID' // an id outside [0-9A-Z]{1,64}: refused before it can reach a path
  | 'MV_QUARANTINE_NOT_FOUND'
  | 'MV_QUARANTINE_EXISTS' // put() of an id already stored; ids are unique, so this is a caller bug
  | 'MV_QUARANTINE_CORRUPT' // bad header, failed GCM tag, truncated file, invalid metadata
  | 'MV_QUARANTINE_KEY_MISSING' // the entry names a key id no key file provides
  | 'MV_QUARANTINE_KEY_INVALID' // a key file or the `current` pointer is malformed
  | 'MV_QUARANTINE_INVALID' // put() got metadata or a body that breaks an invariant
>;

export class QuarantineError extends Error {
  constructor(
    readonly code: QuarantineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'QuarantineError';
  }
}

export function isQuarantineError(err: unknown, code?: QuarantineErrorCode): err is QuarantineError {
  return err instanceof QuarantineError && (code === undefined || err.code === code);
}
