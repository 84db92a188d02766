/*
 * `sar erase` (GDPR Art. 17): deletes every quarantined message whose
 * subject index holds the token (the whole message, even when it also
 * concerns other people: it cannot be kept in part), replaces the token with
 * the erasure marker in every audit event (AuditLog.eraseSubject), then
 * records one `erase` event with counts only. That event names no subject:
 * the record of an erasure must not re-identify the person erased.
 *
 * Order: messages first, then the log, then the record. A crash in between
 * leaves a state a second run completes (the token is still in whatever was
 * not yet erased). Entries whose metadata cannot be read are not touched;
 * their ids are returned so the operator can delete them by hand.
 *
 * Limits: a message `serve` quarantines for the same person while the erase
 * runs may be missed (run it again, or stop `serve` first).
 */
import type { AuditLog } from '../audit/log';
import { isQuarantineError } from '../quarantine/errors';
import type { QuarantineStore } from '../quarantine/store';
import type { SubjectData } from './find';

export interface EraseResult {
  /** Quarantined messages deleted. */
  messages: number;
  /** Audit events in which the token was replaced. */
  events: number;
  /** Entries that could not be searched. */
  unreadable: string[];
}

export async function eraseSubject(o: { store: QuarantineStore; audit: AuditLog; data: SubjectData; actor: string }): Promise<EraseResult> {
  let messages = 0;
  for (const m of o.data.messages) {
    try {
      await o.store.delete(m.id);
      messages++;
    } catch (err) {
      if (!isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) throw err; // gone meanwhile (released, purged)
    }
  }
  const events = await o.audit.eraseSubject(o.data.subject);
  await o.audit.append({ event: 'erase', actor: o.actor, details: { messages, events, unreadable: o.data.unreadable.length } });
  return { messages, events, unreadable: o.data.unreadable };
}
