/*
 * The SMTP front, on smtp-server. The envelope is mirrored to the next hop
 * command by command: MAIL and each RCPT get the next hop's own answer, so
 * no recipient is ever accepted here that the next hop refused (guarantee 4).
 * The message itself is handled in handle-message.ts.
 *
 * Who owns the next-hop connection (session-state.ts): a client that leaves
 * while a command is outstanding at the next hop has that connection reset
 * only once every reply is in; one that leaves during a message leaves the
 * connection to the message handler, which closes it if DATA had begun.
 *
 * Advertised: PIPELINING, 8BITMIME, SMTPUTF8, SIZE, DSN, ENHANCEDSTATUSCODES,
 * XFORWARD, and STARTTLS when inbound_tls is configured; REQUIRETLS (RFC
 * 8689, over TLS only) when tls.secure_next_hop or a verify/secure
 * tls.next_hop gives a verified path (escalation.ts). No AUTH: the only
 * clients are the `clients` networks (default loopback), everyone else gets
 * 554 5.7.1 at connect (guarantee 7).
 */
import './enhanced-codes';
import { readFileSync } from 'node:fs';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession, type SMTPServerOptions } from 'smtp-server';
import { CidrSet } from '../config/address';
import { NextHopError, type NextHopConnection } from './next-hop';
import { tlsReplyCode } from './next-hop-tls';
import { clientAttributes, mailFromCommand, rcptToCommand, xforwardCommands, EnvelopeError } from './envelope';
import { passThrough, replyError, smtpError, type SmtpError } from './errors';
import { handleMessage } from './handle-message';
import { canHonourRequireTls } from './escalation';
import { newSessionState, type SessionState } from './session-state';
import { connectionOf, observeConnections } from './connection-hooks';
import { mxRcpt, mxRelease } from './mx/session';
import type { Runtime } from '../runtime';

type Cb = (err?: Error | null) => void;

/** Commands after which smtp-server starts the envelope over without calling a handler. */
const ENVELOPE_RESETS = new Set(['RSET', 'EHLO', 'HELO', 'LHLO', 'STARTTLS']);

/** The peer's own address, even after XFORWARD replaced session.remoteAddress. */
export function peerAddress(session: SMTPServerSession): string {
  const fwd = (session as SMTPServerSession & { xForward?: Map<string, unknown> }).xForward;
  return String(fwd?.get('ADDR:DEFAULT') ?? session.remoteAddress);
}

function hopFailure(err: unknown): SmtpError {
  if (err instanceof EnvelopeError) return smtpError(err.responseCode, err.message);
  // The next hop's TLS does not meet tls.next_hop.level: 451 4.7.4 / 4.7.5, saying why (never to whom).
  if (err instanceof NextHopError && err.tls) return replyError(tlsReplyCode(err.tls.level, err.tls.result));
  if (err instanceof NextHopError) return replyError(err.kind === 'timeout' ? 'MV_NEXT_HOP_TIMEOUT' : err.kind === 'connect' ? 'MV_NEXT_HOP_DOWN' : 'MV_NEXT_HOP_LOST');
  return replyError('MV_INTERNAL');
}

export interface SmtpFront {
  server: SMTPServer;
  sessions: Map<string, SessionState>;
  /** Answers a client with `code text` and closes its connection (deadlines, the drain). */
  kick(sessionId: string, code: number, text: string): void;
}

export function createSmtpServer(rt: Runtime): SmtpFront {
  const { config, log } = rt;
  const clients = new CidrSet(config.clients);
  const sessions = new Map<string, SessionState>();
  const counted = new Set<string>();

  const state = (session: SMTPServerSession): SessionState => {
    let st = sessions.get(session.id);
    if (!st) {
      st = newSessionState(rt.pseudonyms.token('ip', session.remoteAddress));
      sessions.set(session.id, st);
    }
    return st;
  };

  /** Ends the mirrored transaction(s) (if any) and hands the connections back. */
  const releaseHop = async (st: SessionState): Promise<void> => {
    const hop = st.hop;
    const mx = st.mx;
    st.hop = undefined;
    st.mx = undefined;
    st.accepted = 0;
    if (hop) await rt.pool.release(hop);
    if (mx && rt.mx) await mxRelease(mx, rt.mx.destinations);
  };
  const mxDeps = rt.mx && { destinations: rt.mx.destinations, lmtp: config.listen_protocol === 'lmtp', log, onFailure: (e: NextHopError, step: string) => rt.hopEvents.failure(e, step) };

  /** Runs `fn` on a pooled connection; a reused one that died while idle is replaced once. */
  const withFreshHop = async (step: string, fn: (hop: NextHopConnection) => Promise<void>): Promise<NextHopConnection> => {
    for (let attempt = 0; ; attempt++) {
      const { conn, reused } = await rt.pool.acquire();
      try {
        await fn(conn);
        return conn;
      } catch (err) {
        // Nothing was written for an envelope we refused ourselves: keep the connection.
        if (err instanceof EnvelopeError && conn.reusable) void rt.pool.release(conn);
        else conn.destroy();
        const retry = reused && attempt === 0 && err instanceof NextHopError && err.kind === 'closed';
        if (err instanceof NextHopError && !retry) rt.hopEvents.failure(err, step);
        if (!retry) throw err;
      }
    }
  };

  const options: SMTPServerOptions = {
    name: config.hostname,
    banner: 'mailveil',
    logger: false,
    disableReverseLookup: true,
    // LMTP (Postfix's lmtp client): one reply per recipient after DATA (handle-message.ts).
    lmtp: config.listen_protocol === 'lmtp',
    useXForward: true,
    disabledCommands: config.inbound_tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !config.inbound_tls,
    // RFC 8689: REQUIRETLS (smtp-server offers it on TLS sessions) only when a verified path is configured.
    hideREQUIRETLS: !canHonourRequireTls(config),
    hideENHANCEDSTATUSCODES: false,
    hideDSN: false,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    size: config.limits.max_message_size,
    maxClients: config.limits.max_connections,
    maxRecipients: config.limits.max_recipients,
    socketTimeout: config.timeouts.client_idle,
    ...(config.inbound_tls ? { key: readFileSync(config.inbound_tls.key), cert: readFileSync(config.inbound_tls.cert) } : {}),

    onConnect(session, cb: Cb) {
      const peer = peerAddress(session);
      if (!clients.has(peer)) {
        log.warn({ event: 'client_rejected', client: rt.pseudonyms.token('ip', peer) }, 'connection from a host outside clients');
        return cb(replyError('MV_CLIENT_REJECTED'));
      }
      // XFORWARD makes smtp-server call onConnect again with the forwarded
      // address; that is the same connection and the pseudonym is updated.
      if (!counted.has(session.id)) {
        counted.add(session.id);
        rt.metrics.connections.inc();
      }
      state(session).clientPseudonym = rt.pseudonyms.token('ip', session.remoteAddress);
      log.debug({ event: 'smtp', session: session.id, phase: 'connect' }, 'client connected');
      cb();
    },

    onMailFrom(address: SMTPServerAddress, session, cb: Cb) {
      if (rt.draining) return cb(replyError('MV_SHUTTING_DOWN'));
      const st = state(session);
      if (mxDeps) {
        // mx mode: the transactions open at the first RCPT of each recipient domain (mx/session.ts).
        void releaseHop(st).then(() => {
          st.mx = { from: address, dests: new Map() };
          cb();
        });
        return;
      }
      (async () => {
        // A client RSET or a second MAIL leaves our mirrored transaction open.
        await releaseHop(st);
        let refused: SmtpError | undefined;
        const hop = await withFreshHop('MAIL', async (h) => {
          const xforward = xforwardCommands(clientAttributes(session), h.extensions.get('XFORWARD'));
          const replies = await h.commands([...xforward, mailFromCommand(address, (ext) => h.supports(ext))]);
          const mail = replies.pop()!;
          if (replies.some((r) => r.code !== 250)) {
            log.warn({ event: 'xforward_refused' }, 'next hop refused XFORWARD; check smtpd_authorized_xforward_hosts');
          }
          if (mail.code >= 400) refused = passThrough(mail);
        });
        // The client may have left while the next hop answered: nobody owns
        // this transaction then, so it ends here.
        if (refused || st.gone.signal.aborted) {
          void rt.pool.release(hop);
          return cb(refused);
        }
        st.hop = hop;
        log.debug({ event: 'smtp', session: session.id, phase: 'mail', next_hop: 250 }, 'MAIL mirrored');
        cb();
      })().catch((err) => cb(hopFailure(err)));
    },

    onRcptTo(address: SMTPServerAddress, session, cb: Cb) {
      const st = state(session);
      if (mxDeps) {
        if (!st.mx) return cb(replyError('MV_NEXT_HOP_LOST'));
        const t0 = Date.now();
        mxRcpt(st.mx, address, mxDeps, st.gone.signal).then(
          (err) => {
            log.debug({ event: 'smtp', session: session.id, phase: 'rcpt', mx: err ? err.responseCode : 250, ms: Date.now() - t0 }, 'RCPT to recipient domain');
            if (!err) st.accepted++;
            cb(err);
          },
          () => cb(replyError('MV_INTERNAL')),
        );
        return;
      }
      const hop = st.hop;
      if (!hop?.usable) {
        if (hop?.failureCause) rt.hopEvents.failure(hop.failureCause, 'RCPT');
        return cb(replyError('MV_NEXT_HOP_LOST'));
      }
      let line: string;
      try {
        line = rcptToCommand(address, (ext) => hop.supports(ext));
      } catch (err) {
        return cb(hopFailure(err));
      }
      hop.command(line).then(
        (r) => {
          log.debug({ event: 'smtp', session: session.id, phase: 'rcpt', next_hop: r.code }, 'RCPT mirrored');
          if (r.code >= 400) return cb(passThrough(r));
          st.accepted++;
          cb();
        },
        (err) => {
          if (err instanceof NextHopError) rt.hopEvents.failure(err, 'RCPT');
          cb(hopFailure(err));
        },
      );
    },

    onData(stream, session, cb) {
      const st = state(session);
      st.busy = true;
      log.debug({ event: 'smtp', session: session.id, phase: 'data' }, 'DATA');
      const done = handleMessage(rt, stream, session, st, { kick: (code, text) => kick(session.id, code, text) });
      rt.inflight.add(done);
      done
        .then(
          (answer) => cb(null, answer as string),
          (err: SmtpError) => cb(err),
        )
        .finally(() => {
          rt.inflight.delete(done);
          st.busy = false;
          st.received = false;
          void releaseHop(st);
        });
    },

    onClose(session) {
      const st = sessions.get(session.id);
      sessions.delete(session.id);
      if (counted.delete(session.id)) rt.metrics.connections.dec();
      log.debug({ event: 'smtp', session: session.id, phase: 'close' }, 'client disconnected');
      if (!st) return;
      st.gone.abort();
      // A running message owns the connection and hands it back itself.
      if (!st.busy) void releaseHop(st);
    },
  };
  const server = new SMTPServer(options);
  const kick = (sessionId: string, code: number, text: string) => {
    // Nothing is committed for a client we have told to go away.
    sessions.get(sessionId)?.gone.abort();
    const conn = connectionOf(server, sessionId);
    if (conn) conn.send(code, text); // a 421 makes smtp-server close the connection
  };
  observeConnections(server, {
    idleTimeout(session) {
      rt.metrics.deadlines.inc({ deadline: 'client_idle' });
      const st = sessions.get(session.id);
      if (st) st.deadline = 'client_idle';
      log.info({ event: 'deadline', deadline: 'client_idle', session: session.id, in_data: Boolean(st?.busy) }, 'client idle timeout; session closed');
    },
    command(session, verb) {
      log.trace({ event: 'smtp', session: session.id, command: verb }, 'command');
      // smtp-server calls no handler for RSET. In mx mode an open transaction holds a slot of
      // its domain's concurrency limit, so it ends here rather than at the next MAIL or QUIT.
      const st = sessions.get(session.id);
      if (ENVELOPE_RESETS.has(verb) && mxDeps && st?.mx && !st.busy) void releaseHop(st);
    },
  });
  return { server, sessions, kick };
}
