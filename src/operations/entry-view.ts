/*
 * The quarantine entry as an operator sees it: the one declaration of the
 * fields `quarantine list` / `show` print and GET /api/quarantine[/<id>]
 * return (and the review page will show). Built field by field from the
 * stored metadata, in this order (the JSON key order), so a field added to
 * the metadata (say, one holding addresses) is not shown until it is added
 * here. Never a matched value, an address, the envelope or the subject index.
 */
import type { HeaderView } from '../quarantine/header-view';
import type { QuarantineFinding, QuarantineMeta, QuarantineSummary } from '../quarantine/store';
import type { QuarantineUnreadableEntry } from '../quarantine/meta';

/** What every view of a readable entry shows: the stored metadata's own fields (their meaning is documented there), plus the data key. */
export type EntryFields = Pick<QuarantineMeta, 'id' | 'receivedAt' | 'size' | 'verdict' | 'rules' | 'reasons' | 'from' | 'rcpts'> & {
  /** The data key the entry is encrypted under. */
  keyId: string;
};

/** A readable entry in a listing. */
export interface EntrySummary extends EntryFields {
  error?: undefined;
}

/** An entry whose metadata cannot be read: listed with why, instead of failing the listing (the store's own shape). */
export type UnreadableEntry = QuarantineUnreadableEntry;

export type EntryListItem = EntrySummary | UnreadableEntry;

/** One entry in full: the summary, the findings and the header section with the found values masked; never the body. */
export interface EntryDetail extends EntryFields {
  /** Rule, detector, count, MIME part, offset (and scope): never a value. */
  findings: QuarantineFinding[];
  /** The top-level header section, LF line ends, masked fields as `Name: [masked: rule,...]`. */
  headers: string;
  /** Names of the masked fields. */
  masked: string[];
  /** True if the header section was cut at limits.max_header_size. */
  headersTruncated: boolean;
}

export function entryFields(meta: Omit<QuarantineMeta, 'findings' | 'subjects' | 'envelope'>, keyId: string): EntryFields {
  return {
    id: meta.id,
    receivedAt: meta.receivedAt,
    size: meta.size,
    verdict: meta.verdict,
    rules: meta.rules,
    reasons: meta.reasons,
    from: meta.from,
    rcpts: meta.rcpts,
    keyId,
  };
}

export function listItem(s: QuarantineSummary): EntryListItem {
  if (s.error === undefined) return entryFields(s, s.keyId);
  const out: UnreadableEntry = { id: s.id, error: s.error, receivedAt: s.receivedAt, fileSize: s.fileSize };
  if (s.keyId !== undefined) out.keyId = s.keyId;
  return out;
}

export function entryDetail(meta: QuarantineMeta, keyId: string, header: HeaderView): EntryDetail {
  return { ...entryFields(meta, keyId), findings: meta.findings, headers: header.text, masked: header.masked, headersTruncated: header.truncated };
}
