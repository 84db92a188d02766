/*
 * The admin HTTP API (issue 4, point 6): the CLI's quarantine, keys, sar and
 * gdpr operations as JSON under /api/, on its own listener (`admin`,
 * default 127.0.0.1:9465). node:http, or node:https when `admin_tls` is set.
 *
 *  - Auth: `Authorization: Bearer <token>`, the token from
 *    <state_dir>/admin.token (admin/token.ts), checked in constant time
 *    before anything else (before the body is read). A missing or wrong
 *    token gets 401 {error} and an `auth_failed` audit event (actor
 *    `token:unknown`, details: method and path, never the token or the
 *    query); at most AUTH_FAIL_EVENTS_PER_MIN such events a minute, the
 *    rest are counted into the next one (`suppressed`).
 *  - Bind: a non-loopback `admin` without `admin_tls` is refused at start
 *    (checkAdminBind, an MV_ADMIN_BIND error: one line, exit 1).
 *  - Limits: request bodies up to MAX_BODY_BYTES (413 beyond), the request
 *    must arrive within REQUEST_TIMEOUT_MS; one JSON object per body.
 *  - Errors are {error: "..."} with 400 (bad input), 401, 404 (unknown
 *    route or id), 405, 409 (conflict: busy, unreadable entries), 413, 502
 *    (next hop refused a release) and 500; never a stack, never a value.
 * The routes themselves are in admin/routes.ts.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tokenActor } from '../audit/actor';
import { formatEndpoint, type Endpoint } from '../config/address';
import type { Config } from '../config/load';
import { ADMIN_TOKEN_NAME, bearerMatches, ensureAdminToken } from './token';
import { HttpError, sendJson } from './http';
import { route, type AdminContext } from './routes';
import { codeOf, httpStatusOf, type MvCode } from '../errors';

export const REQUEST_TIMEOUT_MS = 30_000;
export const HEADERS_TIMEOUT_MS = 10_000;
export const AUTH_FAIL_EVENTS_PER_MIN = 20;
export const ADMIN_ACTOR = tokenActor(ADMIN_TOKEN_NAME);
export const UNKNOWN_ACTOR = tokenActor('unknown');

export class AdminConfigError extends Error {
  readonly code: MvCode = 'MV_ADMIN_BIND';
}

/** True for 127.0.0.0/8, ::1 (and ::ffff:127.x) and the name localhost. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const h = host.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return /^(0{0,4}:){1,7}0{0,3}1$|^::1$/.test(h);
  return false;
}

/** Throws an MV_ADMIN_BIND error when the admin API would listen beyond loopback without TLS. */
export function checkAdminBind(config: Pick<Config, 'admin' | 'admin_tls'>): void {
  if (!isLoopbackHost(config.admin.host) && !config.admin_tls) {
    throw new AdminConfigError(
      `admin: refusing to serve the admin API on ${formatEndpoint(config.admin)} without TLS; use a loopback address (127.0.0.1:9465) or set admin_tls: { cert, key }`,
    );
  }
}

/** A path safe to put in an audit event: no query, printable, no address-like text, bounded. */
function auditPath(path: string): string {
  const p = path.slice(0, 200);
  return /^[A-Za-z0-9/._~-]*$/.test(p) ? p : '[unprintable]';
}

export interface AdminServer {
  server: Server;
  tokenFile: string;
  tokenCreated: boolean;
  tokenTightened: boolean;
  close(): Promise<void>;
}

export async function startAdminServer(ctx: AdminContext): Promise<AdminServer> {
  const { config, audit, log } = ctx;
  checkAdminBind(config);
  const token = await ensureAdminToken(config.state_dir);

  // auth_failed events: at most AUTH_FAIL_EVENTS_PER_MIN a minute.
  let windowStart = 0;
  let windowCount = 0;
  let suppressed = 0;
  // Resolves once the event is written, so the 401 goes out after its record.
  const authFailed = async (method: string, path: string): Promise<void> => {
    const now = Date.now();
    if (now - windowStart >= 60_000) {
      windowStart = now;
      windowCount = 0;
    }
    if (++windowCount > AUTH_FAIL_EVENTS_PER_MIN) {
      suppressed++;
      return;
    }
    const details: Record<string, unknown> = { method, path: auditPath(path) };
    if (suppressed) details.suppressed = suppressed;
    suppressed = 0;
    await audit.append({ event: 'auth_failed', actor: UNKNOWN_ACTOR, details }).catch((err: Error) => log.error({ event: 'admin_audit', err: { message: err.message } }, 'cannot audit a failed admin login'));
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      sendJson(res, httpStatusOf({ code: 'MV_API_BAD_REQUEST' }), { error: 'bad request target' });
      return;
    }
    if (!bearerMatches(req.headers.authorization, token.digest)) {
      const error = req.headers.authorization ? 'invalid bearer token' : 'missing bearer token (Authorization: Bearer <token from state_dir/admin.token>)';
      req.resume();
      void authFailed(method, url.pathname).then(() => {
        res.setHeader('www-authenticate', 'Bearer realm="mailveil-admin"');
        sendJson(res, httpStatusOf({ code: 'MV_API_UNAUTHORIZED' }), { error });
      });
      return;
    }
    route(ctx, req, res, method, url).catch((err: unknown) => {
      // An unread body (e.g. 413): close the connection after the reply instead of reading it.
      const unread = !req.complete;
      if (unread) res.shouldKeepAlive = false;
      if (err instanceof HttpError) {
        sendJson(res, err.status, { error: err.message, ...err.extra });
      } else {
        const e = err as Error & { code?: string };
        log.error({ event: 'admin_error', method, path: auditPath(url.pathname), err: { message: e.message, code: e.code } }, 'admin request failed');
        // A catalogue code below 500 is the caller's to fix, and its message says how; anything else stays 'internal error'.
        const status = httpStatusOf(err);
        sendJson(res, status, { error: status < 500 ? e.message : codeOf(err) === 'MV_AUDIT' ? `audit log: ${e.message}` : 'internal error' });
      }
      if (unread) req.resume();
    });
  };

  const server: Server = config.admin_tls
    ? (createHttpsServer({ cert: readFileSync(config.admin_tls.cert), key: readFileSync(config.admin_tls.key) }, handler) as unknown as Server)
    : createHttpServer(handler);
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.admin.port, config.admin.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ event: 'admin_error', err: { message: err.message } }, 'admin server error'));
  let closing: Promise<void> | undefined;
  return {
    server,
    tokenFile: token.file,
    tokenCreated: token.created,
    tokenTightened: token.tightened,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/** For log lines: where the API listens and how. */
export function describeAdmin(at: Endpoint, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${formatEndpoint(at)}/api/`;
}
