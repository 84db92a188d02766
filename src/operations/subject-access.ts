/*
 * Subject access (GDPR Art. 15) and erasure (Art. 17) for one e-mail
 * address: `mailveil sar find|export|erase ADDRESS` and /api/sar[/export|
 * /erase]. The work is in src/gdpr/ (find.ts, export.ts, erase.ts); this file
 * is what both fronts call.
 *
 * The address is only ever held in memory: subjectAddress() normalises it,
 * and every operation turns it into its subject token (gdpr/subjects.ts)
 * before anything is read or written; only the token is written (audit
 * events). Errors never echo it.
 *
 * Without a pseudonym key in state_dir nothing was ever indexed, so every
 * search finds nothing (and none makes a key: these are not the place to
 * create one).
 */
import { parseAddressArgument } from '../gdpr/address';
import { eraseSubject, type EraseResult } from '../gdpr/erase';
import { exportSubject, type ExportResult } from '../gdpr/export';
import { findSubject, isEmpty, loadSubjectKeyer, type SubjectData } from '../gdpr/find';
import { SUBJECT_KIND } from '../gdpr/subjects';
import type { OperationContext } from './context';
import { packageVersion } from './version';

export type { EraseResult, ExportResult, SubjectData };

/** An address as the operations take it: normalised (lower case, IDN domain in ASCII; a +tag kept). */
export type SubjectAddress = string & { readonly __subjectAddress: true };

/** The normalised address, or undefined when `raw` is not one valid e-mail address (each front words that error itself). */
export function subjectAddress(raw: string): SubjectAddress | undefined {
  return parseAddressArgument(raw) as SubjectAddress | undefined;
}

/** The subject's held messages (newest first), audit events (oldest first), and the entries that could not be searched. */
export async function findSubjectData(ctx: Pick<OperationContext, 'config' | 'store' | 'audit'>, address: SubjectAddress): Promise<SubjectData> {
  const keyer = loadSubjectKeyer(ctx.config.state_dir);
  if (!keyer) return { subject: '', messages: [], events: [], unreadable: [] };
  return findSubject(ctx.store, ctx.audit, keyer.token(SUBJECT_KIND, address));
}

export type ExportOutcome =
  /** Some entries cannot be read, so an archive could be incomplete: none was made, nothing audited. */
  | { kind: 'unreadable'; unreadable: string[] }
  /** Nothing found: no archive; the request is still audited (`export`, no subject named). */
  | { kind: 'empty' }
  /** The archive was written and the `export` event recorded. */
  | { kind: 'exported'; result: ExportResult; madeAt: Date };

export interface ExportRequest {
  /** Where the archive goes; called only when there is one to write (the API makes its directory then). */
  out: () => string | Promise<string>;
  /** Replace an existing file. */
  force: boolean;
}

export async function exportSubjectData(ctx: OperationContext, address: SubjectAddress, req: ExportRequest): Promise<ExportOutcome> {
  const data = await findSubjectData(ctx, address);
  if (data.unreadable.length) return { kind: 'unreadable', unreadable: data.unreadable };
  if (isEmpty(data)) {
    await ctx.audit.append({ event: 'export', actor: ctx.actor, details: { messages: 0, events: 0, archive: false } });
    return { kind: 'empty' };
  }
  const madeAt = ctx.now();
  const out = await req.out();
  const result = await exportSubject({
    store: ctx.store,
    audit: ctx.audit,
    data,
    out,
    force: req.force,
    actor: ctx.actor,
    now: madeAt,
    version: packageVersion(),
    retentionMs: ctx.config.quarantine.retention,
  });
  return { kind: 'exported', result, madeAt };
}

/** Deletes the subject's held messages and erases their token from the audit log; one `erase` event with counts only. */
export async function eraseSubjectData(ctx: OperationContext, address: SubjectAddress): Promise<EraseResult> {
  const data = await findSubjectData(ctx, address);
  return eraseSubject({ store: ctx.store, audit: ctx.audit, data, actor: ctx.actor });
}
