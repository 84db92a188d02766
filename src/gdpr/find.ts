/*
 * Finding one subject's data: the quarantined messages whose subject index
 * holds the token, and the audit events that name it. Only metadata is
 * decrypted here. An entry whose metadata cannot be read (corrupt, key
 * missing) cannot be attributed to anyone; it is reported by id so the
 * caller can say the search was incomplete, never silently skipped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent, AuditLog } from '../audit/log';
import { Pseudonymiser } from '../privacy/pseudonym';
import { pseudonymKeyFile } from '../state-layout';
import { isQuarantineError } from '../quarantine/errors';
import type { QuarantineMeta, QuarantineStore } from '../quarantine/store';

/** What the subject's view of a held message shows: no pseudonyms of other people, no values. */
export type SubjectMessage = Pick<QuarantineMeta, 'id' | 'receivedAt' | 'size' | 'verdict' | 'rules' | 'reasons' | 'findings'>;

export interface SubjectData {
  /** The subject's token (keyed pseudonym of the normalised address). */
  subject: string;
  /** Newest first. */
  messages: SubjectMessage[];
  /** Oldest first. */
  events: AuditEvent[];
  /** Ids of entries whose metadata could not be read: they may or may not belong to the subject. */
  unreadable: string[];
}

/**
 * The instance's pseudonym key, read but never created (a read-only command
 * must not make a key): undefined when the state dir has none, in which case
 * nothing was ever indexed under it.
 */
export function loadSubjectKeyer(stateDir: string): Pseudonymiser | undefined {
  const file = pseudonymKeyFile(stateDir);
  if (!existsSync(file)) return undefined;
  return new Pseudonymiser(readFileSync(file));
}

export async function findSubject(store: QuarantineStore, audit: AuditLog, subject: string): Promise<SubjectData> {
  const messages: SubjectMessage[] = [];
  const unreadable: string[] = [];
  for (const s of await store.list()) {
    if (s.error !== undefined) {
      unreadable.push(s.id);
      continue;
    }
    let meta;
    try {
      meta = await store.readMeta(s.id);
    } catch (err) {
      if (isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) continue; // deleted meanwhile
      unreadable.push(s.id);
      continue;
    }
    if (!meta.subjects.includes(subject)) continue;
    const { id, receivedAt, size, verdict, rules, reasons, findings } = meta;
    messages.push({ id, receivedAt, size, verdict, rules, reasons, findings });
  }
  const events: AuditEvent[] = [];
  for await (const e of audit.read({ subject })) events.push(e);
  return { subject, messages, events, unreadable };
}

/** True when nothing at all was found (unreadable entries aside). */
export function isEmpty(d: SubjectData): boolean {
  return d.messages.length === 0 && d.events.length === 0;
}

/** Marker for other people's pseudonyms in what is handed to a subject (Art. 15(4)). */
export const OTHER_SUBJECT = '[other]';

/** The subject's events as handed to them: other people's pseudonyms replaced with OTHER_SUBJECT. */
export function eventsForSubject(events: AuditEvent[], subject: string): AuditEvent[] {
  return events.map((e) => (e.subjects ? { ...e, subjects: e.subjects.map((s) => (s === subject ? s : OTHER_SUBJECT)) } : e));
}
