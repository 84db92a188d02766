/*
 * The report to an `https:` rua (RFC 8460 section 5.4): one POST of the
 * gzipped JSON with `Content-Type: application/tlsrpt+gzip`.
 *
 *  - The host name is looked up through the injected `lookup` (the
 *    configured resolver, dns.servers), and the connection goes to that
 *    address with SNI and the certificate checked for the URL's host,
 *    against the system CAs plus tls.ca_file (mta-sts/fetch.ts trustedCas),
 *    TLS 1.2 at least.
 *  - A 2xx is delivered. No redirect is followed: a 3xx is a failure, as
 *    for an MTA-STS policy fetch. A 4xx other than 408 and 429 says the
 *    endpoint will not take this report: given up. Anything else (5xx,
 *    408, 429, a lookup, connect, TLS or timeout failure) is retried on a
 *    later run.
 *  - One deadline for the whole exchange; the response body is read and
 *    dropped, at most MAX_RESPONSE_BYTES of it.
 */
import https from 'node:https';
import tls from 'node:tls';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { trustedCas } from '../mta-sts/fetch';
import { REPORT_MEDIA_TYPE } from './report-mail';

export const DEFAULT_POST_TIMEOUT_MS = 30_000;
export const MAX_RESPONSE_BYTES = 64 * 1024;

/** Host name to one address (IPv4 or IPv6), through the configured resolver. */
export type AddressLookup = (host: string) => Promise<string>;

export interface PostOptions {
  lookup: AddressLookup;
  /** Extra trusted CAs (PEM), added to the system store: tls.ca_file. */
  ca?: string | Buffer;
  timeoutMs?: number;
  /** Sent as User-Agent. */
  userAgent?: string;
}

export type PostResult =
  | { kind: 'sent'; status: number }
  /** `permanent`: the endpoint refused this report for good (a 4xx); else retried later. */
  | { kind: 'failed'; permanent: boolean; status?: number; detail: string };

export function postReport(url: URL, gz: Buffer, opts: PostOptions): Promise<PostResult> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_POST_TIMEOUT_MS;
  return new Promise<PostResult>((resolve) => {
    let done = false;
    let req: ReturnType<typeof https.request> | undefined;
    const finish = (r: PostResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req?.destroy();
      resolve(r);
    };
    const retry = (detail: string, status?: number) => finish({ kind: 'failed', permanent: false, status, detail });
    const timer = setTimeout(() => retry(`no answer within ${timeoutMs} ms`), timeoutMs);

    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) res.destroy();
      });
      res.on('error', () => undefined);
      // The status is the answer; the body only has to be drained.
      if (status >= 200 && status < 300) return finish({ kind: 'sent', status });
      if (status >= 300 && status < 400) return retry(`HTTP ${status}; redirects are not followed`, status);
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) return finish({ kind: 'failed', permanent: true, status, detail: `HTTP ${status}` });
      return retry(`HTTP ${status}`, status);
    };

    const resolveHost = isIP(host) ? Promise.resolve(host) : opts.lookup(host);
    resolveHost.then(
      (ip) => {
        if (done) return;
        if (isIP(ip) === 0) return retry(`${host} gave no address`);
        const port = url.port ? Number(url.port) : 443;
        const options: https.RequestOptions = {
          host: ip,
          port,
          ...(isIP(host) ? {} : { servername: host }),
          path: `${url.pathname}${url.search}`,
          method: 'POST',
          headers: {
            host: url.host,
            'content-type': REPORT_MEDIA_TYPE,
            'content-length': String(gz.length),
            ...(opts.userAgent ? { 'user-agent': opts.userAgent } : {}),
          },
          agent: false,
          ca: trustedCas(opts.ca),
          minVersion: 'TLSv1.2',
          rejectUnauthorized: true,
          // Checked against the URL's host, not the address connected to.
          checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
        };
        req = https.request(options);
        req.on('response', onResponse);
        req.on('error', (err: Error & { code?: string }) => retry(err.code ?? err.message));
        req.end(gz);
      },
      (err: unknown) => retry(`${host}: ${(err as { code?: string })?.code ?? String((err as Error)?.message ?? err)}`),
    );
  });
}
