/*
 * The `_mta-sts.<domain>` TXT record (RFC 8461 3.1):
 *
 *   sts-text-record = sts-version 1*(*WSP ";" *WSP sts-field) [";"]
 *   sts-version     = %s"v=STSv1"
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") "=" 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * Records that do not begin with "v=STSv1;" are discarded. If not exactly
 * one is left, or that one is invalid (no id, a bad field), the domain has
 * no policy as far as the TXT goes: several STSv1 records count as none.
 * Limits: a record over MAX_TXT_LENGTH is invalid without being scanned.
 */

/** Longer than any sane record; a bound on the scan. */
export const MAX_TXT_LENGTH = 4096;

export type TxtResult = { kind: 'ok'; id: string } | { kind: 'none'; reason: 'no-record' | 'several-records' | 'invalid' };

const ID_RE = /^id=([A-Za-z0-9]{1,32})$/;
const EXT_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+$/;

/** The policy id of the domain's STSv1 record, from all the TXT records at `_mta-sts.<domain>`. */
export function parseStsTxt(records: readonly string[]): TxtResult {
  const sts = records.filter((r) => r.startsWith('v=STSv1;'));
  if (sts.length === 0) return { kind: 'none', reason: 'no-record' };
  if (sts.length > 1) return { kind: 'none', reason: 'several-records' };
  const id = parseRecord(sts[0]);
  return id === undefined ? { kind: 'none', reason: 'invalid' } : { kind: 'ok', id };
}

function parseRecord(record: string): string | undefined {
  if (record.length > MAX_TXT_LENGTH) return undefined;
  const fields = record.slice('v=STSv1;'.length).split(';').map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''));
  // One trailing ";" is allowed: it leaves one empty last field.
  if (fields.length > 1 && fields[fields.length - 1] === '') fields.pop();
  let id: string | undefined;
  for (const f of fields) {
    const m = ID_RE.exec(f);
    if (m) {
      if (id !== undefined) return undefined; // two ids: which one would we cache under?
      id = m[1];
    } else if (f.startsWith('id=') || !EXT_RE.test(f)) {
      return undefined;
    }
  }
  return id;
}
