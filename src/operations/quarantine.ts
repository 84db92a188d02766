/*
 * The quarantine operations: list, show, release, delete and purge. The CLI
 * (`mailveil quarantine ...`) and the admin API (/api/quarantine...) only
 * parse their input, call these and format what they return; both, and the
 * review page next, see an entry through operations/entry-view.ts.
 *
 *  - listEntries: newest first, from the encrypted metadata only; an
 *    unreadable entry is listed with its error. Filters: a rule id, and an
 *    age (received longer ago than olderThanMs, by ctx.now()).
 *  - showEntry: the summary, the findings and the header section with the
 *    fields the findings point at masked (quarantine/header-view.ts). The
 *    whole entry is read, so a tampered one fails before anything shows.
 *  - releaseEntry: release.ts, with the instance's next hop (and
 *    tls.secure_next_hop, for a message that needs verified TLS) and
 *    pseudonym key.
 *  - deleteEntry: one entry, audited with its subjects and rule ids so subject
 *    access finds the event later; an entry whose metadata cannot be read
 *    can still be deleted (the event says so), an unknown or malformed id not.
 *  - purgeEntries: quarantine/retention.ts with the configured retentions.
 * Every write is one audit event naming ctx.actor. Errors are the domain's
 * own (QuarantineError: NOT_FOUND, BAD_ID, CORRUPT...; ReleaseError;
 * AuditError): each front maps them to its exit code or HTTP status.
 */
import { Pseudonymiser } from '../privacy/pseudonym';
import { isQuarantineError } from '../quarantine/errors';
import { collectHeader, headerView } from '../quarantine/header-view';
import { purgeExpired } from '../quarantine/retention';
import type { RuleDefinition, RuleSet } from '../rules/types';
import { nextHopOptions } from '../smtp/next-hop';
import { secureNextHopOptions } from '../smtp/escalation';
import type { Reply } from '../pipeline/reply';
import type { OperationContext } from './context';
import { entryDetail, listItem, type EntryDetail, type EntryListItem } from './entry-view';
import { releaseHeld } from './release';

export interface ListFilter {
  /** Only entries on which this rule fired (unreadable ones never match). */
  rule?: string;
  /** Only entries received longer ago than this many ms. */
  olderThanMs?: number;
}

export interface EntryList {
  /** Newest first. */
  entries: EntryListItem[];
  /** How many of them could not be read. */
  unreadable: number;
}

export async function listEntries(ctx: OperationContext, filter: ListFilter = {}): Promise<EntryList> {
  const cutoff = filter.olderThanMs === undefined ? undefined : ctx.now().getTime() - filter.olderThanMs;
  let entries = await ctx.store.list();
  if (filter.rule !== undefined) entries = entries.filter((e) => e.error === undefined && e.rules.includes(filter.rule!));
  if (cutoff !== undefined) entries = entries.filter((e) => Date.parse(e.receivedAt) < cutoff);
  return { entries: entries.map(listItem), unreadable: entries.filter((e) => e.error !== undefined).length };
}

/**
 * `rules` is only called when a finding sits in the top-level header (to
 * locate the masked values); undefined masks every field it may be in.
 */
export async function showEntry(ctx: OperationContext, id: string, rules: () => readonly RuleDefinition[] | undefined): Promise<EntryDetail> {
  const { store } = ctx;
  const meta = await store.readMeta(id);
  const keyId = await store.keyIdOf(id);
  const { header, truncated } = await collectHeader(store.readMessage(id), ctx.config.limits.max_header_size);
  const view = headerView(header, meta.findings, meta.findings.some((f) => f.part === '0') ? rules() : undefined, truncated);
  return entryDetail(meta, keyId, view);
}

export interface ReleaseRequest {
  /** The rule set to rewrite under: its header policy, and its redact rules with `redact`. */
  rules: RuleSet;
  /** Apply the rules' redaction too (CLI --redact, API {"redact": true}). */
  redact: boolean;
}

export interface ReleasedEntry {
  id: string;
  /** Where it went (config.next_hop, or tls.secure_next_hop for a message that needs verified TLS; host:port). */
  nextHop: string;
  rcpts: number;
  size: number;
  /** The next hop's 250 to the final dot. */
  reply: Reply;
}

/** Throws ReleaseError (entry kept) or QuarantineError (NOT_FOUND, BAD_ID, ...). */
export async function releaseEntry(ctx: OperationContext, id: string, req: ReleaseRequest): Promise<ReleasedEntry> {
  const { config } = ctx;
  const r = await releaseHeld(
    {
      store: ctx.store,
      audit: ctx.audit,
      actor: ctx.actor,
      nextHop: nextHopOptions(config),
      secureNextHop: secureNextHopOptions(config),
      config,
      rules: req.rules,
      // The key serve pseudonymises with, so the hop sees the pseudonyms it sees on every other message.
      pseudonyms: Pseudonymiser.fromStateDir(config.state_dir),
      redact: req.redact,
    },
    id,
  );
  return { id: r.id, nextHop: r.nextHop, rcpts: r.rcpts, size: r.size, reply: r.reply };
}

export interface DeletedEntry {
  id: string;
  deleted: true;
}

export async function deleteEntry(ctx: OperationContext, id: string): Promise<DeletedEntry> {
  const { store } = ctx;
  const meta = await store.readMeta(id).catch((err) => {
    if (isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND') || isQuarantineError(err, 'MV_QUARANTINE_BAD_ID')) throw err;
    return undefined;
  });
  await store.delete(id);
  await ctx.audit.append({
    event: 'delete',
    actor: ctx.actor,
    id,
    ...(meta ? { subjects: meta.subjects } : {}),
    details: meta ? { rules: meta.rules, size: meta.size, verdict: meta.verdict } : { unreadable: true },
  });
  return { id, deleted: true };
}

/** What one purge removed (`quarantine purge --json`, POST /api/quarantine/purge). */
export interface PurgeReport {
  quarantineDeleted: number;
  /** Of those, entries that could not be read (aged by their file's mtime). */
  unreadableDeleted: number;
  ids: string[];
  quarantineRemaining: number;
  auditFilesDeleted: number;
  auditEventsDeleted: number;
  keysRemoved: string[];
}

export async function purgeEntries(ctx: OperationContext): Promise<PurgeReport> {
  const { config } = ctx;
  const r = await purgeExpired({
    store: ctx.store,
    audit: ctx.audit,
    quarantineRetention: config.quarantine.retention,
    auditRetention: config.audit.retention,
    actor: ctx.actor,
    now: ctx.now,
  });
  return {
    quarantineDeleted: r.quarantine.deleted,
    unreadableDeleted: r.quarantine.unreadable,
    ids: r.quarantine.ids,
    quarantineRemaining: r.remaining,
    auditFilesDeleted: r.audit.files,
    auditEventsDeleted: r.audit.events,
    keysRemoved: r.keys.removed,
  };
}
