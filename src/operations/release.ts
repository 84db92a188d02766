/*
 * Releasing a held message (`mailveil quarantine release ID`, POST
 * /api/quarantine/<id>/release, through operations/quarantine.ts
 * releaseEntry): delivers the held original to the next hop with its
 * original envelope, then removes the entry.
 *
 * Order (guarantees 1, 2 and 4 applied to a release):
 *  1. a per-entry lock file (quarantine/.release-<id>.lock, O_EXCL, holding
 *     our pid) so two releases of one entry cannot both deliver it; a lock
 *     left by a dead process is taken over;
 *  2. the envelope stored, encrypted, in the entry's metadata at hold time:
 *     XFORWARD (if the next hop offers it), MAIL FROM with its parameters,
 *     every RCPT TO with its own. If the next hop refuses MAIL or any
 *     recipient, nothing is sent (RSET) and the entry stays: a release never
 *     drops a recipient silently;
 *  3. before any connection, the released message is produced once to
 *     nowhere (release-rewrite.ts): the pass-2 rewriters every delivered
 *     message gets (redaction with `redact`, header anonymisation, the
 *     verdict header `released; rules=<ids>`, SMTP encoding). A redaction
 *     that cannot be applied, a header section too large to anonymise or a
 *     corrupt entry stops the release here: nothing is sent;
 *  4. DATA: the decrypted original through those rewriters again. A message
 *     that fails authentication while streaming makes the stream fail, and
 *     the final dot is never sent;
 *  5. the entry is deleted only after the next hop answered 250 to the final
 *     dot; any other answer, a timeout or a lost connection keeps it. Until
 *     then it is never written: it stays byte-identical;
 *  6. one `release` audit event either way (result ok or failed), naming the
 *     actor and whether redaction was asked for; it carries reply codes,
 *     never reply texts (they may quote addresses).
 *
 * A message that needed verified TLS when it was held (issue 10; the entry's
 * `requireTls`, recorded by step hold: a fired `require_tls: verified` rule,
 * REQUIRETLS, `Require-TLS-ESMTP: yes`) is released only over a verified
 * path, as step `escalate` would have sent it (a release has no mirrored
 * connection, so it chooses before connecting):
 *  - the next hop, when tls.next_hop is at verify or secure (the connection
 *    fails unless its certificate verified);
 *  - else tls.secure_next_hop at level secure (smtp/escalation.ts
 *    secureNextHopOptions);
 *  - else, or when that hop's certificate does not verify, or when the
 *    message came with REQUIRETLS on MAIL FROM and the hop does not
 *    advertise REQUIRETLS (RFC 8689 4.2.1): MV_RELEASE_TLS_REQUIRED, nothing
 *    sent, the entry kept.
 * REQUIRETLS goes on MAIL FROM wherever the chosen hop advertises it. An
 * entry written before the requirement was recorded counts as requiring it
 * when one of its rules has `require_tls: verified` in the live rule set;
 * with --redact, a fired one, or the header field, found on the new scan.
 *
 * Limits: at most one release per entry at a time, per state dir on one host
 * (the lock's pid check is local).
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { SMTPServerAddress } from 'smtp-server';
import type { AuditLog } from '../audit/log';
import type { MessageContext } from '../pipeline/context';
import { isQuarantineError } from '../quarantine/errors';
import type { QuarantineMeta } from '../quarantine/meta';
import { checkEntryId } from '../quarantine/meta';
import type { QuarantineStore } from '../quarantine/store';
import { releaseLockName } from '../state-layout';
import { EnvelopeError, mailFromCommand, rcptToCommand, xforwardCommands } from '../smtp/envelope';
import { NextHopConnection, NextHopError, type NextHopOptions } from '../smtp/next-hop';
import { mustVerify } from '../smtp/next-hop-tls';
import { formatEndpoint } from '../config/address';
import { tlsRequirement } from '../pipeline/tls-requirement';
import { formatReply, replyClass, replyStatus, type Reply } from '../pipeline/reply';
import { releaseContext, releasedStream, ReleaseRewriteError, rewriteFailure, trialRun, type ReleaseRewriteOptions } from './release-rewrite';
import type { MvCode } from '../errors';

/**
 * `rewrite`: the released message could not be produced (redaction, header anonymisation); nothing was sent.
 * `tls_required`: the message needs verified TLS and no verified path exists; nothing was sent.
 */
export type ReleaseFailure = 'no_envelope' | 'busy' | 'next_hop' | 'refused' | 'corrupt' | 'cleanup' | 'rewrite' | 'tls_required';

/** Each failure has its own code, so the CLI and the admin API map it without looking at `kind`. */
const RELEASE_CODES: Record<ReleaseFailure, MvCode> = {
  no_envelope: 'MV_RELEASE_NO_ENVELOPE',
  busy: 'MV_RELEASE_BUSY',
  next_hop: 'MV_RELEASE_NEXT_HOP',
  refused: 'MV_RELEASE_REFUSED',
  corrupt: 'MV_RELEASE_CORRUPT',
  cleanup: 'MV_RELEASE_CLEANUP',
  // The same condition as the ReleaseRewriteError it wraps.
  rewrite: 'MV_RELEASE_REWRITE',
  tls_required: 'MV_RELEASE_TLS_REQUIRED',
};

export class ReleaseError extends Error {
  readonly code: MvCode;
  /** The message needed verified TLS (the audit event says so). */
  tlsRequired = false;
  constructor(
    readonly kind: ReleaseFailure,
    message: string,
    readonly reply?: Reply,
  ) {
    super(message);
    this.code = RELEASE_CODES[kind];
  }
}

export interface ReleaseOptions extends ReleaseRewriteOptions {
  store: QuarantineStore;
  audit: AuditLog;
  /** 'os:<user>' or 'token:<name>'. */
  actor: string;
  nextHop: NextHopOptions;
  /** tls.secure_next_hop's settings (level secure), for a message that needs verified TLS; undefined = not configured. */
  secureNextHop?: NextHopOptions;
}

export interface ReleaseResult {
  id: string;
  /** host:port it went to: the next hop, or tls.secure_next_hop. */
  nextHop: string;
  /** Set when the message needed verified TLS: the path it took. */
  tlsPath?: 'next_hop' | 'secure_next_hop';
  /** The next hop's reply to the final dot (250). */
  reply: Reply;
  rcpts: number;
  size: number;
}

function lockPath(store: QuarantineStore, id: string): string {
  return join(store.dir, releaseLockName(id));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function lock(store: QuarantineStore, id: string): Promise<() => Promise<void>> {
  const file = lockPath(store, id);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => unlink(file).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
      throw new ReleaseError('busy', `quarantine entry ${id} is being released by process ${pid}`);
    }
    await unlink(file).catch(() => undefined); // left by a process that died
  }
  throw new ReleaseError('busy', `quarantine entry ${id} is being released by another process`);
}

/** Delivers entry `id` to the next hop and removes it; throws ReleaseError (entry kept) or a QuarantineError (NOT_FOUND, BAD_ID, CORRUPT...). */
export async function releaseHeld(o: ReleaseOptions, id: string): Promise<ReleaseResult> {
  checkEntryId(id);
  const meta = await o.store.readMeta(id); // NOT_FOUND before any lock or connection
  const unlock = await lock(o.store, id);
  try {
    const sent = await deliver(o, id, meta).catch(async (err: unknown) => {
      const e = err as Error & { reply?: Reply };
      await o.audit.append({
        event: 'release',
        actor: o.actor,
        id,
        subjects: meta.subjects,
        details: {
          result: 'failed',
          error: err instanceof ReleaseError ? err.kind : isQuarantineError(err) ? err.code : 'error',
          ...(e.reply ? { reply: replyStatus(e.reply), reply_class: replyClass(e.reply.code) } : {}),
          rules: meta.rules,
          redact: o.redact,
          ...(err instanceof ReleaseError && err.tlsRequired ? { tls: 'verified-required' } : {}),
        },
      });
      throw err;
    });
    const { reply } = sent;
    let cleanup: Error | undefined;
    try {
      await o.store.delete(id);
    } catch (err) {
      if (!isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) cleanup = err as Error;
    }
    await o.audit.append({
      event: 'release',
      actor: o.actor,
      id,
      subjects: meta.subjects,
      details: {
        result: 'ok', reply: replyStatus(reply), reply_class: replyClass(reply.code), rcpts: meta.envelope!.rcpts.length, size: meta.size, rules: meta.rules, redact: o.redact, entry_deleted: !cleanup,
        ...(sent.tlsPath ? { tls: 'verified-required', tls_path: sent.tlsPath } : {}),
      },
    });
    if (cleanup) {
      throw new ReleaseError('cleanup', `released ${id} (next hop: ${formatReply(reply)}), but removing the entry failed: ${cleanup.message}; run \`mailveil quarantine delete ${id}\``, reply);
    }
    return { id, nextHop: sent.where, ...(sent.tlsPath ? { tlsPath: sent.tlsPath } : {}), reply, rcpts: meta.envelope!.rcpts.length, size: meta.size };
  } finally {
    await unlock();
  }
}

/** What the release needs of the path: nothing, or verified TLS (with REQUIRETLS advertised, when `esmtp`). */
type TlsNeed = { esmtp: boolean } | undefined;

/**
 * Whether entry `meta` must leave over verified TLS: as recorded at hold
 * time; for an entry written before that was recorded, one of its rules has
 * `require_tls: verified` in the live set; with --redact, the new scan
 * (pass 1 ran again on `ctx`) may find one too.
 */
function tlsNeed(o: ReleaseOptions, meta: QuarantineMeta, ctx: MessageContext): TlsNeed {
  if (meta.requireTls) return { esmtp: meta.requireTls.esmtp };
  const held = new Set(meta.rules);
  if (o.rules.rules.some((r) => r.require_tls === 'verified' && r.action !== 'monitor' && held.has(r.id))) return { esmtp: false };
  if (o.redact && tlsRequirement(ctx)) return { esmtp: false };
  return undefined;
}

const endpoint = (h: NextHopOptions) => formatEndpoint(h);

function tlsRequired(id: string, why: string): ReleaseError {
  const e = new ReleaseError('tls_required', `cannot release ${id}: it may leave only over verified TLS (require_tls: verified or REQUIRETLS) and ${why}; nothing was sent, entry ${id} kept`);
  e.tlsRequired = true;
  return e;
}

/**
 * The connection the release goes over. Without a TLS need: the next hop at
 * its level. With one: the next hop if its level verifies, else
 * tls.secure_next_hop; a hop that cannot give what is needed is no path.
 */
async function openPath(o: ReleaseOptions, id: string, need: TlsNeed): Promise<{ conn: NextHopConnection; where: string; tlsPath?: 'next_hop' | 'secure_next_hop' }> {
  const open = async (h: NextHopOptions): Promise<NextHopConnection> => {
    try {
      return await NextHopConnection.open(h);
    } catch (err) {
      const e = err as Error & { reply?: Reply };
      const r = new ReleaseError('next_hop', `cannot deliver to next hop ${endpoint(h)}: ${e.reply ? formatReply(e.reply) : e.message}`, e.reply);
      r.tlsRequired = Boolean(need);
      throw r;
    }
  };
  if (!need) return { conn: await open(o.nextHop), where: endpoint(o.nextHop) };
  const lacksRequireTls = (c: NextHopConnection) => need.esmtp && !c.supports('REQUIRETLS');
  let skipped: string | undefined;
  if (o.nextHop.tls && mustVerify(o.nextHop.tls.level)) {
    // The level makes open() fail unless the certificate verified.
    const conn = await open(o.nextHop);
    if (!lacksRequireTls(conn)) return { conn, where: endpoint(o.nextHop), tlsPath: 'next_hop' };
    conn.quit();
    skipped = `next hop ${endpoint(o.nextHop)} does not advertise REQUIRETLS, which the message arrived with`;
  }
  const secure = o.secureNextHop;
  if (!secure) {
    throw tlsRequired(id, skipped ? `${skipped}, and tls.secure_next_hop is not set` : `no verified path is configured (tls.next_hop.level is ${o.nextHop.tls?.level ?? 'none'} and tls.secure_next_hop is not set)`);
  }
  let conn: NextHopConnection;
  try {
    conn = await NextHopConnection.open(secure);
  } catch (err) {
    // A certificate that does not verify is no path, as in step escalate; an unreachable hop is a next-hop failure.
    if (err instanceof NextHopError && err.kind === 'tls') throw tlsRequired(id, `tls.secure_next_hop ${endpoint(secure)} failed TLS at level secure (${err.message})`);
    const e = err as Error & { reply?: Reply };
    const r = new ReleaseError('next_hop', `cannot deliver to tls.secure_next_hop ${endpoint(secure)}: ${e.reply ? formatReply(e.reply) : e.message}`, e.reply);
    r.tlsRequired = true;
    throw r;
  }
  if (lacksRequireTls(conn)) {
    conn.quit();
    throw tlsRequired(id, `tls.secure_next_hop ${endpoint(secure)} does not advertise REQUIRETLS, which the message arrived with`);
  }
  return { conn, where: endpoint(secure), tlsPath: 'secure_next_hop' };
}

async function deliver(o: ReleaseOptions, id: string, meta: QuarantineMeta): Promise<{ reply: Reply; where: string; tlsPath?: 'next_hop' | 'secure_next_hop' }> {
  const env = meta.envelope;
  if (!env) throw new ReleaseError('no_envelope', `quarantine entry ${id} has no stored envelope (held before release was supported); it cannot be released`);
  if (env.rcpts.length === 0) throw new ReleaseError('no_envelope', `quarantine entry ${id} has no recipients`);
  const source = () => o.store.readMessage(id);
  const ctx = await prepare(o, id, meta, source);
  const need = tlsNeed(o, meta, ctx);
  if (need && ctx.released) ctx.released.tlsRequired = true;
  const { conn, where, tlsPath } = await openPath(o, id, need);
  const failed = (e: ReleaseError) => {
    e.tlsRequired = Boolean(need);
    return e;
  };
  try {
    const supports = (ext: string) => conn.supports(ext);
    const addr = (address: string, args: Record<string, string | true> | undefined) => ({ address, args: args ?? {} }) as unknown as SMTPServerAddress;
    let lines: string[];
    try {
      // REQUIRETLS (RFC 8689) wherever the verified hop advertises it.
      const requireTls = need && conn.supports('REQUIRETLS') ? ' REQUIRETLS' : '';
      lines = [mailFromCommand(addr(env.from, env.params), supports) + requireTls, ...env.rcpts.map((r, i) => rcptToCommand(addr(r, env.rcptParams?.[i]), supports))];
    } catch (err) {
      if (err instanceof EnvelopeError) throw failed(new ReleaseError('refused', `cannot release ${id} to ${where}: ${err.message}`));
      throw err;
    }
    const xforward = env.client ? xforwardCommands(new Map(Object.entries(env.client)), conn.extensions.get('XFORWARD')) : [];
    const replies = await conn.commands([...xforward, ...lines]);
    const mail = replies[xforward.length];
    if (mail.code !== 250) throw failed(new ReleaseError('refused', `next hop ${where} refused MAIL FROM: ${formatReply(mail)}; entry ${id} kept`, mail));
    const rcptReplies = replies.slice(xforward.length + 1);
    const bad = rcptReplies.findIndex((r) => r.code < 200 || r.code >= 300);
    if (bad >= 0) {
      await conn.reset();
      throw failed(new ReleaseError('refused', `next hop ${where} refused recipient ${bad + 1} of ${env.rcpts.length}: ${formatReply(rcptReplies[bad])}; nothing was sent, entry ${id} kept`, rcptReplies[bad]));
    }
    let reply: Reply;
    try {
      reply = await conn.data(releasedStream(ctx, source));
    } catch (err) {
      const cause = rewriteFailure((err as { cause?: unknown }).cause);
      if (isQuarantineError(cause)) throw failed(new ReleaseError('corrupt', `quarantine entry ${id} could not be read while sending (${cause.message}); the transaction was aborted, entry kept`));
      if (cause instanceof ReleaseRewriteError) throw failed(new ReleaseError('rewrite', `cannot release ${id}: ${cause.message}; the transaction was aborted, entry kept`));
      const kind = err instanceof NextHopError ? err.kind : 'error';
      throw failed(new ReleaseError('next_hop', `delivery to next hop ${where} failed (${kind}: ${(err as Error).message}); entry ${id} kept`));
    }
    if (reply.code !== 250) throw failed(new ReleaseError('refused', `next hop ${where} answered ${formatReply(reply)}; entry ${id} kept`, reply));
    return { reply, where, ...(tlsPath ? { tlsPath } : {}) };
  } finally {
    conn.quit();
  }
}

/** The context pass 2 runs with, and one trial run of it; every failure here is before any connection. */
async function prepare(o: ReleaseOptions, id: string, meta: QuarantineMeta, source: () => AsyncIterable<Buffer>): Promise<MessageContext> {
  try {
    const ctx = await releaseContext(id, meta.rules, o, source);
    await trialRun(ctx, source);
    return ctx;
  } catch (err) {
    const how = o.redact ? ' with redaction' : '';
    if (err instanceof ReleaseRewriteError) throw new ReleaseError('rewrite', `cannot release ${id}${how}: ${err.message}; nothing was sent, entry ${id} kept`);
    // Deleted meanwhile: the caller says "no quarantine entry", as for any unknown id.
    if (isQuarantineError(err) && !isQuarantineError(err, 'MV_QUARANTINE_NOT_FOUND')) throw new ReleaseError('corrupt', `quarantine entry ${id} could not be read (${(err as Error).message}); nothing was sent, entry kept`);
    throw err;
  }
}
