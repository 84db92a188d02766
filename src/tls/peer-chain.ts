/*
 * The certificate chain a TLS server presented, as X509Certificates, leaf
 * first: what verifyDane() needs.
 *
 * Why the connection is made with `rejectUnauthorized: false` and a no-op
 * `checkServerIdentity` (DANE_CONNECT_OPTIONS): Node validates the chain
 * against its CA store first and checks the name only after that passed, so
 * a DANE-EE self-signed certificate, or a DANE-TA private CA, would be
 * refused before DANE is even asked. The caller must therefore call
 * verifyDane() on peerChain(socket) right after the handshake, and send
 * nothing (not even EHLO) until it says ok.
 *
 * What the chain is: Node's getPeerCertificate(true) starts from the leaf
 * and follows issuers among the certificates the server sent (linked by name
 * and key identifier, not by signature), then may add issuers from the
 * client's own CA store; the self-signed top links to itself. We follow
 * `issuerCertificate` until a certificate repeats. Order and extra links do
 * not matter to verifyDane(): it checks every signature itself, and a
 * certificate from the local store can anchor DANE-TA only by matching a
 * DNSSEC-signed TLSA record, exactly as one the server sent.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { MAX_PRESENTED } from './dane';

/** Bounds the walk: one past verifyDane()'s limit, so a longer chain is refused there, not cut short here. */
export const MAX_PEER_CHAIN = MAX_PRESENTED + 1;

/**
 * The tls.connect() options a DANE connection needs (see above). Add the
 * socket and `servername`: the TLSA base domain, sent as SNI (RFC 7672 8.1).
 */
export const DANE_CONNECT_OPTIONS = {
  rejectUnauthorized: false,
  checkServerIdentity: (): undefined => undefined,
} as const;

export function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  while (cert?.raw && chain.length < MAX_PEER_CHAIN) {
    const id = cert.raw.toString('base64');
    if (seen.has(id)) break;
    seen.add(id);
    chain.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate;
  }
  return chain;
}
