/*
 * The SMTP front, on smtp-server. The envelope is mirrored to the next hop
 * command by command: MAIL and each RCPT get the next hop's own answer, so
 * no recipient is ever accepted here that the next hop refused (guarantee 4).
 * The message itself is handled in handle-message.ts.
 *
 * Advertised: PIPELINING, 8BITMIME, SMTPUTF8, SIZE, DSN, ENHANCEDSTATUSCODES,
 * XFORWARD, and STARTTLS when inbound_tls is configured. No AUTH: the only
 * clients are the `clients` networks (default loopback), everyone else gets
 * 554 5.7.1 at connect (guarantee 7).
 */
import './enhanced-codes';
import { readFileSync } from 'node:fs';
import { SMTPServer, type SMTPServerAddress, type SMTPServerSession, type SMTPServerOptions } from 'smtp-server';
import { CidrSet } from '../config/address';
import { NextHopError, type NextHopConnection } from './next-hop';
import { clientAttributes, mailFromCommand, rcptToCommand, xforwardCommands, EnvelopeError } from './envelope';
import { passThrough, replyError, smtpError, type SmtpError } from './errors';
import { handleMessage } from './handle-message';
import type { SessionState } from './session-state';
import type { Runtime } from '../runtime';

type Cb = (err?: Error | null) => void;

/** The peer's own address, even after XFORWARD replaced session.remoteAddress. */
export function peerAddress(session: SMTPServerSession): string {
  const fwd = (session as SMTPServerSession & { xForward?: Map<string, unknown> }).xForward;
  return String(fwd?.get('ADDR:DEFAULT') ?? session.remoteAddress);
}

function hopFailure(err: unknown): SmtpError {
  if (err instanceof EnvelopeError) return smtpError(err.responseCode, err.message);
  if (err instanceof NextHopError) return replyError(err.kind === 'timeout' ? 'NEXT_HOP_TIMEOUT' : err.kind === 'connect' ? 'NEXT_HOP_DOWN' : 'NEXT_HOP_LOST');
  return replyError('INTERNAL');
}

export function createSmtpServer(rt: Runtime): { server: SMTPServer; sessions: Map<string, SessionState> } {
  const { config } = rt;
  const clients = new CidrSet(config.clients);
  const sessions = new Map<string, SessionState>();
  const counted = new Set<string>();

  const state = (session: SMTPServerSession): SessionState => {
    let st = sessions.get(session.id);
    if (!st) {
      st = { accepted: 0, clientPseudonym: rt.pseudonyms.token('ip', session.remoteAddress) };
      sessions.set(session.id, st);
    }
    return st;
  };

  /** Ends the mirrored transaction (if any) and hands the connection back. */
  const releaseHop = async (st: SessionState): Promise<void> => {
    const hop = st.hop;
    st.hop = undefined;
    st.accepted = 0;
    if (hop) await rt.pool.release(hop);
  };

  /** Runs `fn` on a pooled connection; a reused one that died while idle is replaced once. */
  const withFreshHop = async (fn: (hop: NextHopConnection) => Promise<void>): Promise<NextHopConnection> => {
    for (let attempt = 0; ; attempt++) {
      const { conn, reused } = await rt.pool.acquire();
      try {
        await fn(conn);
        return conn;
      } catch (err) {
        conn.destroy();
        if (!(reused && attempt === 0 && err instanceof NextHopError && err.kind === 'closed')) throw err;
      }
    }
  };

  const options: SMTPServerOptions = {
    name: config.hostname,
    banner: 'mailveil',
    logger: false,
    disableReverseLookup: true,
    useXForward: true,
    disabledCommands: config.inbound_tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    hideSTARTTLS: !config.inbound_tls,
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
        rt.log.warn({ event: 'client_rejected', client: rt.pseudonyms.token('ip', peer) }, 'connection from a host outside clients');
        return cb(replyError('CLIENT_REJECTED'));
      }
      // XFORWARD makes smtp-server call onConnect again with the forwarded
      // address; that is the same connection and the pseudonym is updated.
      if (!counted.has(session.id)) {
        counted.add(session.id);
        rt.metrics.connections.inc();
      }
      state(session).clientPseudonym = rt.pseudonyms.token('ip', session.remoteAddress);
      cb();
    },

    onMailFrom(address: SMTPServerAddress, session, cb: Cb) {
      if (rt.draining) return cb(replyError('SHUTTING_DOWN'));
      const st = state(session);
      (async () => {
        // A client RSET or a second MAIL leaves our mirrored transaction open.
        await releaseHop(st);
        let refused: SmtpError | undefined;
        const hop = await withFreshHop(async (h) => {
          const xforward = xforwardCommands(clientAttributes(session), h.extensions.get('XFORWARD'));
          const replies = await h.commands([...xforward, mailFromCommand(address, (ext) => h.supports(ext))]);
          const mail = replies.pop()!;
          if (replies.some((r) => r.code !== 250)) {
            rt.log.warn({ event: 'xforward_refused' }, 'next hop refused XFORWARD; check smtpd_authorized_xforward_hosts');
          }
          if (mail.code >= 400) refused = passThrough(mail);
        });
        if (refused) {
          await rt.pool.release(hop);
          return cb(refused);
        }
        hop.inTransaction = true;
        st.hop = hop;
        cb();
      })().catch((err) => cb(hopFailure(err)));
    },

    onRcptTo(address: SMTPServerAddress, session, cb: Cb) {
      const st = state(session);
      const hop = st.hop;
      if (!hop?.usable) return cb(replyError('NEXT_HOP_LOST'));
      let line: string;
      try {
        line = rcptToCommand(address, (ext) => hop.supports(ext));
      } catch (err) {
        return cb(hopFailure(err));
      }
      hop.command(line).then(
        (r) => {
          if (r.code >= 400) return cb(passThrough(r));
          st.accepted++;
          cb();
        },
        (err) => cb(hopFailure(err)),
      );
    },

    onData(stream, session, cb) {
      const st = state(session);
      handleMessage(rt, stream, session, st).then(
        (text) => {
          void releaseHop(st);
          cb(null, text);
        },
        (err: SmtpError) => {
          void releaseHop(st);
          cb(err);
        },
      );
    },

    onClose(session) {
      const st = sessions.get(session.id);
      sessions.delete(session.id);
      if (counted.delete(session.id)) rt.metrics.connections.dec();
      if (st) void releaseHop(st);
    },
  };
  return { server: new SMTPServer(options), sessions };
}
