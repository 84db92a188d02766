/*
 * What the quarantine knows about an entry besides the message itself, and
 * the checks it applies at both ends: put() refuses metadata that breaks the
 * shape (a caller bug fails loudly as a 4xx, never as an unreadable entry
 * later), and reading refuses decrypted JSON that does not fit it.
 *
 * Only the known fields are stored, rebuilt field by field: an extra property
 * a caller added by mistake (a finding's matched value, say) never reaches
 * disk, even encrypted (guarantee 6).
 */
import { QuarantineError } from './errors';

export interface QuarantineFinding {
  rule: string;
  detector: string;
  count: number;
  part: string;
  offset: number;
}

export interface QuarantineMeta {
  /** Given by the caller (mailveil's message id, [0-9A-Z]+). */
  id: string;
  /** ISO time. */
  receivedAt: string;
  /** Bytes of the original message. */
  size: number;
  /** 'quarantine' or e.g. 'unscannable'. */
  verdict: string;
  /** Rule ids that fired (never values). */
  rules: string[];
  /** Unscannable reasons, if any. */
  reasons: string[];
  /** Pseudonym of the envelope sender (already pseudonymised by the caller). */
  from: string;
  /** Pseudonyms of the recipients. */
  rcpts: string[];
  findings: QuarantineFinding[];
  /** Keyed-HMAC index of normalised addresses involved (for subject access later); opaque strings provided by the caller. */
  subjects: string[];
}

/** One readable entry in list(): the metadata minus findings and subjects, plus the key it is encrypted under. */
export interface QuarantineEntrySummary extends Omit<QuarantineMeta, 'findings' | 'subjects'> {
  keyId: string;
  error?: undefined;
}

/** An entry list() could not read; listed so an operator sees it, instead of the listing failing. */
export interface QuarantineUnreadableEntry {
  id: string;
  /** One line: why (corrupt, key missing, ...). */
  error: string;
  /** The file's modification time, as receivedAt is unknown. */
  receivedAt: string;
  /** Bytes of the entry file. */
  fileSize: number;
  /** If the header could be read. */
  keyId?: string;
}

export type QuarantineSummary = QuarantineEntrySummary | QuarantineUnreadableEntry;

export const ENTRY_ID_RE = /^[0-9A-Z]{1,64}$/;

export function checkEntryId(id: unknown): string {
  if (typeof id !== 'string' || !ENTRY_ID_RE.test(id)) throw new QuarantineError('MV_QUARANTINE_BAD_ID', `invalid quarantine id ${JSON.stringify(id)}`);
  return id;
}

function fail(where: string, field: string): never {
  if (where === 'put') throw new QuarantineError('MV_QUARANTINE_INVALID', `quarantine metadata: ${field} is missing or has the wrong type`);
  throw new QuarantineError('MV_QUARANTINE_CORRUPT', `corrupt entry: metadata field ${field} is missing or has the wrong type`);
}

/**
 * A clean copy of `v` if it has the QuarantineMeta shape; otherwise throws
 * INVALID (where = 'put') or CORRUPT (where = 'read').
 */
export function checkMeta(v: unknown, where: 'put' | 'read'): QuarantineMeta {
  if (typeof v !== 'object' || v === null) fail(where, '(the whole object)');
  const o = v as Record<string, unknown>;
  const str = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : fail(where, k));
  const strs = (k: string): string[] => {
    const a = o[k];
    return Array.isArray(a) && a.every((s) => typeof s === 'string') ? [...(a as string[])] : fail(where, k);
  };
  const nat = (x: unknown, k: string): number => (Number.isSafeInteger(x) && (x as number) >= 0 ? (x as number) : fail(where, k));
  if (typeof o.id !== 'string' || !ENTRY_ID_RE.test(o.id)) fail(where, 'id');
  const receivedAt = str('receivedAt');
  if (Number.isNaN(Date.parse(receivedAt))) fail(where, 'receivedAt');
  if (!Array.isArray(o.findings)) fail(where, 'findings');
  const findings = (o.findings as unknown[]).map((f, i): QuarantineFinding => {
    const r = (typeof f === 'object' && f !== null ? f : fail(where, `findings[${i}]`)) as Record<string, unknown>;
    const s = (k: string) => (typeof r[k] === 'string' ? (r[k] as string) : fail(where, `findings[${i}].${k}`));
    return { rule: s('rule'), detector: s('detector'), count: nat(r.count, `findings[${i}].count`), part: s('part'), offset: nat(r.offset, `findings[${i}].offset`) };
  });
  return {
    id: o.id as string,
    receivedAt,
    size: nat(o.size, 'size'),
    verdict: str('verdict'),
    rules: strs('rules'),
    reasons: strs('reasons'),
    from: str('from'),
    rcpts: strs('rcpts'),
    findings,
    subjects: strs('subjects'),
  };
}

export function summarize(meta: QuarantineMeta, keyId: string): QuarantineEntrySummary {
  const { findings: _f, subjects: _s, ...rest } = meta;
  return { ...rest, keyId };
}
