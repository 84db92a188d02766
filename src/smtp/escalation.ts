/*
 * The SMTP side of step `escalate` (pipeline/stages/escalate.ts): a
 * transaction over verified TLS for a message that needs one, with the
 * client's envelope replayed (XFORWARD, MAIL FROM, every RCPT the next hop
 * accepted when mirrored).
 *  - `mirrored`: the session's own connection, already verified at
 *    tls.next_hop level verify/secure. Used as is, or, when REQUIRETLS is to
 *    go on MAIL FROM and the hop advertises it, reset and replayed.
 *  - `secure_next_hop`: a new connection to tls.secure_next_hop at level
 *    `secure`, with tls.next_hop's ca_file, servername (default: the
 *    secure_next_hop host), cert and key. The mirrored transaction is
 *    abandoned first (RSET: it never reached DATA). Not pooled: it is
 *    closed (QUIT) once its message is done.
 * A replayed MAIL or RCPT the hop refuses abandons the whole transaction:
 * its reply comes back as a deferral, never a partial delivery.
 */
import type { Readable } from 'node:stream';
import type { Reply } from '../pipeline/reply';
import type { SMTPServerSession } from 'smtp-server';
import type { Delivery, DeliveryResult, Escalation, EscalationOpen, RequireTlsMode } from '../pipeline/message';
import { NextHopConnection, NextHopError, nextHopOptions, type NextHopOptions } from './next-hop';
import { mustVerify, nextHopTls } from './next-hop-tls';
import { clientAttributes, mailFromCommand, rcptToCommand, xforwardCommands } from './envelope';
import { sendData } from './send-data';
import type { SessionState } from './session-state';
import type { Runtime } from '../runtime';
import type { Config } from '../config/load';

/** Connection settings for tls.secure_next_hop: level secure, tls.next_hop's trust and client certificate. */
export function secureNextHopOptions(config: Config): NextHopOptions | undefined {
  const hop = config.tls.secure_next_hop;
  if (!hop) return undefined;
  return {
    ...nextHopOptions(config),
    host: hop.host,
    port: hop.port,
    tls: nextHopTls({ ...config.tls.next_hop, level: 'secure' }, config.tls.ca_file),
  };
}

/**
 * True when inbound REQUIRETLS can be honoured: some verified path exists by
 * configuration. In mx mode each recipient domain's own verified policy is
 * that path (a domain without one gets 4.7.5 for that message).
 */
export function canHonourRequireTls(config: Config): boolean {
  if (config.delivery.mode === 'mx') return config.tls.dane || config.tls.mta_sts || ['verify', 'secure', 'dane-only'].includes(config.tls.default_level);
  return config.tls.secure_next_hop !== null || mustVerify(config.tls.next_hop.level);
}

/** Sends XFORWARD, MAIL FROM (with REQUIRETLS when asked) and every accepted RCPT; the first refusal, if any. */
async function replay(conn: NextHopConnection, session: SMTPServerSession, requireTls: boolean): Promise<Reply | undefined> {
  const xforward = xforwardCommands(clientAttributes(session), conn.extensions.get('XFORWARD'));
  const mail = mailFromCommand(session.envelope.mailFrom as Exclude<typeof session.envelope.mailFrom, false>, (e) => conn.supports(e)) + (requireTls ? ' REQUIRETLS' : '');
  const rcpts = session.envelope.rcptTo.map((r) => rcptToCommand(r, (e) => conn.supports(e)));
  const replies = await conn.commands([...xforward, mail, ...rcpts]);
  return replies.slice(xforward.length).find((r) => r.code >= 400);
}

export function sessionEscalation(rt: Runtime, session: SMTPServerSession, st: SessionState, mirrored: Delivery, opened: NextHopConnection[]): Escalation {
  const viaConnection = (conn: NextHopConnection): Delivery => ({
    usable: () => conn.usable,
    async send(body: Readable & AsyncIterable<Buffer>, signal: AbortSignal): Promise<DeliveryResult> {
      return sendData(rt, conn, body, signal);
    },
  });

  const replayed = async (conn: NextHopConnection, requireTls: boolean): Promise<EscalationOpen> => {
    try {
      const refused = await replay(conn, session, requireTls);
      if (refused) {
        void conn.reset().then((ok) => (ok ? conn.quit() : conn.destroy()));
        return { ok: false, failure: 'refused', reply: refused };
      }
      return { ok: true, delivery: viaConnection(conn) };
    } catch (err) {
      if (err instanceof NextHopError) rt.hopEvents.failure(err, 'MAIL');
      conn.destroy();
      return { ok: false, failure: st.gone.signal.aborted ? 'client_gone' : 'lost' };
    }
  };

  return {
    facts() {
      const hop = st.hop;
      return {
        mirroredVerified: Boolean(hop?.usable && hop.tls && mustVerify(hop.tls.level) && hop.tls.verified),
        mirroredOffersRequireTls: Boolean(hop?.supports('REQUIRETLS')),
        secureNextHop: rt.config.tls.secure_next_hop !== null,
      };
    },
    async open(path, mode: RequireTlsMode): Promise<EscalationOpen> {
      if (path === 'mirrored') {
        const hop = st.hop!;
        if (!hop.supports('REQUIRETLS')) return mode === 'required' ? { ok: false, failure: 'no_requiretls' } : { ok: true, delivery: mirrored };
        // MAIL went out without REQUIRETLS (the content was not known yet): start over with it.
        if (!(await hop.reset())) return { ok: false, failure: 'lost' };
        return replayed(hop, true);
      }
      // Abandon the mirrored transaction; the pool resets it (it never reached DATA).
      const old = st.hop;
      st.hop = undefined;
      st.accepted = 0;
      if (old) void rt.pool.release(old);
      const opts = secureNextHopOptions(rt.config)!;
      let conn: NextHopConnection;
      try {
        conn = await NextHopConnection.open({ ...opts, onViolation: (w) => rt.hopEvents.violation(w), onTls: (o) => rt.hopEvents.tls(o) });
      } catch (err) {
        const e = err instanceof NextHopError ? err : new NextHopError('connect', (err as Error).message);
        rt.hopEvents.failure(e, 'connect');
        return { ok: false, failure: e.kind === 'tls' ? 'tls' : 'lost' };
      }
      opened.push(conn);
      const offers = conn.supports('REQUIRETLS');
      if (mode === 'required' && !offers) return { ok: false, failure: 'no_requiretls' };
      return replayed(conn, offers);
    },
  };
}
