/*
 * The lifecycle's ports (pipeline/message.ts) over an mx-mode envelope: one
 * Delivery and one Escalation per recipient domain that accepted at least
 * one recipient. The escalation's only path is the domain's own
 * transaction: it is verified when its policy demanded verification and the
 * handshake met it (DANE, MTA-STS enforce, verify, secure). When REQUIRETLS
 * is to go on MAIL FROM and the MX advertises it, the transaction is reset
 * and replayed with it (the content was not known at MAIL time).
 */
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import type { Delivery, DeliveryPart, Escalation, EscalationOpen } from '../../pipeline/message';
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

export function mxParts(rt: Runtime, session: SMTPServerSession, tx: MxTransaction): DeliveryPart[] {
  const rcpts = session.envelope.rcptTo;
  const parts: DeliveryPart[] = [];
  for (const [domain, s] of tx.dests) {
    if (!s.ok || s.accepted === 0) continue;
    const recipients = rcpts.flatMap((r, i) => (recipientDomain(r.address) === domain ? [i] : []));
    const conn = s.dest.conn;
    const delivery = viaConnection(rt, conn);
    const escalation: Escalation = {
      facts: () => ({ mirroredVerified: s.dest.verified && conn.usable, mirroredOffersRequireTls: conn.supports('REQUIRETLS'), secureNextHop: false }),
      async open(_path, mode): Promise<EscalationOpen> {
        if (!conn.supports('REQUIRETLS')) return mode === 'required' ? { ok: false, failure: 'no_requiretls' } : { ok: true, delivery };
        try {
          if (!(await conn.reset())) return { ok: false, failure: 'lost' };
          const lines = [mailFromCommand(tx.from, (e) => conn.supports(e)) + ' REQUIRETLS', ...recipients.map((i) => rcptToCommand(rcpts[i], (e) => conn.supports(e)))];
          const refused = (await conn.commands(lines)).find((r) => r.code >= 400);
          if (refused) {
            void conn.reset();
            return { ok: false, failure: 'refused', reply: refused };
          }
          return { ok: true, delivery };
        } catch (err) {
          if (err instanceof NextHopError) rt.hopEvents.failure(err, 'MAIL');
          conn.destroy();
          return { ok: false, failure: 'lost' };
        }
      },
    };
    parts.push({ label: domain, recipients, delivery, escalation });
  }
  return parts;
}
