/*
 * The admin API's routes: the same functions the CLI calls (quarantine
 * store, release/release.ts, quarantine/retention.ts, quarantine/keys.ts,
 * sar/*), with the same audit events, only the actor is `token:admin`.
 * Reads (list, show, sar find, gdpr report) are not audited, as in the CLI.
 *
 *   GET    /api/quarantine[?rule=ID&older_than=7d]  {entries: QuarantineSummary[]}
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
 * sar export: the archive is written by sar/export.ts to
 * <state_dir>/exports/ (0700 dir, 0600 file), streamed back and unlinked as
 * soon as the response ends, so decrypted mail does not stay under
 * state_dir; leftovers of a crash are removed at the next start
 * (cleanExports).
 */
import { lstat, mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
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
import { isQuarantineError } from '../quarantine/errors';
import { entryView } from '../quarantine/header-view';
import { currentKeyId, listKeyIds, rotateKey } from '../quarantine/keys';
import { ENTRY_ID_RE } from '../quarantine/meta';
import { purgeExpired } from '../quarantine/retention';
import type { QuarantineStore } from '../quarantine/store';
import { releaseEntry, ReleaseError } from '../release/release';
import type { RuleSet } from '../rules/types';
import { parseAddressArgument } from '../sar/address';
import { eraseSubject } from '../sar/erase';
import { exportSubject, SarError } from '../sar/export';
import { findSubject, isEmpty, loadSubjectKeyer, type SubjectData } from '../sar/find';
import { gdprReport } from '../sar/report';
import { SUBJECT_KIND } from '../sar/subjects';
import { formatReply } from '../smtp/reply';
import { HttpError, readJsonBody, sendJson } from './http';
import { ADMIN_TOKEN_NAME } from './token';
import { nextHopOptions } from '../smtp/next-hop';
import { deleteEntry } from '../quarantine/delete';
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

let cachedVersion: string | undefined;
async function version(): Promise<string> {
  cachedVersion ??= JSON.parse(await readFile(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version as string;
  return cachedVersion!;
}

/** Maps the errors of the functions the CLI shares to HTTP. */
function toHttp(err: unknown): never {
  if (err instanceof HttpError) throw err;
  if (isQuarantineError(err)) {
    const status = err.code === 'MV_QUARANTINE_BAD_ID' ? 400 : err.code === 'MV_QUARANTINE_NOT_FOUND' ? 404 : 500;
    throw new HttpError(status, err.message);
  }
  if (err instanceof ReleaseError) {
    const status = err.kind === 'refused' || err.kind === 'next_hop' ? 502 : err.kind === 'busy' || err.kind === 'no_envelope' ? 409 : 500;
    throw new HttpError(status, err.message, err.reply ? { code: err.reply.code, reply: formatReply(err.reply) } : {});
  }
  if (err instanceof SarError) throw new HttpError(409, err.message);
  throw err;
}

function entryId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'invalid quarantine id');
  }
  if (!ENTRY_ID_RE.test(id)) throw new HttpError(400, `invalid quarantine id ${JSON.stringify(id.slice(0, 80))} (expected [0-9A-Z]{1,64})`);
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
  let cutoff: number | undefined;
  if (olderThan !== undefined) {
    const ms = parseDuration(olderThan);
    if (ms === undefined) throw new HttpError(400, `older_than: must be a duration, e.g. 30m, 12h, 7d (got ${JSON.stringify(olderThan.slice(0, 40))})`);
    cutoff = Date.now() - ms;
  }
  let entries = await ctx.store.list().catch(toHttp);
  if (rule !== undefined) entries = entries.filter((e) => e.error === undefined && e.rules.includes(rule));
  if (cutoff !== undefined) entries = entries.filter((e) => Date.parse(e.receivedAt) < cutoff!);
  sendJson(res, 200, { entries, unreadable: entries.filter((e) => e.error !== undefined).length });
}

async function show(ctx: AdminContext, res: ServerResponse, id: string): Promise<void> {
  const { store, config } = ctx;
  try {
    sendJson(res, 200, await entryView(store, id, config.limits.max_header_size, () => ctx.rules().rules));
  } catch (err) {
    toHttp(err);
  }
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
  const { config, store, audit } = ctx;
  const nextHop = formatEndpoint(config.next_hop);
  let r;
  try {
    r = await releaseEntry(
      {
        store,
        audit,
        actor: ACTOR,
        nextHop: nextHopOptions(config),
        config,
        // The live set, as for a message arriving now; the key serve pseudonymises with.
        rules: ctx.rules(),
        pseudonyms: Pseudonymiser.fromStateDir(config.state_dir),
        redact,
      },
      id,
    );
  } catch (err) {
    if (err instanceof ReleaseError && (err.kind === 'refused' || err.kind === 'next_hop')) {
      throw new HttpError(502, err.message, { id, released: false, nextHop, code: err.reply?.code ?? null, reply: err.reply ? formatReply(err.reply) : null });
    }
    if (err instanceof ReleaseError && err.kind === 'rewrite') {
      throw new HttpError(409, err.message, { id, released: false, nextHop, code: null, reply: null });
    }
    toHttp(err);
  }
  ctx.onQuarantineChange?.();
  sendJson(res, 200, { id: r.id, released: true, nextHop, rcpts: r.rcpts, size: r.size, code: r.reply.code, reply: formatReply(r.reply) });
}

async function remove(ctx: AdminContext, res: ServerResponse, id: string): Promise<void> {
  const { store, audit } = ctx;
  try {
    await deleteEntry(store, audit, ACTOR, id);
  } catch (err) {
    toHttp(err);
  }
  ctx.onQuarantineChange?.();
  sendJson(res, 200, { id, deleted: true });
}

async function purge(ctx: AdminContext, res: ServerResponse): Promise<void> {
  const { config, store, audit } = ctx;
  const r = await purgeExpired({ store, audit, quarantineRetention: config.quarantine.retention, auditRetention: config.audit.retention, actor: ACTOR, now: ctx.now }).catch(toHttp);
  ctx.onQuarantineChange?.(r.remaining);
  sendJson(res, 200, {
    quarantineDeleted: r.quarantine.deleted,
    unreadableDeleted: r.quarantine.unreadable,
    ids: r.quarantine.ids,
    quarantineRemaining: r.remaining,
    auditFilesDeleted: r.audit.files,
    auditEventsDeleted: r.audit.events,
    keysRemoved: r.keys.removed,
  });
}

async function rotate(ctx: AdminContext, res: ServerResponse): Promise<void> {
  const dir = ctx.config.state_dir;
  let previous: string | undefined;
  try {
    previous = await currentKeyId(dir);
  } catch (err) {
    if (!isQuarantineError(err, 'MV_QUARANTINE_KEY_INVALID')) toHttp(err);
  }
  const id = await rotateKey(dir);
  const inUse = await ctx.store.keyIdsInUse();
  const keys = await listKeyIds(dir);
  await ctx.audit.append({
    event: 'key_rotate',
    actor: ACTOR,
    details: { new_key: id, previous_key: previous ?? null, keys: keys.length, keys_in_use: [...inUse].filter((x) => keys.includes(x)).length },
  });
  sendJson(res, 200, { keyId: id, previous: previous ?? null, keys, inUse: [...inUse].sort() });
}

/** Validates the address and finds the subject's data (the address is never logged or echoed). */
async function subjectData(ctx: AdminContext, address: unknown): Promise<SubjectData> {
  if (typeof address !== 'string' || address === '') throw new HttpError(400, 'address: required (one e-mail address, as a string)');
  const normalised = parseAddressArgument(address);
  if (normalised === undefined) throw new HttpError(400, 'address: not one valid e-mail address (expected local@domain)');
  const keyer = loadSubjectKeyer(ctx.config.state_dir);
  if (!keyer) return { subject: '', messages: [], events: [], unreadable: [] };
  return findSubject(ctx.store, ctx.audit, keyer.token(SUBJECT_KIND, normalised)).catch(toHttp);
}

async function sarFind(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  sendJson(res, 200, await subjectData(ctx, address));
}

async function sarErase(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  const data = await subjectData(ctx, address);
  const r = await eraseSubject({ store: ctx.store, audit: ctx.audit, data, actor: ACTOR }).catch(toHttp);
  if (r.messages) ctx.onQuarantineChange?.();
  sendJson(res, 200, r);
}

async function sarExport(ctx: AdminContext, res: ServerResponse, address: unknown): Promise<void> {
  const { config, store, audit } = ctx;
  const data = await subjectData(ctx, address);
  if (data.unreadable.length) {
    throw new HttpError(
      409,
      `${data.unreadable.length} quarantine ${data.unreadable.length === 1 ? 'entry' : 'entries'} cannot be read (${data.unreadable.join(', ')}), so the export could be incomplete; repair or delete them and export again; no archive was made`,
      { unreadable: data.unreadable },
    );
  }
  if (isEmpty(data)) {
    // As the CLI: the request is recorded even when there is nothing to hand over.
    await audit.append({ event: 'export', actor: ACTOR, details: { messages: 0, events: 0, archive: false } });
    throw new HttpError(404, 'nothing found for that address; no archive made', { messages: 0, events: 0 });
  }
  const dir = exportsDir(config.state_dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const now = ctx.now();
  const file = join(dir, exportFileName(randomBytes(8).toString('hex')));
  try {
    const r = await exportSubject({
      store,
      audit,
      data,
      out: file,
      force: false,
      actor: ACTOR,
      now,
      version: await version(),
      retentionMs: config.quarantine.retention,
    }).catch(toHttp);
    const name = `sar-export-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.tar.gz`;
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
  const text = gdprReport({ config: ctx.config, rules: ctx.rules(), version: await version(), generatedAt: ctx.now() });
  res.writeHead(200, { 'content-type': 'text/markdown; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' }).end(text);
}
