/*
 * The TLS settings of one connection to one MX host, from what
 * tls/policy.ts decided for it (its level, source, names and DANE data).
 * SNI is the MX host name (RFC 7672 8.1, RFC 8461 4.1); the connection
 * itself goes to an address, so the name never comes from the socket.
 *
 *   none            no STARTTLS
 *   may, encrypt    any certificate; whether it verified is still recorded
 *   verify, secure  PKIX (system store + tls.ca_file) and one of `match`
 *                   (MTA-STS enforce: the MX host name)
 *   dane, dane-only the usable TLSA records alone (verifyDane): no CA
 *                   store, no expiry for DANE-EE, names for DANE-TA
 */
import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { usable } from '../../tls/tlsa';
import type { MxTarget } from '../../tls/policy';
import type { PemFile } from '../../config/load';
import { defaultStorePlus, type NextHopTls } from '../next-hop-tls';

/** One context for every MX connection: the system store plus tls.ca_file. Built once. */
export function mxSecureContext(caFile: PemFile | null): SecureContext {
  return createSecureContext(caFile ? { ca: defaultStorePlus(caFile.pem) } : {});
}

export function targetTls(t: MxTarget, domain: string, secureContext: SecureContext): NextHopTls {
  const base = { source: t.source, servername: t.host };
  if (t.level === 'none') return { ...base, level: 'none', key: 'none' };
  const dane = (t.level === 'dane' || t.level === 'dane-only') && t.dane.state === 'usable' ? { records: usable(t.dane.records), names: t.match ?? [t.host, domain] } : undefined;
  const match = t.level === 'verify' || t.level === 'secure' ? (t.match ?? [t.host]) : undefined;
  // Two policies that differ in anything a connection was judged by never share it.
  const id = createHash('sha256')
    .update(JSON.stringify([t.level, t.source, t.host, match ?? [], dane ? dane.records.map((r) => [r.usage, r.selector, r.matchingType, r.data.toString('hex')]) : [], dane?.names ?? []]))
    .digest('hex')
    .slice(0, 16);
  return { ...base, level: t.level, secureContext, key: `mx:${id}`, ...(match ? { match } : {}), ...(dane ? { dane } : {}) };
}
