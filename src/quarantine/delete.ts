/*
 * Deleting a held message, audited, for the CLI and the admin API alike.
 * Subjects and rule ids come from the metadata so the event can be found by
 * subject access later; an entry whose metadata cannot be read can still be
 * deleted (the event then says so), but an unknown or malformed id cannot.
 */
import type { AuditLog } from '../audit/log';
import { isQuarantineError } from './errors';
import type { QuarantineStore } from './store';

export async function deleteEntry(store: QuarantineStore, audit: AuditLog, actor: string, id: string): Promise<void> {
  const meta = await store.readMeta(id).catch((err) => {
    if (isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND') || isQuarantineError(err, 'MV_QUARANTINE_BAD_ID')) throw err;
    return undefined;
  });
  await store.delete(id);
  await audit.append({
    event: 'delete',
    actor,
    id,
    ...(meta ? { subjects: meta.subjects } : {}),
    details: meta ? { rules: meta.rules, size: meta.size, verdict: meta.verdict } : { unreadable: true },
  });
}
