/*
 * TLSA records (RFC 6698) as DANE for SMTP (RFC 7672) uses them: which are
 * usable, and whether one matches a certificate.
 *
 * Usable, as Postfix (through OpenSSL's DANE support) counts it:
 *  - usage DANE-TA(2) or DANE-EE(3). PKIX-TA(0) and PKIX-EE(1) are unusable
 *    for SMTP (RFC 7672 3.1.3): there is no agreed set of public CAs for MX
 *    hosts.
 *  - selector Cert(0) or SPKI(1); matching type Full(0), SHA2-256(1) or
 *    SHA2-512(2).
 *  - well formed: a digest of the right length, and Full(0) data that
 *    parses as a certificate (selector 0) or a public key (selector 1).
 *    OpenSSL drops malformed records the same way (SSL_dane_tlsa_add).
 *
 * Digest algorithm agility (RFC 7671 9) is implemented, as OpenSSL does it:
 * within one (usage, selector) pair, when SHA2-512 records are present the
 * SHA2-256 records of that pair are ignored, so a server operator can retire
 * SHA2-256 by publishing SHA2-512 next to it. Full(0) records are never
 * ignored. Postfix's default `tls_dane_digests = sha512 sha256` gives the
 * same order.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';

/** One TLSA record, as the DNS lookup (src/dns) returns it. */
export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export const USAGE_DANE_TA = 2;
export const USAGE_DANE_EE = 3;
export const SELECTOR_CERT = 0;
export const SELECTOR_SPKI = 1;
export const MATCH_FULL = 0;
export const MATCH_SHA256 = 1;
export const MATCH_SHA512 = 2;

const DIGEST: Readonly<Record<number, { algorithm: string; length: number }>> = {
  [MATCH_SHA256]: { algorithm: 'sha256', length: 32 },
  [MATCH_SHA512]: { algorithm: 'sha512', length: 64 },
};

/** RFC 7671 9: a higher number is a stronger digest. Full(0) is outside the order. */
const DIGEST_STRENGTH: Readonly<Record<number, number>> = { [MATCH_SHA256]: 1, [MATCH_SHA512]: 2 };

/** Usage, selector and matching type are ones we implement, and the data is well formed. */
export function isUsable(r: TlsaRecord): boolean {
  if (r.usage !== USAGE_DANE_TA && r.usage !== USAGE_DANE_EE) return false;
  if (r.selector !== SELECTOR_CERT && r.selector !== SELECTOR_SPKI) return false;
  if (r.matchingType === MATCH_FULL) return r.selector === SELECTOR_CERT ? fullCert(r) !== undefined : fullKey(r) !== undefined;
  const digest = DIGEST[r.matchingType];
  return digest !== undefined && r.data.length === digest.length;
}

/**
 * The records DANE may use: the usable ones, less the weaker digests that
 * digest agility ignores. Empty means "no usable TLSA record": Postfix then
 * behaves as `encrypt`.
 */
export function usable(records: readonly TlsaRecord[]): TlsaRecord[] {
  const ok = records.filter(isUsable);
  const strongest = new Map<string, number>();
  for (const r of ok) {
    const key = `${r.usage} ${r.selector}`;
    strongest.set(key, Math.max(strongest.get(key) ?? 0, DIGEST_STRENGTH[r.matchingType] ?? 0));
  }
  return ok.filter((r) => r.matchingType === MATCH_FULL || DIGEST_STRENGTH[r.matchingType] === strongest.get(`${r.usage} ${r.selector}`));
}

/** The bytes a record's selector picks from a certificate. */
export function selected(selector: number, cert: X509Certificate): Buffer {
  return selector === SELECTOR_CERT ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
}

/** True when the record matches the certificate. An unusable record matches nothing. */
export function tlsaMatches(record: TlsaRecord, cert: X509Certificate): boolean {
  if (!isUsable(record)) return false;
  const bytes = selected(record.selector, cert);
  const digest = DIGEST[record.matchingType];
  const value = digest ? createHash(digest.algorithm).update(bytes).digest() : bytes;
  return value.equals(record.data);
}

/** A "2 0 0" or "3 0 0" record's certificate, or undefined when the data is not one. */
export function fullCert(r: TlsaRecord): X509Certificate | undefined {
  if (r.selector !== SELECTOR_CERT || r.matchingType !== MATCH_FULL) return undefined;
  try {
    const cert = new X509Certificate(r.data);
    // Trailing bytes after the certificate would still parse: insist on exactly one.
    return cert.raw.equals(r.data) ? cert : undefined;
  } catch {
    return undefined;
  }
}

/** A "2 1 0" or "3 1 0" record's public key, or undefined when the data is not one. */
export function fullKey(r: TlsaRecord): KeyObject | undefined {
  if (r.selector !== SELECTOR_SPKI || r.matchingType !== MATCH_FULL) return undefined;
  try {
    // Not compared with its re-export: an EC point may be published compressed.
    return createPublicKey({ key: r.data, format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/** "3 1 1 ab12...": for logs and failure details (the data is public DNS data). */
export function describe(r: TlsaRecord): string {
  const hex = r.data.toString('hex');
  return `${r.usage} ${r.selector} ${r.matchingType} ${hex.length > 16 ? `${hex.slice(0, 16)}...` : hex}`;
}
