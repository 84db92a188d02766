/*
 * TLS to the fixed next hop (relay mode): the settings one next-hop
 * connection negotiates with, how a finished handshake is judged, and which
 * reply a failure gives our client. The STARTTLS exchange itself (RFC 3207)
 * is in next-hop.ts, since it is part of the reply stream.
 *
 * Levels are Postfix's smtp_tls_security_level:
 *  - none:    never STARTTLS, even when offered;
 *  - may:     STARTTLS when offered, any certificate; not offered, or a
 *             handshake that fails, falls back to plain text ("downgraded");
 *  - encrypt: STARTTLS or no delivery, any certificate;
 *  - verify:  STARTTLS, the chain leads to a trusted CA and the certificate
 *             names `servername` (default: the next_hop host);
 *  - secure:  as verify. Postfix's secure differs from verify only in where
 *             the name to match comes from (never from DNS, which a relay
 *             mode next hop never consults anyway), so here they are one rule.
 * Failures are named with RFC 8460's result types, which the metric
 * mailveil_tls_outbound_total{policy,result} and the `event: tls` log line
 * use, and which pick the reply: 451 4.7.4 at encrypt ("security features
 * not supported"), 451 4.7.5 at verify/secure ("cryptographic failure").
 * Replies say why, never to whom.
 *
 * Trust at verify/secure: `tls.next_hop.ca_file` alone when set (the next
 * hop is our own infrastructure, so its CA can be pinned); otherwise the
 * system store plus `tls.ca_file` (NODE_EXTRA_CA_CERTS also works).
 */
import { checkServerIdentity, createSecureContext, rootCertificates, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import * as nodeTls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { PemFile, TlsConfig } from '../config/load';
import type { ReplyCode } from '../errors';
import type { TlsLevel } from '../tls/levels';
import type { TlsaRecord } from '../tls/tlsa';
import type { PolicySource } from '../tls/policy';
import { verifyDane } from '../tls/dane';
import { peerChain } from '../tls/peer-chain';
import { nameMatch } from '../tls/names';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

/** Relay mode knows none..secure; mx delivery adds dane and dane-only (tls/policy.ts). */
export type NextHopTlsLevel = TlsLevel;

/** RFC 8460 section 4.3 result types mailveil can meet on an outbound connection. */
export type TlsFailureType = 'starttls-not-supported' | 'certificate-host-mismatch' | 'certificate-expired' | 'certificate-not-trusted' | 'validation-failure' | 'tlsa-invalid' | 'dane-required';
export type TlsResult = 'ok' | 'downgraded' | TlsFailureType;
/** Where the level came from: `static` is the relay-mode config or a tls_policy entry; mx delivery adds the rest. */
export type TlsPolicySource = PolicySource;

/** What one connection negotiates with, built once per process. */
export interface NextHopTls {
  level: NextHopTlsLevel;
  source: TlsPolicySource;
  /** The name sent as SNI (unless an IP) and, without `match`, matched against the certificate. */
  servername?: string;
  /** verify/secure: the certificate must name one of these (MTA-STS: the MX host; a tls_policy `match:`). */
  match?: string[];
  /** dane/dane-only with usable TLSA records: the chain is judged by verifyDane(), not by the CA store. */
  dane?: { records: TlsaRecord[]; names: string[] };
  /** CAs, client certificate: undefined at level none. */
  secureContext?: SecureContext;
  /** Identity of these settings: a pooled connection is reused only under the same key. */
  key: string;
}

/** The TLS state of one next-hop connection, recorded on it and reported once. */
export interface TlsOutcome {
  /** host:port of the next hop (our own infrastructure in relay mode; never a recipient's). */
  nextHop: string;
  level: NextHopTlsLevel;
  source: TlsPolicySource;
  result: TlsResult;
  /** e.g. TLSv1.3; absent when no handshake completed. */
  protocol?: string;
  cipher?: string;
  /** Chain trusted and name matched (also recorded at may and encrypt, where it is not required). */
  verified?: boolean;
  /** Why, in words for the log (an OpenSSL code, "not offered"...). */
  reason?: string;
}

export const mustEncrypt = (level: NextHopTlsLevel): boolean => level !== 'none' && level !== 'may';
export const mustVerify = (level: NextHopTlsLevel): boolean => level === 'verify' || level === 'secure' || level === 'dane' || level === 'dane-only';

/** The store verify/secure trust when no next-hop CA is pinned: Node's default (with NODE_EXTRA_CA_CERTS) plus `extra`. */
export function defaultStorePlus(extra: string): string[] {
  const get = (nodeTls as { getCACertificates?: (type?: string) => string[] }).getCACertificates;
  if (get) return [...get('default'), extra];
  const out = [...rootCertificates, extra];
  const env = process.env.NODE_EXTRA_CA_CERTS;
  if (env) {
    try {
      out.push(readFileSync(env, 'utf8'));
    } catch {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  return out;
}

/** Settings for the relay-mode next hop, from the loaded config (files already read). */
export function nextHopTls(cfg: TlsConfig['next_hop'], globalCa: PemFile | null): NextHopTls {
  const servername = cfg.servername ?? undefined;
  if (cfg.level === 'none') return { level: 'none', source: 'static', key: 'none' };
  const ca = cfg.ca_file ? cfg.ca_file.pem : globalCa ? defaultStorePlus(globalCa.pem) : undefined;
  const secureContext = createSecureContext({
    ...(ca ? { ca } : {}),
    ...(cfg.cert && cfg.key ? { cert: cfg.cert.pem, key: cfg.key.pem } : {}),
  });
  const key = [cfg.level, servername ?? '', cfg.ca_file?.path ?? '', globalCa?.path ?? '', cfg.cert?.path ?? ''].join('\0');
  return { level: cfg.level, source: 'static', servername, secureContext, key };
}

/** OpenSSL's verify error (socket.authorizationError) as an RFC 8460 result type. */
export function chainFailure(code: string | undefined): TlsFailureType {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'certificate-expired';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'CERT_UNTRUSTED':
    case 'CERT_CHAIN_TOO_LONG':
    case 'INVALID_CA':
      return 'certificate-not-trusted';
    default:
      return 'validation-failure';
  }
}

/** A completed handshake judged against the level: what it was, and the failure if the level refuses it. */
export function judgeHandshake(socket: TLSSocket, tls: Pick<NextHopTls, 'level' | 'match' | 'dane'>, name: string): { verified: boolean; failure?: TlsFailureType; reason?: string; protocol?: string; cipher?: string } {
  const proto = { protocol: socket.getProtocol() ?? undefined, cipher: socket.getCipher()?.name };
  if (tls.dane) {
    // DANE replaces the CA store and its name rules (RFC 7672 3.1): Node's own verdict is not asked.
    const d = verifyDane({ chain: peerChain(socket), records: tls.dane.records, names: tls.dane.names });
    if (d.ok === true) return { ...proto, verified: true };
    if (d.ok === 'no-usable') return { ...proto, verified: false };
    return { ...proto, verified: false, failure: d.failure, reason: `DANE: ${d.detail}` };
  }
  const peer: PeerCertificate | undefined = socket.getPeerCertificate();
  const chainOk = socket.authorized;
  const names = tls.match?.length ? tls.match : [name];
  // An empty object when the server sent no certificate.
  // Names with Postfix's match semantics (tls/names.ts); an IP address (a next_hop without servername) as Node checks it.
  const cert = peer && peer.raw ? new X509Certificate(peer.raw) : undefined;
  const nameOk = Boolean(cert) && names.some((n) => (isIP(n) ? !checkServerIdentity(n, peer) : nameMatch(cert!, [n]) !== undefined));
  const verified = chainOk && nameOk;
  const seen = { verified, ...proto };
  if (!mustVerify(tls.level) || verified) return seen;
  if (!chainOk) return { ...seen, failure: chainFailure(String(socket.authorizationError ?? '')), reason: String(socket.authorizationError ?? 'certificate not verified') };
  return { ...seen, failure: 'certificate-host-mismatch', reason: `certificate does not name ${names.join(' or ')}` };
}

/** The reply our client gets when the next hop's TLS does not meet the level (4.7.4 at encrypt, 4.7.5 above). */
export function tlsReplyCode(level: NextHopTlsLevel, failure: TlsFailureType): ReplyCode {
  if (!mustVerify(level)) return failure === 'starttls-not-supported' ? 'MV_TLS_ENCRYPT_NOT_OFFERED' : 'MV_TLS_ENCRYPT_FAILED';
  switch (failure) {
    case 'starttls-not-supported':
      return 'MV_TLS_NOT_OFFERED';
    case 'certificate-expired':
      return 'MV_TLS_CERT_EXPIRED';
    case 'certificate-not-trusted':
      return 'MV_TLS_CERT_UNTRUSTED';
    case 'certificate-host-mismatch':
      return 'MV_TLS_CERT_MISMATCH';
    case 'tlsa-invalid':
    case 'dane-required':
      return 'MV_TLS_DANE_FAILED';
    default:
      return 'MV_TLS_FAILED';
  }
}
