/*
 * The admin API's routes: the same operations the CLI calls
 * (src/operations/: quarantine, keys, subject access, Art. 30), with the
 * same audit events, only the actor is `token:admin`. This file parses the
 * request, calls the operation and writes the response.
 * Reads (list, show, sar find, gdpr report) are not audited, as in the CLI.
 *
 *   GET    /api/quarantine[?rule=ID&older_than=7d]  {entries: EntryListItem[], unreadable} (operations/entry-view.ts)
 *   GET    /api/quarantine/<id>                     = `quarantine show --json` (headers masked, never the body)
 *   POST   /api/quarantine/<id>/release [{redact}]  200 {id, released, nextHop, rcpts, size, code, reply}
 *                                                   502 {error, id, released: false, code, reply} when the next hop refuses (entry kept)
 *                                                   409 {error, id, released: false, ...} when the message cannot be rewritten (entry kept)
 *   DELETE /api/quarantine/<id>                     {id, deleted: true}
 *   POST   /api/quarantine/purge                    = `quarantine purge --json`
 *   POST   /api/keys/rotate                         = `keys rotate --json` {keyId, previous, keys, inUse}
 *   GET    /api/sar?address=A  | POST /api/sar {address}   = `sar find --json`
 *   POST   /api/sar/export {address}                the archive itself (application/gzip)
 *   POST   /api/sar/erase {address}                 = `sar erase --json` {messages, events, unreadable}
 *   GET    /api/gdpr/report                         text/markdown
 *
 * sar export: the archive is written by gdpr/export.ts to
 * <state_dir>/exports/ (0700 dir, 0600 file), streamed back and unlinked as
 * soon as the response ends, so decrypted mail does not stay under
 * state_dir; leftovers of a crash are removed at the next start
 * (cleanExports).
 */
import { lstat, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { tokenActor } from '../audit/actor';
import type { AuditLog } from '../audit/log';
import { formatEndpoint } from '../config/address';
import { parseDuration } from '../config/duration';
import type { Config } from '../config/load';
import type { Logger } from '../observability/log';
import { art30Report } from '../operations/art30';
import type { OperationContext } from '../operations/context';
import { rotateKeys } from '../operations/keys';
import { deleteEntry, listEntries, purgeEntries, releaseEntry, showEntry } from '../operations/quarantine';
import { ReleaseError } from '../operations/release';
import { eraseSubjectData, exportSubjectData, findSubjectData, subjectAddress, type SubjectAddress } from '../operations/subject-access';
import { isQuarantineError } from '../quarantine/errors';
import { ENTRY_ID_RE } from '../quarantine/meta';
import type { QuarantineStore } from '../quarantine/store';
import type { RuleSet } from '../rules/types';
import { SarError } from '../gdpr/export';
import { formatReply } from '../pipeline/reply';
import { HttpError, readJsonBody, sendJson } from './http';
import { ADMIN_TOKEN_NAME } from './token';
import { Pseudonymiser } from '../privacy/pseudonym';
import { EXPORT_NAME_RE, exportFileName, exportsDir } from '../state-layout';

export interface AdminContext {
  config: Config;
  store: QuarantineStore;
  audit: AuditLog;
  log: Logger;
  /** The live rule set (for show's header masking and the gdpr report). */
  rules: () => RuleSet;
  now: () => Date;
  /** Called after the quarantine changed (gauge refresh). */
  onQuarantineChange?: (remaining?: number) => void;
}

const ACTOR = tokenActor(ADMIN_TOKEN_NAME);
const RULE_ID_RE = /^[a-z0-9-]{1,128}$/;

/** The context the operations run in for a request: the running instance's store and log, as the admin token. */
function operations(ctx: AdminContext): OperationContext {
  return { config: ctx.config, store: ctx.store, audit: ctx.audit, actor: ACTOR, now: ctx.now };
}

/**
 * Maps the errors of the functions the CLI shares to HTTP, with the
 * catalogue's status (src/errors.ts). These three are written to be shown
 * (an id, a reply, never a value); anything else goes on to server.ts,
 * which answers without its message.
 */
function toHttp(err: unknown): never {
  if (err instanceof HttpError) throw err;
  if (isQuarantineError(err) || err instanceof SarError) throw new HttpError(err.code, err.message);
  if (err instanceof ReleaseError) throw new HttpError(err.code, err.message, err.reply ? { code: err.reply.code, reply: formatReply(err.reply) } : {});
  throw err;
}

function entryId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError('MV_QUARANTINE_BAD_ID', 'invalid quarantine id');
  }
  if (!ENTRY_ID_RE.test(id)) throw new HttpError('MV_QUARANTINE_BAD_ID', `invalid quarantine id ${JSON.stringify(id.slice(0, 80))} (expected [0-9A-Z]{1,64})`);
  return id;
}

function allow(method: string, ...allowed: string[]): void {
  if (!allowed.includes(method)) throw new HttpError(405, `method ${method} not allowed here (use ${allowed.join(', ')})`);
}

export async function route(ctx: AdminContext, req: IncomingMessage, res: ServerResponse, method: string, url: URL): Promise<void> {
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts[0] !== 'api') throw new HttpError(404, 'not found (the admin API is under /api/)');
  const [, area, a, b, ...rest] = parts;
  if (rest.length) throw new HttpError(404, 'not found');
  switch (area) {
    case 'quarantine':
      if (a === undefined) {
        allow(method, 'GET');
        return list(ctx, res, url);
      }
      if (a === 'purge' && b === undefined) {
        allow(method, 'POST');
        return purge(ctx, res);
      }
      if (b === undefined) {
        allow(method, 'GET', 'DELETE');
        return method === 'GET' ? show(ctx, res, entryId(a)) : remove(ctx, res, entryId(a));
      }
      if (b === 'release') {
        allow(method, 'POST');
        const id = entryId(a);
        return release(ctx, res, id, releaseRedact(await readJsonBody(req)));
      }
      break;
    case 'keys':
      if (a === 'rotate' && b === undefined) {
        allow(method, 'POST');
        return rotate(ctx, res);
      }
      break;
    case 'sar':
      if (b !== undefined) break;
      if (a === undefined) {
        allow(method, 'GET', 'POST');
        const address = method === 'GET' ? (url.searchParams.get('address') ?? undefined) : (await readJsonBody(req)).address;
        return sarFind(ctx, res, address);
      }
      if (a === 'export' || a === 'erase') {
        allow(method, 'POST');
        const { address } = await readJsonBody(req);
        return a === 'export' ? sarExport(ctx, res, address) : sarErase(ctx, res, address);
      }
      break;
    case 'gdpr':
      if (a === 'report' && b === undefined) {
        allow(method, 'GET');
        return report(ctx, res);
      }
      break;
  }
  throw new HttpError(404, 'not found');
}

async function list(ctx: AdminContext, res: ServerResponse, url: URL): Promise<void> {
  const rule = url.searchParams.get('rule') ?? undefined;
  const olderThan = url.searchParams.get('older_than') ?? undefined;
  if (rule !== undefined && !RULE_ID_RE.test(rule)) throw new HttpError(400, 'rule: must be a rule id ([a-z0-9-]+)');
  let olderThanMs: number | undefined;
  if (olderThan !== undefined) {
    olderThanMs = parseDuration(olderThan);
    if (olderThanMs === undefined) throw new HttpError(400, `older_than: must be a duration, e.g. 30m, 12h, 7d (got ${JSON.stringify(olderThan.slice(0, 40))})`);
  }
  sendJson(res, 200, await listEntries(operations(ctx), { rule, olderThanMs }).catch(toHttp));
}

async function show(ctx: AdminContext, res: ServerResponse, id: string): Promise<void> {
  sendJson(res, 200, await showEntry(operations(ctx), id, () => ctx.rules().rules).catch(toHttp));
}

/**
 * The release request body: none, `{}`, or `{"redact": true|false}`. An
 * unknown field is refused rather than ignored: a misspelt `redact` must not
 * release a message unredacted.
 */
function releaseRedact(body: Record<string, unknown>): boolean {
  for (const k of Object.keys(body)) if (k !== 'redact') throw new HttpError(400, `unknown field ${JSON.stringify(k.slice(0, 40))} (a release takes only "redact")`);
  if (body.redact !== undefined && typeof body.redact !== 'boolean') throw new HttpError(400, 'redact: must be true or false');
  return body.redact === true;
}

async function release(ctx: AdminContext, res: ServerResponse, id: string, redact: boolean): Promise<void> {
  const nextHop = formatEndpoint(ctx.config.next_hop);
  let r;
  try {
    // The live set, as for a message arriving now.
    r = await releaseEntry(operations(ctx), id, { rules: ctx.rules(), redact });
  } catch (err) {
    if (err instanceof ReleaseError && (err.kind === 'refused' || err.kind === 'next_hop')) {
      throw new HttpError(err.code, err.message, { id, released: false, nextHop, code: err.reply?.code ?? null, reply: err.reply ? formatReply(err.reply) : null });
    }
    if (err instanceof ReleaseError && err.kind === 'rewrite') {
      throw new HttpError(err.code, err.message, { id, released: false, nextHop, code: null, reply: null });
    }
    toHttp(err);
  }
  ctx.onQuarantineChange?.();
  sendJson(res, 200, { id: r.id, released: true, nextHop: r.nextHop, rcpts: r.rcpts, size: r.size, code: r.reply.code, reply: formatReply(r.reply) });
}

async function remove(ctx: AdminContext, res: ServerResponse, id: string): Promise<void> {
  const r = await deleteEntry(operations(ctx), id).catch(toHttp);
  ctx.onQuarantineChange?.();
  sendJson(res, 200, r);
}

async function purge(ctx: AdminContext, res: ServerResponse): Promise<void> {
  const r = await purgeEntries(operations(ctx)).catch(toHttp);
  ctx.onQuarantineChange?.(r.quarantineRemaining);
  sendJson(res, 200, r);
}

async function rotate(ctx: AdminContext, res: ServerResponse): Promise<void> {
  sendJson(res, 200, await rotateKeys(operations(ctx)));
}

/** The request's address, normalised (it is never logged or echoed). */
function addressParam(address: unknown): SubjectAddress {
  if (typeof address !== 'string' || address === '') throw new HttpError(400, 'address: required (one e-mail address, as a string)');
  const normalised = subjectAddress(address);
  if (normalised === undefined) throw new HttpError(400, 'address: not one valid e-mail address (expected local@domain)');
  return normalised;
}

async function sarFind(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  const a = addressParam(address);
  sendJson(res, 200, await findSubjectData(operations(ctx), a).catch(toHttp));
}

async function sarErase(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  const a = addressParam(address);
  const r = await eraseSubjectData(operations(ctx), a).catch(toHttp);
  if (r.messages) ctx.onQuarantineChange?.();
  sendJson(res, 200, r);
}

async function sarExport(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  const a = addressParam(address);
  const dir = exportsDir(ctx.config.state_dir);
  const file = join(dir, exportFileName(randomBytes(8).toString('hex')));
  try {
    const outcome = await exportSubjectData(operations(ctx), a, {
      out: async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        return file;
      },
      force: false,
    }).catch(toHttp);
    if (outcome.kind === 'unreadable') {
      const { unreadable } = outcome;
      throw new HttpError(
        'MV_SAR',
        `${unreadable.length} quarantine ${unreadable.length === 1 ? 'entry' : 'entries'} cannot be read (${unreadable.join(', ')}), so the export could be incomplete; repair or delete them and export again; no archive was made`,
        { unreadable },
      );
    }
    // As the CLI: the request was recorded even though there is nothing to hand over.
    if (outcome.kind === 'empty') throw new HttpError('MV_SAR_NOTHING_FOUND', 'nothing found for that address; no archive made', { messages: 0, events: 0 });
    const { result: r, madeAt } = outcome;
    const name = `sar-export-${madeAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.tar.gz`;
    res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-length': r.bytes,
      'content-disposition': `attachment; filename="${name}"`,
      'cache-control': 'no-store',
      'x-mailveil-messages': String(r.messages),
      'x-mailveil-events': String(r.events),
    });
    // Unlinked before it is sent: the decrypted archive leaves state_dir as soon as it is open.
    const fh = await open(file, 'r');
    await unlink(file);
    await pipeline(fh.createReadStream(), res);
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

/**
 * Removes archives a crash left in <state_dir>/exports (they hold decrypted
 * mail). Only regular files with those names: nothing else there is ours,
 * and an exports path that is not a real directory is not looked into.
 */
export async function cleanExports(stateDir: string): Promise<number> {
  const dir = exportsDir(stateDir);
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return 0;
  let n = 0;
  for (const name of await readdir(dir)) {
    if (!EXPORT_NAME_RE.test(name)) continue;
    const file = join(dir, name);
    const f = await lstat(file).catch(() => undefined);
    if (!f?.isFile()) continue;
    await unlink(file).then(
      () => n++,
      () => undefined,
    );
  }
  return n;
}

async function report(ctx: AdminContext, res: ServerResponse): Promise<void> {
  const text = art30Report(ctx, ctx.rules());
  res.writeHead(200, { 'content-type': 'text/markdown; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text);
}
