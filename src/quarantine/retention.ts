/*
 * Retention (issue 4, point 3): one purge deletes
 *  - quarantine entries received more than `quarantine.retention` ago (an
 *    unreadable entry is aged by its file's mtime: data we cannot even read
 *    has no better claim to be kept);
 *  - whole audit-log days older than `audit.retention`;
 *  - key files no entry needs any more (keys.ts removeUnusedKeys: not
 *    current, named by no entry, retired for at least an hour);
 * and then appends one `purge` audit event with the counts (and the ids of
 * the entries removed, up to MAX_IDS_IN_EVENT). `serve` runs it at start and
 * every RETENTION_INTERVAL_MS; `mailveil quarantine purge` runs the same on
 * demand. The clock is injectable for tests.
 */
import type { AuditLog } from '../audit/log';
import { isQuarantineError } from './errors';
import { removeUnusedKeys } from './keys';
import type { QuarantineStore } from './store';

export const RETENTION_INTERVAL_MS = 60 * 60 * 1000;
/** Bounds the size of one purge event; the counts stay exact. */
export const MAX_IDS_IN_EVENT = 1000;

export interface PurgeOptions {
  store: QuarantineStore;
  audit: AuditLog;
  /** Milliseconds. */
  quarantineRetention: number;
  auditRetention: number;
  /** Who runs it: 'os:<user>' for the CLI, SERVICE_ACTOR for serve's timer. */
  actor: string;
  now?: () => Date;
}

export interface PurgeResult {
  quarantine: { deleted: number; unreadable: number; ids: string[] };
  audit: { files: number; events: number };
  keys: { removed: string[] };
  /** Entries left after the purge. */
  remaining: number;
}

/** The actor a purge by `serve` itself is audited under. */
export const SERVICE_ACTOR = 'mailveil';

export async function purgeExpired(o: PurgeOptions): Promise<PurgeResult> {
  const now = (o.now ?? (() => new Date()))();
  const cutoff = now.getTime() - o.quarantineRetention;
  const ids: string[] = [];
  let unreadable = 0;
  for (const e of await o.store.list()) {
    const at = Date.parse(e.receivedAt);
    if (!(at < cutoff)) continue;
    try {
      await o.store.delete(e.id);
    } catch (err) {
      if (isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) continue; // deleted meanwhile
      throw err;
    }
    ids.push(e.id);
    if (e.error !== undefined) unreadable++;
  }
  const audit = await o.audit.purge(o.auditRetention);
  const removed = await removeUnusedKeys(o.store.stateDir, await o.store.keyIdsInUse(), now);
  const remaining = await o.store.count();
  await o.audit.append({
    event: 'purge',
    actor: o.actor,
    details: {
      quarantine_deleted: ids.length,
      quarantine_unreadable_deleted: unreadable,
      quarantine_remaining: remaining,
      audit_files_deleted: audit.files,
      audit_events_deleted: audit.events,
      keys_removed: removed.length,
      quarantine_retention_s: Math.round(o.quarantineRetention / 1000),
      audit_retention_s: Math.round(o.auditRetention / 1000),
      ids: ids.slice(0, MAX_IDS_IN_EVENT),
      ...(ids.length > MAX_IDS_IN_EVENT ? { ids_truncated: true } : {}),
    },
  });
  return { quarantine: { deleted: ids.length, unreadable, ids }, audit, keys: { removed }, remaining };
}
