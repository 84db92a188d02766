/*
 * The DANE verifier for SMTP (RFC 7672, with RFC 6698 and RFC 7671), with
 * Postfix's semantics: given the chain an MX host presented, its secure TLSA
 * records and the reference names, say whether the host is authenticated.
 *
 * Why our own verifier: Node checks the server name only after PKIX
 * validation against its CA store has passed, and has no DANE. So the DANE
 * connection is made with `rejectUnauthorized: false` and a no-op
 * `checkServerIdentity` (see peer-chain.ts), and this module decides alone.
 *
 *  - DANE-EE(3): the leaf matches a record. Name and expiry are not checked
 *    (RFC 7672 3.1.1), which is what lets self-signed MX certificates work.
 *  - DANE-TA(2): a certificate above the leaf matches a record; the path
 *    from the leaf up to it verifies signature by signature, each issuer is
 *    a CA, every certificate on it (the TA too) is within its validity
 *    period, and the leaf matches one of `names` (RFC 7672 3.1.2, 3.2).
 *    A TA record matches at depth 1 or more only, as in OpenSSL.
 *  - TA not sent by the server (RFC 7671 5.2.2): a "2 0 0" record (whole
 *    certificate) or a "2 1 0" record (whole public key) can anchor a chain
 *    whose top the server did not send. Digest records cannot: their TA
 *    must be in the presented chain, as RFC 7672 3.1.2 asks servers to do.
 *  - No usable record: `no-usable`, and the caller behaves as `encrypt`
 *    (Postfix). Any other outcome that is not `ok` defers (4.7.5); nothing
 *    here ever means "send in the clear" or "send unverified".
 *
 * Names: wildcards only as the whole left-most label ("*.example.com"
 * matches "mx.example.com", not "example.com" nor "a.mx.example.com"), never
 * partial ("mx*.example.com"), as RFC 6125 6.4.3 and Postfix (OpenSSL with
 * X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS) do. A reference name holding "*"
 * matches nothing: it would otherwise match a certificate naming "*" literally.
 *
 * Not done: name constraints and path-length constraints on the issuers;
 * revocation (DANE has none: the TLSA record is the revocation). The path
 * is built greedily: at each step the first presented certificate that
 * verifies as the issuer is taken, with no backtracking, so a server sending
 * two cross-signed issuers may fail where another path would pass. That
 * fails closed (a deferral), never open.
 */
import type { X509Certificate } from 'node:crypto';
import { fullCert, fullKey, tlsaMatches, usable, USAGE_DANE_EE, USAGE_DANE_TA, type TlsaRecord } from './tlsa';

/** The RFC 8460 result types a DANE failure is reported as. `dane-required` is the caller's (dane-only, no secure TLSA). */
export type DaneFailure = 'tlsa-invalid' | 'dane-required' | 'certificate-host-mismatch' | 'certificate-expired' | 'certificate-not-trusted' | 'validation-failure';

export type DaneResult =
  | { ok: true; usage: 2 | 3; depth: number; record: TlsaRecord; name?: string }
  | { ok: false; failure: DaneFailure; detail: string }
  | { ok: 'no-usable' };

export interface DaneInput {
  /** The presented chain, leaf first (peerChain()). */
  chain: readonly X509Certificate[];
  /** The secure TLSA RRset of the MX host. */
  records: readonly TlsaRecord[];
  /** Reference identifiers: the TLSA base domain and, per RFC 7672 3.2.2, the next-hop domain when appropriate. */
  names: readonly string[];
  now?: Date;
}

/** Postfix's smtp_tls_scert_verifydepth default: how far above the leaf a TA may be. */
export const MAX_TA_DEPTH = 9;
/** More certificates than this is not a chain a server should send; refuse rather than search it. */
export const MAX_PRESENTED = 20;

const fail = (failure: DaneFailure, detail: string): DaneResult => ({ ok: false, failure, detail });

export function verifyDane({ chain, records, names, now = new Date() }: DaneInput): DaneResult {
  if (names.length === 0) throw new TypeError('verifyDane: names must hold at least the TLSA base domain');
  const use = usable(records);
  if (use.length === 0) return { ok: 'no-usable' };
  if (chain.length === 0) return fail('validation-failure', 'the server presented no certificate');
  if (chain.length > MAX_PRESENTED) return fail('validation-failure', `the server presented ${chain.length} certificates (over ${MAX_PRESENTED})`);

  const leaf = chain[0];
  const ee = use.find((r) => r.usage === USAGE_DANE_EE && tlsaMatches(r, leaf));
  if (ee) return { ok: true, usage: USAGE_DANE_EE, depth: 0, record: ee };

  const ta = use.filter((r) => r.usage === USAGE_DANE_TA);
  if (ta.length === 0) return fail('tlsa-invalid', 'no DANE-EE record matches the server certificate');
  return verifyTrustAnchor(chain, ta, names, now);
}

interface Anchor {
  depth: number;
  record: TlsaRecord;
  /** The TA certificate, when it is one (a bare "2 1 0" key has none); on the path or from the record. */
  cert?: X509Certificate;
}

function verifyTrustAnchor(chain: readonly X509Certificate[], ta: readonly TlsaRecord[], names: readonly string[], now: Date): DaneResult {
  const leaf = chain[0];
  const path: X509Certificate[] = [leaf];
  const anchor = climb(path, chain, ta);
  if (!anchor) {
    const elsewhere = chain.some((c) => !c.raw.equals(leaf.raw) && !path.includes(c) && ta.some((r) => tlsaMatches(r, c)));
    return elsewhere
      ? fail('certificate-not-trusted', 'a DANE-TA record matches a presented certificate, but the chain from the server certificate does not verify up to it')
      : fail('tlsa-invalid', 'no DANE-TA record matches the server certificate chain');
  }
  const issuers = anchor.cert && anchor.depth === path.length ? [...path.slice(1), anchor.cert] : path.slice(1);
  const notCa = issuers.findIndex((c) => !c.ca);
  if (notCa >= 0) return fail('certificate-not-trusted', `the issuer at depth ${notCa + 1} is not a CA`);

  const name = names.find((n) => hostMatches(leaf, n));
  if (name === undefined) return fail('certificate-host-mismatch', 'the server certificate matches none of the reference names');

  const dated = [leaf, ...issuers];
  for (let depth = 0; depth < dated.length; depth++) {
    const c = dated[depth];
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return fail('validation-failure', `the validity dates at depth ${depth} cannot be read`);
    if (now < from) return fail('certificate-expired', `the certificate at depth ${depth} is not valid before ${c.validFrom}`);
    if (now > to) return fail('certificate-expired', `the certificate at depth ${depth} expired ${c.validTo}`);
  }
  return { ok: true, usage: USAGE_DANE_TA, depth: anchor.depth, record: anchor.record, name };
}

/**
 * Walk up from the leaf through the presented certificates, each verified
 * as the issuer of the one below, until one matches a TA record. `path`
 * grows as it goes. When the top of the presented path has no issuer among
 * them, a whole-certificate or whole-key TA record may still have signed it.
 */
function climb(path: X509Certificate[], chain: readonly X509Certificate[], ta: readonly TlsaRecord[]): Anchor | undefined {
  for (;;) {
    const depth = path.length - 1;
    const top = path[depth];
    if (depth > 0) {
      const record = ta.find((r) => tlsaMatches(r, top));
      if (record) return { depth, record, cert: top };
    }
    if (depth >= MAX_TA_DEPTH) return undefined;
    const issuer = chain.find((c) => !path.some((p) => p.raw.equals(c.raw)) && issuedBy(top, c));
    if (!issuer) return notSent(top, depth + 1, ta);
    path.push(issuer);
  }
}

/** RFC 7671 5.2.2: the TA the record carries whole, if it signed `top`. */
function notSent(top: X509Certificate, depth: number, ta: readonly TlsaRecord[]): Anchor | undefined {
  for (const record of ta) {
    const cert = fullCert(record);
    if (cert && issuedBy(top, cert)) return { depth, record, cert };
    const key = fullKey(record);
    if (key && verifies(top, key)) return { depth, record };
  }
  return undefined;
}

/** Names and key identifiers link (checkIssued) and the signature verifies. */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && verifies(cert, issuer.publicKey);
}

function verifies(cert: X509Certificate, key: X509Certificate['publicKey']): boolean {
  try {
    return cert.verify(key);
  } catch {
    // A key of another type or an unsupported algorithm: not this issuer.
    return false;
  }
}

/** RFC 6125 matching of one reference name; see the wildcard note at the top. */
export function hostMatches(cert: X509Certificate, name: string): boolean {
  const host = name.replace(/\.$/, '').toLowerCase();
  if (host === '' || host.includes('*')) return false;
  return cert.checkHost(host, { wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined;
}
