/*
 * Fetches a domain's MTA-STS policy (RFC 8461 3.3):
 *
 *   GET https://mta-sts.<domain>/.well-known/mta-sts.txt
 *
 * The host name is looked up through the injected `lookup` (so the same
 * resolver as every other lookup is used, dns.servers), and the connection
 * goes to that address with SNI and certificate checks for
 * `mta-sts.<domain>`, against the system CAs plus the optional `ca`
 * (tls.ca_file). No redirect is followed (a 3xx is a failure), only a 200 is
 * taken, the media type must be text/plain, the body stops being read at
 * `maxBytes` (64 KiB), and the whole exchange, lookup included, has one
 * deadline. No HTTP cache, no keep-alive, no proxy.
 *
 * Every failure is a value with its RFC 8460 type:
 *   sts-webpki-invalid      the certificate does not verify or is not for mta-sts.<domain>
 *   sts-policy-invalid      a 200 that is not text/plain, or a policy that does not parse
 *   sts-policy-fetch-error  anything else: lookup, connect, timeout, a non-200 or 3xx, a body over the limit
 */
import https from 'node:https';
import tls from 'node:tls';
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { normaliseName, parsePolicy } from './policy';
import type { HostLookup, StsFailure, StsPolicy } from './types';

export const WELL_KNOWN_PATH = '/.well-known/mta-sts.txt';
/** RFC 8461 3.3 suggests a limit on the resource size; 64 KiB is what Postfix's resolvers use. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** The whole fetch, lookup to last byte. A policy is a few hundred bytes. */
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

export interface FetchOptions {
  lookup: HostLookup;
  /** Extra trusted CAs (PEM), added to the system store: the content of tls.ca_file. */
  ca?: string | Buffer | (string | Buffer)[];
  timeoutMs?: number;
  /** 443; tests use another. */
  port?: number;
  maxBytes?: number;
}

export type FetchFailureReason = 'bad-domain' | 'lookup' | 'connect' | 'timeout' | 'certificate' | 'redirect' | 'status' | 'media-type' | 'too-large' | 'policy';

export type FetchResult =
  | { kind: 'ok'; policy: StsPolicy; text: string }
  | { kind: 'failed'; reason: FetchFailureReason; failure: StsFailure };

/** OpenSSL's verify errors as Node names them, and Node's own name check. */
const WEBPKI_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
]);

const FAILURE_TYPE: Record<FetchFailureReason, StsFailure['type']> = {
  'bad-domain': 'sts-policy-fetch-error',
  lookup: 'sts-policy-fetch-error',
  connect: 'sts-policy-fetch-error',
  timeout: 'sts-policy-fetch-error',
  redirect: 'sts-policy-fetch-error',
  status: 'sts-policy-fetch-error',
  'too-large': 'sts-policy-fetch-error',
  certificate: 'sts-webpki-invalid',
  'media-type': 'sts-policy-invalid',
  policy: 'sts-policy-invalid',
};

function failed(reason: FetchFailureReason, detail: string): FetchResult {
  return { kind: 'failed', reason, failure: { type: FAILURE_TYPE[reason], detail: `${reason}: ${detail}` } };
}

let defaultCas: string[] | undefined;

/**
 * The system store plus `extra`. Giving Node a `ca` replaces its default
 * store, so the default is put back first: tls.getCACertificates('default')
 * where it exists (Node 22.15+, 23.10+: the bundled store, NODE_EXTRA_CA_CERTS
 * and, with --use-system-ca, the OS store), else the bundled store and
 * NODE_EXTRA_CA_CERTS read here (Node 20).
 */
export function trustedCas(extra: FetchOptions['ca']): (string | Buffer)[] | undefined {
  if (extra === undefined) return undefined; // Node's default store, untouched
  if (!defaultCas) {
    const get = (tls as unknown as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
    if (get) defaultCas = get('default');
    else {
      defaultCas = [...tls.rootCertificates];
      const file = process.env.NODE_EXTRA_CA_CERTS;
      if (file) {
        try {
          defaultCas.push(readFileSync(file, 'utf8'));
        } catch {
          // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS.
        }
      }
    }
  }
  return [...defaultCas, ...(Array.isArray(extra) ? extra : [extra])];
}

const contexts = new Map<string, tls.SecureContext>();

/**
 * One TLS context per set of extra CAs, made once: parsing the whole store
 * for every fetch costs more than the fetch. No extra CAs: Node's default store.
 */
function contextFor(extra: FetchOptions['ca']): tls.SecureContext {
  const key = extra === undefined ? '' : (Array.isArray(extra) ? extra : [extra]).map(String).join('\n');
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({ ca: trustedCas(extra), minVersion: 'TLSv1.2' });
    if (contexts.size >= 8) contexts.clear(); // a config reload with a new ca_file; never grows without bound
    contexts.set(key, ctx);
  }
  return ctx;
}

export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

export function fetchPolicy(domain: string, opts: FetchOptions): Promise<FetchResult> {
  const d = normaliseName(domain);
  if (d === undefined) return Promise.resolve(failed('bad-domain', 'not a domain name'));
  const host = `mta-sts.${d}`;
  const port = opts.port ?? 443;
  const maxBytes = opts.maxBytes ?? MAX_POLICY_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const secureContext = contextFor(opts.ca);

  return new Promise<FetchResult>((resolve) => {
    let done = false;
    let req: ReturnType<typeof https.request> | undefined;
    const finish = (r: FetchResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req?.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(failed('timeout', `no complete answer within ${timeoutMs} ms`)), timeoutMs);

    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400) return finish(failed('redirect', `HTTP ${status}; redirects are not followed`));
      if (status !== 200) return finish(failed('status', `HTTP ${status}`));
      const type = mediaTypeOf(res.headers['content-type']);
      if (type !== 'text/plain') return finish(failed('media-type', `Content-Type "${type.slice(0, 60)}" is not text/plain`));
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) return finish(failed('too-large', `Content-Length ${declared} is over ${maxBytes} bytes`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return finish(failed('too-large', `body is over ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(classify(err)));
      res.on('close', () => {
        if (!res.complete) finish(failed('connect', 'connection closed mid-body'));
      });
      res.on('end', () => {
        if (done) return;
        const text = Buffer.concat(chunks).toString('utf8');
        const p = parsePolicy(text);
        finish(p.kind === 'ok' ? { kind: 'ok', policy: p.policy, text } : failed('policy', `${p.error}: ${p.detail}`));
      });
    };

    opts.lookup(host).then(
      (ip) => {
        if (done) return;
        if (isIP(ip) === 0) return finish(failed('lookup', `${host} gave no address`));
        const options: https.RequestOptions & { secureContext: tls.SecureContext } = {
          host: ip,
          port,
          servername: host, // SNI, and the name the certificate is checked against
          path: WELL_KNOWN_PATH,
          method: 'GET',
          headers: { host: port === 443 ? host : `${host}:${port}`, accept: 'text/plain', 'cache-control': 'no-cache' },
          agent: false,
          secureContext,
          rejectUnauthorized: true,
        };
        req = https.request(options);
        req.on('response', onResponse);
        req.on('error', (err) => finish(classify(err)));
        req.end();
      },
      (err: unknown) => finish(failed('lookup', `${host}: ${(err as { code?: string })?.code ?? String((err as Error)?.message ?? err)}`)),
    );
  });
}

function classify(err: Error & { code?: string }): FetchResult {
  const code = err.code ?? '';
  if (WEBPKI_CODES.has(code) || /CERT/.test(code)) return failed('certificate', code);
  return failed('connect', code || err.message);
}
