/*
 * The adapter between smtp-server and the message lifecycle
 * (pipeline/lifecycle.ts): it builds the message's context from the session,
 * lends the lifecycle two ports (the client's data with its DATA deadline,
 * and the session's open next-hop transaction, plus the escalation port
 * for a message that needs verified TLS: escalation.ts), runs it, and turns the
 * outcome into smtp-server's answer: the text of our 250, or an SmtpError.
 * Every decision about the message is the lifecycle's; this file only knows
 * smtp-server and the next-hop connection.
 *
 * A client that leaves before the dot went downstream aborts the next hop's
 * transaction (the connection is closed, never reset); one that leaves after
 * it has the next hop's answer recorded (outcome `delivered_client_gone`:
 * its retry may bring a duplicate, RFC 1047).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { newContext } from '../pipeline/context';
import { Spool, spoolDir } from '../pipeline/spool';
import { runMessage } from '../pipeline/run-message';
import { recipientReplies, replyFor } from '../pipeline/outcome-reply';
import type { Client, Delivery, DeliveryPart, DeliveryResult, Escalation } from '../pipeline/message';
import { mxParts } from './mx/delivery';
import { DataDeadline } from './data-deadline';
import type { NextHopConnection } from './next-hop';
import { sessionEscalation } from './escalation';
import { replyError, smtpError, type SmtpError } from './errors';
import { sendData } from './send-data';
import type { SessionState } from './session-state';
import type { Runtime } from '../runtime';
import { forwardedQueueId, heldEnvelope } from './envelope';

const ID_PREFIX = randomBytes(3).toString('hex');
let idCounter = 0;

/**
 * A queue-id-like message id: time, a per-process random part and a counter,
 * so ids are unique across replicas and restarts without a syscall per message.
 */
export function newMessageId(): string {
  idCounter = (idCounter + 1) % 0x100000;
  return (Date.now().toString(36) + ID_PREFIX + idCounter.toString(16).padStart(5, '0')).toUpperCase();
}

/** What the message handler may do to its client's session. */
export interface MessageHooks {
  /** Answers the client and closes its connection (a deadline). */
  kick(code: number, text: string): void;
}

/** smtp-server's answer: the text of one 250, or (LMTP) one reply per recipient. */
export type MessageAnswer = string | (string | SmtpError)[];

export async function handleMessage(rt: Runtime, stream: SMTPServerDataStream, session: SMTPServerSession, st: SessionState, hooks: MessageHooks): Promise<MessageAnswer> {
  rt.metrics.inFlight.inc();
  try {
    return await handleOne(rt, stream, session, st, hooks);
  } finally {
    rt.metrics.inFlight.dec();
  }
}

async function handleOne(rt: Runtime, stream: SMTPServerDataStream, session: SMTPServerSession, st: SessionState, hooks: MessageHooks): Promise<MessageAnswer> {
  const ctx = newContext(newMessageId(), rt.config, rt.rules(), rt.pseudonyms);
  ctx.envelope = heldEnvelope(session);
  ctx.queueId = forwardedQueueId(session);
  // The client's final dot: from here the drain lets the message finish.
  stream.once('end', () => (st.received = true));
  const deadline = new DataDeadline(rt.config.timeouts.client_idle, rt.config.timeouts.client_min_data_rate, () => {
    // smtp-server's idle timer got there first, or the data is already in.
    if (st.deadline || st.gone.signal.aborted || stream.readableEnded) return;
    st.deadline = 'client_data_rate';
    rt.metrics.deadlines.inc({ deadline: 'client_data_rate' });
    rt.log.info({ event: 'deadline', deadline: 'client_data_rate', id: ctx.id }, 'client too slow in DATA; session closed');
    const r = replyError('MV_CLIENT_TIMEOUT');
    hooks.kick(r.responseCode, r.message);
  });
  const client: Client = {
    data: stream,
    gone: st.gone.signal,
    onBytes: (n) => deadline.add(n),
    onReceived: () => deadline.stop(),
    hasGone: () => {
      // The input fails only when the client's connection went away in DATA;
      // smtp-server tells onClose a moment later, so mark it here.
      if (stream.destroyed && !stream.readableEnded) st.gone.abort();
      return st.gone.signal.aborted;
    },
    facts: () => ({ client: st.clientPseudonym, rcptCount: session.envelope.rcptTo.length, deadline: st.deadline }),
  };
  // RFC 8689: REQUIRETLS on MAIL FROM (only advertised when a verified path is configured, server.ts).
  ctx.requireTls.esmtp = Boolean((session.envelope as { requireTLS?: boolean }).requireTLS);
  // Connections step `escalate` opened to tls.secure_next_hop: closed once the message is done.
  const opened: NextHopConnection[] = [];
  const ports = transactionPorts(rt, session, st, opened);
  const outcome = await runMessage({
    ctx,
    services: rt,
    client,
    ...ports,
    spool: new Spool(spoolDir(rt.config.state_dir), ctx.id, rt.config.limits.spool_memory),
    timings: new Map(),
    trail: [],
    tooBig: false,
  }).finally(() => {
    for (const c of opened) c.quit();
  });
  const answer = (r: { code: number; text: string }) => (r.code >= 200 && r.code < 300 ? r.text : smtpError(r.code, r.text));
  if (rt.config.listen_protocol === 'lmtp') return recipientReplies(outcome, ctx, session.envelope.rcptTo.length).map(answer);
  const reply = answer(replyFor(outcome, ctx));
  if (typeof reply === 'string') return reply;
  throw reply;
}

/** The transaction ports for the lifecycle: the mirrored next hop (relay), or one per recipient domain (mx). */
function transactionPorts(rt: Runtime, session: SMTPServerSession, st: SessionState, opened: NextHopConnection[]): { delivery: Delivery; escalation?: Escalation; parts?: DeliveryPart[] } {
  if (rt.config.delivery.mode !== 'mx') {
    const delivery = sessionDelivery(rt, st);
    return { delivery, escalation: sessionEscalation(rt, session, st, delivery, opened) };
  }
  // One part per recipient domain (one over SMTP); the steps settle each (pipeline/parts.ts).
  return { delivery: NO_DELIVERY, parts: st.mx ? mxParts(rt, session, st.mx) : [] };
}

/** No open transaction: every recipient was refused at RCPT, or its connection died before DATA. */
const NO_DELIVERY: Delivery = {
  usable: () => false,
  send: async () => ({ ok: false, failure: 'lost' }),
};

/** The session's open next-hop transaction as the lifecycle's Delivery port; failures are logged and counted here. */
function sessionDelivery(rt: Runtime, st: SessionState): Delivery {
  return {
    usable(): boolean {
      const hop = st.hop;
      if (hop?.usable && st.accepted > 0) return true;
      if (hop?.failureCause) rt.hopEvents.failure(hop.failureCause, 'DATA');
      return false;
    },
    async send(body: Readable & AsyncIterable<Buffer>, signal: AbortSignal): Promise<DeliveryResult> {
      return sendData(rt, st.hop!, body, signal);
    },
  };
}
