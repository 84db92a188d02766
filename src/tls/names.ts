/*
 * Certificate names against the names a TLS level accepts, with Postfix's
 * `match` semantics (smtp_tls_verify_cert_match): a plain name matches as
 * RFC 6125 says (a wildcard only as the whole left-most label); a name with
 * a leading dot (`.example.com`, from `dot-nexthop` or a tls_policy
 * `match:`) matches any name below it. One matcher for delivery
 * (smtp/next-hop-tls.ts) and `mailveil tls check`, so the two never
 * disagree.
 */
import type { X509Certificate } from 'node:crypto';
import { hostMatches } from './dane';

/** The DNS names a certificate is for: its subjectAltName DNS entries, else its CN. */
export function certNames(cert: X509Certificate): string[] {
  const san = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (san.length) return san;
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** The first of `names` the certificate satisfies, or undefined. */
export function nameMatch(cert: X509Certificate, names: readonly string[]): string | undefined {
  for (const n of names) {
    if (n.startsWith('.')) {
      if (certNames(cert).some((c) => c.replace(/^\*\./, 'x.').endsWith(n))) return n;
    } else if (hostMatches(cert, n)) return n;
  }
  return undefined;
}
