/*
 * A policy domain's TLS-RPT record (RFC 8460 section 3): the TXT record at
 * `_smtp._tls.<domain>` that says where its reports go.
 *
 *   tlsrpt-record  = "v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim    = *WSP ";" *WSP
 *   tlsrpt-field   = tlsrpt-rua / tlsrpt-extension
 *   tlsrpt-rua     = "rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   extension      = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *                    "=" 1*(%x21-3A / %x3C / %x3E-7E)
 *
 *  - Records that do not begin with `v=TLSRPTv1;` are not TLS-RPT records
 *    and are discarded (blanks before the `;` are taken, as field-delim
 *    allows them); if the number left is not exactly one, or that one
 *    does not parse, the domain has no TLS-RPT (section 3). Unknown
 *    extension fields are ignored.
 *  - Only `mailto:` (one addr-spec, ASCII, RFC 6068 percent-decoded, any
 *    `?headers` ignored) and `https:` URIs are used; other schemes are
 *    skipped, and a record left with none is "none".
 *  - Limits: a record over MAX_RECORD_CHARS is invalid; at most MAX_RUA
 *    URIs are taken (the rest are dropped), so a hostile record cannot make
 *    one report go out a thousand times.
 *
 * A DNS failure (`temp`) is a value of its own: the caller retries later.
 */
import { isIP } from 'node:net';
import { normaliseName } from './counts';

export const TLSRPT_PREFIX = '_smtp._tls.';
export const MAX_RECORD_CHARS = 4096;
export const MAX_RUA = 10;
const MAX_LOCAL_PART = 64;

export type Rua =
  /** `address` is the addr-spec, `domain` its domain (lower case, A-label): logs name only the domain. */
  | { kind: 'mailto'; uri: string; address: string; domain: string }
  /** `host` is the URL's host name (or IP literal without brackets). */
  | { kind: 'https'; uri: string; url: URL; host: string };

export type ParsedRecord = { kind: 'ok'; rua: Rua[]; skipped: number } | { kind: 'invalid'; reason: string };

export type RuaLookup =
  | { kind: 'rua'; rua: Rua[]; secure: boolean }
  /** No usable TLS-RPT record: none, several, unparsable, or no mailto/https URI in it. */
  | { kind: 'none'; reason: 'no-record' | 'nxdomain' | 'multiple' | 'invalid' | 'no-usable-rua'; detail?: string }
  | { kind: 'temp'; detail: string };

/** The TXT lookup this needs (dns/lookups.ts DnsLookups.txt). */
export interface TxtLookup {
  txt(owner: string): Promise<{ kind: 'txt'; records: string[]; secure: boolean } | { kind: 'nxdomain'; secure: boolean } | { kind: 'temp'; reason: string; detail: string }>;
}

const VERSION_RE = /^v=TLSRPTv1[ \t]*;/;
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const EXT_VALUE_RE = /^[\x21-\x3a\x3c\x3e-\x7e]+$/;

/** True for a TXT record that claims to be a TLS-RPT record (section 3: the others are discarded). */
export function isTlsRptRecord(txt: string): boolean {
  return VERSION_RE.test(txt);
}

/** Parses one record that begins with `v=TLSRPTv1`. */
export function parseTlsRptRecord(txt: string): ParsedRecord {
  if (txt.length > MAX_RECORD_CHARS) return { kind: 'invalid', reason: `over ${MAX_RECORD_CHARS} characters` };
  if (!isTlsRptRecord(txt)) return { kind: 'invalid', reason: 'does not begin with v=TLSRPTv1;' };
  const fields = txt.split(';').map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''));
  // fields[0] is the version; a trailing delimiter leaves one empty field at the end.
  if (fields[fields.length - 1] === '') fields.pop();
  if (fields.length < 2) return { kind: 'invalid', reason: 'no field after the version' };
  const uris: string[] = [];
  for (const field of fields.slice(1)) {
    const eq = field.indexOf('=');
    if (eq <= 0) return { kind: 'invalid', reason: 'a field is not key=value' };
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (!KEY_RE.test(key)) return { kind: 'invalid', reason: 'a field name is not valid' };
    if (key === 'rua') {
      const list = value.split(',').map((u) => u.replace(/^[ \t]+|[ \t]+$/g, ''));
      if (list.some((u) => u === '' || /[\s!;]/.test(u) || !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(u))) return { kind: 'invalid', reason: 'rua holds something that is not a URI' };
      uris.push(...list);
    } else if (!EXT_VALUE_RE.test(value)) return { kind: 'invalid', reason: 'an extension value is not valid' };
  }
  if (uris.length === 0) return { kind: 'invalid', reason: 'no rua field' };
  const rua: Rua[] = [];
  let skipped = 0;
  for (const uri of uris) {
    const r = rua.length < MAX_RUA ? parseRua(uri) : undefined;
    if (r && !rua.some((x) => x.uri === r.uri)) rua.push(r);
    else skipped++;
  }
  return { kind: 'ok', rua, skipped };
}

/** One rua URI if it is a usable mailto: or https: target, else undefined. */
export function parseRua(uri: string): Rua | undefined {
  const colon = uri.indexOf(':');
  const scheme = uri.slice(0, colon).toLowerCase();
  if (scheme === 'mailto') {
    // RFC 6068: mailto:addr[,addr...][?hfields]; one address per rua.
    let to: string;
    try {
      to = decodeURIComponent(uri.slice(colon + 1).split('?')[0]);
    } catch {
      return undefined;
    }
    const at = to.lastIndexOf('@');
    if (at <= 0 || to.includes(',')) return undefined;
    const local = to.slice(0, at);
    const domain = normaliseName(to.slice(at + 1));
    // An ASCII dot-atom-like local part: no SMTPUTF8 and no quoting on the way out.
    if (domain === undefined || local.length > MAX_LOCAL_PART || !/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/.test(local) || /^\.|\.$|\.\./.test(local)) return undefined;
    return { kind: 'mailto', uri, address: `${local}@${domain}`, domain };
  }
  if (scheme === 'https') {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return undefined;
    }
    if (url.protocol !== 'https:' || url.username || url.password) return undefined;
    const bare = url.hostname.replace(/^\[|\]$/g, '');
    const host = isIP(bare) ? bare : normaliseName(bare);
    if (host === undefined) return undefined;
    return { kind: 'https', uri, url, host };
  }
  return undefined;
}

/** Looks up and parses `_smtp._tls.<domain>`. */
export async function lookupRua(dns: TxtLookup, domain: string): Promise<RuaLookup> {
  const r = await dns.txt(TLSRPT_PREFIX + domain);
  if (r.kind === 'temp') return { kind: 'temp', detail: `${r.reason}: ${r.detail}` };
  if (r.kind === 'nxdomain') return { kind: 'none', reason: 'nxdomain' };
  const records = r.records.filter(isTlsRptRecord);
  if (records.length === 0) return { kind: 'none', reason: 'no-record' };
  if (records.length > 1) return { kind: 'none', reason: 'multiple', detail: `${records.length} records` };
  const p = parseTlsRptRecord(records[0]);
  if (p.kind === 'invalid') return { kind: 'none', reason: 'invalid', detail: p.reason };
  if (p.rua.length === 0) return { kind: 'none', reason: 'no-usable-rua' };
  return { kind: 'rua', rua: p.rua, secure: r.secure };
}

/** What a log line may say about a target: the scheme and a domain or host, never a local part. */
export function ruaLabel(r: Rua): { target: 'mailto' | 'https'; host: string } {
  return r.kind === 'mailto' ? { target: 'mailto', host: r.domain } : { target: 'https', host: r.host };
}
