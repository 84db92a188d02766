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
import { formatReply, replyClass, replyStatus, type Reply } from '../pipeline/reply';
import { releaseContext, releasedStream, ReleaseRewriteError, rewriteFailure, trialRun, type ReleaseRewriteOptions } from './release-rewrite';
import type { MvCode } from '../errors';

/** `rewrite`: the released message could not be produced (redaction, header anonymisation); nothing was sent. */
export type ReleaseFailure = 'no_envelope' | 'busy' | 'next_hop' | 'refused' | 'corrupt' | 'cleanup' | 'rewrite';

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
};

export class ReleaseError extends Error {
  readonly code: MvCode;
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
}

export interface ReleaseResult {
  id: string;
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
    const reply = await deliver(o, id, meta).catch(async (err: unknown) => {
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
        },
      });
      throw err;
    });
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
      details: { result: 'ok', reply: replyStatus(reply), reply_class: replyClass(reply.code), rcpts: meta.envelope!.rcpts.length, size: meta.size, rules: meta.rules, redact: o.redact, entry_deleted: !cleanup },
    });
    if (cleanup) {
      throw new ReleaseError('cleanup', `released ${id} (next hop: ${formatReply(reply)}), but removing the entry failed: ${cleanup.message}; run \`mailveil quarantine delete ${id}\``, reply);
    }
    return { id, reply, rcpts: meta.envelope!.rcpts.length, size: meta.size };
  } finally {
    await unlock();
  }
}

async function deliver(o: ReleaseOptions, id: string, meta: QuarantineMeta): Promise<Reply> {
  const env = meta.envelope;
  if (!env) throw new ReleaseError('no_envelope', `quarantine entry ${id} has no stored envelope (held before release was supported); it cannot be released`);
  if (env.rcpts.length === 0) throw new ReleaseError('no_envelope', `quarantine entry ${id} has no recipients`);
  const source = () => o.store.readMessage(id);
  const ctx = await prepare(o, id, meta, source);
  const where = `${o.nextHop.host}:${o.nextHop.port}`;
  let conn: NextHopConnection;
  try {
    conn = await NextHopConnection.open(o.nextHop);
  } catch (err) {
    const e = err as Error & { reply?: Reply };
    throw new ReleaseError('next_hop', `cannot deliver to next hop ${where}: ${e.reply ? formatReply(e.reply) : e.message}`, e.reply);
  }
  try {
    const supports = (ext: string) => conn.supports(ext);
    const addr = (address: string, args: Record<string, string | true> | undefined) => ({ address, args: args ?? {} }) as unknown as SMTPServerAddress;
    let lines: string[];
    try {
      lines = [mailFromCommand(addr(env.from, env.params), supports), ...env.rcpts.map((r, i) => rcptToCommand(addr(r, env.rcptParams?.[i]), supports))];
    } catch (err) {
      if (err instanceof EnvelopeError) throw new ReleaseError('refused', `cannot release ${id} to ${where}: ${err.message}`);
      throw err;
    }
    const xforward = env.client ? xforwardCommands(new Map(Object.entries(env.client)), conn.extensions.get('XFORWARD')) : [];
    const replies = await conn.commands([...xforward, ...lines]);
    const mail = replies[xforward.length];
    if (mail.code !== 250) throw new ReleaseError('refused', `next hop ${where} refused MAIL FROM: ${formatReply(mail)}; entry ${id} kept`, mail);
    const rcptReplies = replies.slice(xforward.length + 1);
    const bad = rcptReplies.findIndex((r) => r.code < 200 || r.code >= 300);
    if (bad >= 0) {
      await conn.reset();
      throw new ReleaseError('refused', `next hop ${where} refused recipient ${bad + 1} of ${env.rcpts.length}: ${formatReply(rcptReplies[bad])}; nothing was sent, entry ${id} kept`, rcptReplies[bad]);
    }
    let reply: Reply;
    try {
      reply = await conn.data(releasedStream(ctx, source));
    } catch (err) {
      const cause = rewriteFailure((err as { cause?: unknown }).cause);
      if (isQuarantineError(cause)) throw new ReleaseError('corrupt', `quarantine entry ${id} could not be read while sending (${cause.message}); the transaction was aborted, entry kept`);
      if (cause instanceof ReleaseRewriteError) throw new ReleaseError('rewrite', `cannot release ${id}: ${cause.message}; the transaction was aborted, entry kept`);
      const kind = err instanceof NextHopError ? err.kind : 'error';
      throw new ReleaseError('next_hop', `delivery to next hop ${where} failed (${kind}: ${(err as Error).message}); entry ${id} kept`);
    }
    if (reply.code !== 250) throw new ReleaseError('refused', `next hop ${where} answered ${formatReply(reply)}; entry ${id} kept`, reply);
    return reply;
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
