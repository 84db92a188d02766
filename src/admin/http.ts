/* Small JSON-over-HTTP helpers for the admin API. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusOf, isMvCode, type MvCode } from '../errors';

export const MAX_BODY_BYTES = 64 * 1024;

/**
 * The error a route answers with: `{error: message, ...extra}`. Given a
 * catalogue code, its status is the catalogue's; a bare number is for the
 * routes' own checks (a bad filter, an unknown route).
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code?: MvCode;
  constructor(
    status: number | MvCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    if (isMvCode(status)) this.code = status;
    this.status = typeof status === 'number' ? status : httpStatusOf(this);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text);
}

/** Reads the body up to MAX_BODY_BYTES; parses it as one JSON object (empty body: {}). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) throw new HttpError('MV_API_BODY_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > MAX_BODY_BYTES) throw new HttpError('MV_API_BODY_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpError('MV_API_BAD_REQUEST', 'request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError('MV_API_BAD_REQUEST', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

