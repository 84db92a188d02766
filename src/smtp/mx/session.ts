/*
 * The envelope in mx mode: MAIL FROM is kept until the first RCPT names a
 * recipient domain; each recipient domain then gets its own transaction
 * (destinations.ts), opened at its first RCPT with MAIL FROM mirrored, and
 * every RCPT gets that domain's MX's own answer, so no recipient is
 * accepted that its MX refused (guarantee 4), as in relay mode.
 *
 * SMTP mode takes one domain per transaction: an RCPT for a second domain
 * gets 452 4.5.3 and the client sends it in a new transaction (Postfix's
 * smtp client does so on its own). LMTP takes several, and its per-recipient
 * replies after DATA carry each domain's result (handle-message.ts).
 *
 * Nothing but MAIL and RCPT is sent before DATA: no XFORWARD to a foreign
 * MX, since the original client's details are ours to keep.
 */
import { domainToASCII } from 'node:url';
import type { SMTPServerAddress } from 'smtp-server';
import { NextHopError } from '../next-hop';
import { mailFromCommand, rcptToCommand, EnvelopeError } from '../envelope';
import { passThrough, replyError, smtpError, type SmtpError } from '../errors';
import type { Destination, DestinationOpen, MxDestinations } from './destinations';
import type { ReplyCode } from '../../errors';
import type { Logger } from '../../observability/log';

/**
 * `pending`: the domain's own DANE or MTA-STS policy failed. Its RCPTs are
 * accepted provisionally, since only the header can say `TLS-Required: No`
 * (RFC 8689 5); after DATA its recipients get `code` unless it does
 * (mx/delivery.ts, pipeline/parts.ts).
 */
export type DestinationState =
  | { ok: true; dest: Destination; accepted: number }
  | { ok: false; error: SmtpError }
  | { ok: 'pending'; code: ReplyCode; accepted: number };

export interface MxTransaction {
  from: SMTPServerAddress;
  /** By recipient domain (A-labels, lower case). */
  dests: Map<string, DestinationState>;
}

/** The recipient domain of an address, as DNS is asked for it; undefined when there is none. */
export function recipientDomain(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at < 0) return undefined;
  const d = domainToASCII(address.slice(at + 1).replace(/\.$/, '')).toLowerCase();
  return d || undefined;
}

export interface MxSessionDeps {
  destinations: MxDestinations;
  lmtp: boolean;
  log: Logger;
  onFailure(err: NextHopError, step: string): void;
}

/** RCPT in mx mode: the domain's transaction (opened on its first RCPT), then the RCPT itself. */
export async function mxRcpt(tx: MxTransaction, address: SMTPServerAddress, deps: MxSessionDeps, gone: AbortSignal): Promise<SmtpError | undefined> {
  const domain = recipientDomain(address.address);
  if (!domain) return replyError('MV_MX_NO_DOMAIN');
  if (!deps.lmtp) {
    for (const [d, s] of tx.dests) if (d !== domain && s.ok !== false && s.accepted > 0) return replyError('MV_MX_ONE_DOMAIN');
  }
  let state = tx.dests.get(domain);
  if (!state) {
    state = await openTransaction(tx.from, domain, deps);
    // The client left while the MX answered: nobody owns the transaction.
    if (gone.aborted) {
      if (state.ok === true) void deps.destinations.release(state.dest);
      return replyError('MV_NEXT_HOP_LOST');
    }
    tx.dests.set(domain, state);
  }
  if (state.ok === false) return state.error;
  if (state.ok === 'pending') {
    state.accepted++;
    return undefined;
  }
  const conn = state.dest.conn;
  if (!conn.usable) {
    if (conn.failureCause) deps.onFailure(conn.failureCause, 'RCPT');
    return replyError('MV_NEXT_HOP_LOST');
  }
  try {
    const r = await conn.command(rcptToCommand(address, (e) => conn.supports(e)));
    if (r.code >= 400) return passThrough(r);
    state.accepted++;
    return undefined;
  } catch (err) {
    return failureReply(err, deps, 'RCPT');
  }
}

async function openTransaction(from: SMTPServerAddress, domain: string, deps: MxSessionDeps): Promise<DestinationState> {
  const o: DestinationOpen = await deps.destinations.open(domain).catch((err: Error) => {
    deps.log.error({ event: 'mx_open_failed', domain, err: { message: err.message } }, 'opening a transaction to a recipient domain failed');
    return { ok: false, code: 'MV_INTERNAL', reason: err.message };
  });
  if (!o.ok) {
    deps.log.info({ event: 'mx_destination', domain, result: o.code, reason: o.reason, relaxable: Boolean(o.relaxable), ...(o.policy ? { policy_source: o.policy.source, tls_level: o.policy.level } : {}) }, 'recipient domain refused before MAIL');
    return o.relaxable ? { ok: 'pending', code: o.code, accepted: 0 } : { ok: false, error: replyError(o.code) };
  }
  const { dest } = o;
  const tls = dest.conn.tls;
  deps.log.info(
    {
      event: 'mx_destination',
      domain,
      mx: dest.mx,
      reused: dest.reused,
      policy_source: dest.attempt.target.source,
      tls_level: dest.attempt.target.level,
      result: tls?.result ?? 'ok',
      protocol: tls?.protocol ?? null,
      cipher: tls?.cipher ?? null,
      verified: dest.verified,
    },
    'recipient domain transaction opened',
  );
  try {
    const r = await dest.conn.command(mailFromCommand(from, (e) => dest.conn.supports(e)));
    if (r.code >= 400) {
      void deps.destinations.release(dest);
      return { ok: false, error: passThrough(r) };
    }
    return { ok: true, dest, accepted: 0 };
  } catch (err) {
    // release() also frees the domain's concurrency slot; a broken connection is destroyed there, never kept.
    void deps.destinations.release(dest);
    return { ok: false, error: failureReply(err, deps, 'MAIL') };
  }
}

function failureReply(err: unknown, deps: MxSessionDeps, step: string): SmtpError {
  if (err instanceof EnvelopeError) return smtpError(err.responseCode, err.message);
  if (err instanceof NextHopError) {
    deps.onFailure(err, step);
    return replyError(err.kind === 'timeout' ? 'MV_NEXT_HOP_TIMEOUT' : 'MV_NEXT_HOP_LOST');
  }
  return replyError('MV_INTERNAL');
}

/** Ends every transaction of the envelope and hands the connections back. */
export async function mxRelease(tx: MxTransaction | undefined, destinations: MxDestinations): Promise<void> {
  if (!tx) return;
  const all = [...tx.dests.values()];
  tx.dests.clear();
  await Promise.all(all.map((s) => (s.ok === true ? destinations.release(s.dest) : undefined)));
}
