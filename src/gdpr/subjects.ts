/*
 * The subject index (GDPR Art. 15/17): which people a held message or an
 * audit event concerns, as keyed pseudonyms, so `mailveil sar` can find and
 * erase a person's data without any address being stored in clear.
 *
 * A person is an address: the envelope sender and recipients, plus every
 * addr-spec in the header fields of SUBJECT_FIELDS (From, Sender, Reply-To,
 * To, Cc, Bcc and their Resent- forms). Each is normalised (address.ts) and
 * turned into pseudonyms.token('subject', normalised): HMAC-SHA256 under the
 * instance's pseudonym key, in a namespace of its own, so a subject token is
 * not the `addr` pseudonym the logs show. A person with several addresses is
 * several subjects; `sar` is run once per address.
 *
 * Limits: the header section is read up to a caller-given limit (the rest is
 * not indexed), fields are split in one pass (mime/header-fields.ts), and at most
 * MAX_SUBJECTS tokens are kept per message, envelope first.
 */
import { splitFields, fieldText, unfold } from '../mime/header-fields';
import { HeaderEndFinder } from '../mime/header-end';
import { normaliseAddress, parseAddressList } from './address';

/** The pseudonym namespace of the subject index. */
export const SUBJECT_KIND = 'subject';
/** Header fields whose addresses are indexed (lower case). */
export const SUBJECT_FIELDS: readonly string[] = ['from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-bcc'];
/** SUBJECT_FIELDS as written in messages (From, Reply-To, Resent-Cc, ...), for documents. */
export const SUBJECT_FIELD_LABELS: readonly string[] = SUBJECT_FIELDS.map((f) => f.replace(/(^|-)([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase()));
/** Tokens kept per message: bounds the entry's metadata (about 19 bytes each). */
export const MAX_SUBJECTS = 10_000;

/** What subjectTokens needs of a Pseudonymiser. */
export interface SubjectKeyer {
  token(kind: string, value: string): string;
}

export interface SubjectEnvelope {
  /** MAIL FROM address; '' for the null sender. */
  from: string;
  rcpts: readonly string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A field's value as text: unfolded, UTF-8 if it is valid UTF-8 (RFC 6532), else Latin-1. */
function fieldValue(raw: string): string {
  const colon = raw.indexOf(':');
  const value = unfold(raw.slice(colon + 1));
  const bytes = Buffer.from(value, 'latin1');
  try {
    return utf8.decode(bytes);
  } catch {
    return value;
  }
}

/** The normalised addresses of the indexed header fields of a header section (the blank line and what follows are ignored). */
export function headerAddresses(headerBlock: Buffer): string[] {
  const section = splitFields(headerBlock.toString('latin1'));
  const out: string[] = [];
  for (const f of section.fields) {
    if (!SUBJECT_FIELDS.includes(f.name)) continue;
    out.push(...parseAddressList(fieldValue(fieldText(section, f))));
  }
  return out;
}

/** The token of one address, normalised first; undefined if it is not an address. */
export function subjectToken(keyer: SubjectKeyer, address: string): string | undefined {
  const n = normaliseAddress(address);
  return n === undefined ? undefined : keyer.token(SUBJECT_KIND, n);
}

/**
 * The subject index of one message: the distinct tokens of the envelope
 * sender, the envelope recipients and the addresses in SUBJECT_FIELDS of
 * `headerBlock` (may be empty). An envelope address the parser cannot read
 * is indexed as given (trimmed, lower case), so it is never silently left out.
 */
export function subjectTokens(keyer: SubjectKeyer, envelope: SubjectEnvelope, headerBlock: Buffer = Buffer.alloc(0)): string[] {
  const tokens = new Set<string>();
  for (const a of [envelope.from, ...envelope.rcpts]) {
    const raw = a.trim();
    if (!raw) continue;
    tokens.add(keyer.token(SUBJECT_KIND, normaliseAddress(raw) ?? raw.toLowerCase()));
  }
  for (const a of headerAddresses(headerBlock)) {
    if (tokens.size >= MAX_SUBJECTS) break;
    tokens.add(keyer.token(SUBJECT_KIND, a));
  }
  return [...tokens].slice(0, MAX_SUBJECTS);
}

/**
 * The header section of a message (up to and including the blank line that
 * ends it), reading no more than `limit` bytes of `message`: a longer section
 * comes back cut at `limit`. Stops reading as soon as it has the section.
 */
export async function readHeaderBlock(message: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const finder = new HeaderEndFinder();
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of message) {
    const end = finder.feed(chunk);
    const take = Math.min(end < 0 ? chunk.length : end, limit - size);
    if (take > 0) {
      parts.push(Buffer.from(chunk.subarray(0, take)));
      size += take;
    }
    if (end >= 0 || size >= limit) break;
  }
  return Buffer.concat(parts, size);
}
