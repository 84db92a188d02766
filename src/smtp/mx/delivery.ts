/*
 * The lifecycle's ports (pipeline/message.ts) over an mx-mode envelope: one
 * part per recipient domain that accepted at least one recipient, each with
 * its Delivery and its Escalation. The escalation's only path is the
 * domain's own transaction: it is verified when its policy demanded
 * verification and the handshake met it (DANE, MTA-STS enforce, verify,
 * secure). When REQUIRETLS is to go on MAIL FROM and the MX advertises it,
 * the transaction is reset and replayed with it (the content was not known
 * at MAIL time).
 *
 * A domain whose own DANE or MTA-STS policy failed at RCPT time (session.ts,
 * `pending`) gets a part with `policyFailure`: relax() opens a transaction
 * at level may with DANE and MTA-STS set aside, for a message that says
 * `TLS-Required: No`, and replays MAIL FROM and its RCPTs there.
 */
import type { Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import type { Delivery, DeliveryPart, Escalation, EscalationOpen, RelaxOpen } from '../../pipeline/message';
import { NextHopError, type NextHopConnection } from '../next-hop';
import { mailFromCommand, rcptToCommand } from '../envelope';
import { sendData } from '../send-data';
import { recipientDomain, type MxTransaction } from './session';
import type { Runtime } from '../../runtime';

function viaConnection(rt: Runtime, conn: NextHopConnection): Delivery {
  return {
    usable: () => conn.usable,
    send: (body: Readable & AsyncIterable<Buffer>, signal: AbortSignal) => sendData(rt, conn, body, signal),
  };
}

const NOT_OPEN: Delivery = { usable: () => false, send: async () => ({ ok: false, failure: 'lost' }) };

/** MAIL FROM (with REQUIRETLS when asked) and the RCPTs, on a connection outside any transaction; the first refusal, if any. */
async function replay(rt: Runtime, conn: NextHopConnection, from: SMTPServerAddress, rcpts: SMTPServerAddress[], requireTls: boolean): Promise<EscalationOpen> {
  try {
    const lines = [mailFromCommand(from, (e) => conn.supports(e)) + (requireTls ? ' REQUIRETLS' : ''), ...rcpts.map((r) => rcptToCommand(r, (e) => conn.supports(e)))];
    const refused = (await conn.commands(lines)).find((r) => r.code >= 400);
    if (refused) {
      void conn.reset();
      return { ok: false, failure: 'refused', reply: refused };
    }
    return { ok: true, delivery: viaConnection(rt, conn) };
  } catch (err) {
    if (err instanceof NextHopError) rt.hopEvents.failure(err, 'MAIL');
    conn.destroy();
    return { ok: false, failure: 'lost' };
  }
}

/**
 * MAIL FROM and each RCPT, for recipients the MX has not seen before (we
 * accepted them provisionally): every refusal is kept. Over SMTP only a
 * refusal of all of them can be told to the client as it is.
 */
async function replayEach(rt: Runtime, conn: NextHopConnection, from: SMTPServerAddress, rcpts: { index: number; addr: SMTPServerAddress }[], perRecipient: boolean): Promise<RelaxOpen> {
  try {
    const [mail, ...replies] = await conn.commands([mailFromCommand(from, (e) => conn.supports(e)), ...rcpts.map((r) => rcptToCommand(r.addr, (e) => conn.supports(e)))]);
    if (mail.code >= 400) return { ok: false, failure: 'refused', reply: mail, every: true };
    const refused = rcpts.flatMap((r, i) => (replies[i].code >= 400 ? [{ recipient: r.index, reply: replies[i] }] : []));
    if (refused.length === rcpts.length || (refused.length && !perRecipient)) {
      void conn.reset();
      return { ok: false, failure: 'refused', reply: refused[0].reply, every: refused.length === rcpts.length && refused.every((x) => x.reply.code >= 500) };
    }
    return { ok: true, delivery: viaConnection(rt, conn), refused };
  } catch (err) {
    if (err instanceof NextHopError) rt.hopEvents.failure(err, 'MAIL');
    conn.destroy();
    return { ok: false, failure: 'lost' };
  }
}

export function mxParts(rt: Runtime, session: SMTPServerSession, tx: MxTransaction): DeliveryPart[] {
  const rcpts = session.envelope.rcptTo;
  const parts: DeliveryPart[] = [];
  for (const [domain, s] of tx.dests) {
    if (s.ok === false || s.accepted === 0) continue;
    const recipients = rcpts.flatMap((r, i) => (recipientDomain(r.address) === domain ? [i] : []));
    const mine = recipients.map((i) => rcpts[i]);
    if (s.ok === 'pending') {
      const lmtp = rt.config.listen_protocol === 'lmtp';
      const relax = async (): Promise<RelaxOpen> => {
        const o = await rt.mx!.destinations.open(domain, true);
        if (!o.ok) return { ok: false, failure: 'tls' };
        // Handed back with the envelope's other transactions (session.ts, mxRelease).
        tx.dests.set(domain, { ok: true, dest: o.dest, accepted: mine.length });
        return replayEach(rt, o.dest.conn, tx.from, recipients.map((i) => ({ index: i, addr: rcpts[i] })), lmtp);
      };
      parts.push({ label: domain, recipients, delivery: NOT_OPEN, policyFailure: { code: s.code, relax } });
      continue;
    }
    const conn = s.dest.conn;
    const delivery = viaConnection(rt, conn);
    const escalation: Escalation = {
      facts: () => ({ mirroredVerified: s.dest.verified && conn.usable, mirroredOffersRequireTls: conn.supports('REQUIRETLS'), secureNextHop: false, mirroredNameVouched: s.dest.nameVouched }),
      async open(_path, mode): Promise<EscalationOpen> {
        if (!conn.supports('REQUIRETLS')) return mode === 'required' ? { ok: false, failure: 'no_requiretls' } : { ok: true, delivery };
        if (!(await conn.reset())) return { ok: false, failure: 'lost' };
        return replay(rt, conn, tx.from, mine, true);
      },
    };
    parts.push({ label: domain, recipients, delivery, escalation });
  }
  return parts;
}
