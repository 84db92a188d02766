/*
 * One message, from the client's DATA to our reply (guarantees 1-3):
 *  1. pass 1 streams the client's bytes through the analyzers into the spool,
 *     under the DATA deadline (data-deadline.ts); past max_message_size the
 *     spool stops and the rest is read and dropped, so nothing over the limit
 *     touches the disk and the 552 5.3.4 comes after the client's dot;
 *  2. decide;
 *  3. pass 2 streams the spooled original through the rewriters to the next
 *     hop; its reply to the final "." becomes our reply: 250 only after its
 *     250, its 5xx passed back unchanged, anything else 451.
 * Every message ends, whatever the client does: one log line, one `verdict`
 * audit event, one messages_total increment, the spool disposed. A client
 * that leaves before the dot went downstream aborts the next hop's
 * transaction (the connection is closed, never reset); one that leaves after
 * it has the next hop's answer recorded (outcome `delivered_client_gone`:
 * its retry may bring a duplicate, RFC 1047).
 * The resolved value is the text of our 250; a rejection is an SmtpError.
 * Logs and events carry pseudonyms only. A failure to write the audit event
 * is logged and does not change the reply.
 */
import { randomBytes } from 'node:crypto';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { newContext, type MessageContext } from '../pipeline/context';
import { pass2Stream, runDecide, runPass1, type StageTimings } from '../pipeline/run';
import { Spool, spoolDir } from '../pipeline/spool';
import { DataDeadline } from './data-deadline';
import { HEADER_SIZE_REASON } from '../pipeline/header-scan';
import { NextHopError } from './next-hop';
import { RedactionError } from '../pipeline/redact';
import { passThrough, replyError, ruleReply, smtpError, type SmtpError } from './errors';
import { formatReply, replyClass, replyStatus, type Reply } from './reply';
import type { SessionState } from './session-state';
import type { Runtime } from '../runtime';
import type { QuarantineEnvelope, SmtpParams } from '../quarantine/meta';
import { clientAttributes, forwardedQueueId } from './envelope';
import { SMTP_ACTOR } from '../audit/actor';
import { readHeaderBlock, subjectTokens } from '../sar/subjects';

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

interface Outcome {
  verdict: string;
  reply?: Reply;
  error?: SmtpError;
  text?: string;
  /** The client left before anything was committed downstream. */
  aborted?: boolean;
}

/** What the message handler may do to its client's session. */
export interface MessageHooks {
  /** Answers the client and closes its connection (a deadline). */
  kick(code: number, text: string): void;
}

/** The per-message outcome in one word, for the log line and the audit event. */
function outcomeOf(o: Outcome, clientGone: boolean): string {
  if (o.aborted) return 'aborted';
  const code = o.error ? o.error.responseCode : 250;
  if (code >= 500) return 'rejected';
  if (code >= 400) return 'deferred';
  const base = o.verdict === 'quarantine' ? 'quarantined' : 'delivered';
  return clientGone ? `${base}_client_gone` : base;
}

function errorFields(err: unknown): { message: string; code?: string } {
  return { message: (err as Error).message, code: (err as { code?: string }).code };
}

export async function handleMessage(rt: Runtime, stream: SMTPServerDataStream, session: SMTPServerSession, st: SessionState, hooks: MessageHooks): Promise<string> {
  rt.metrics.inFlight.inc();
  try {
    return await handleOne(rt, stream, session, st, hooks);
  } finally {
    rt.metrics.inFlight.dec();
  }
}

async function handleOne(rt: Runtime, stream: SMTPServerDataStream, session: SMTPServerSession, st: SessionState, hooks: MessageHooks): Promise<string> {
  const ctx = newContext(newMessageId(), rt.config, rt.rules(), rt.pseudonyms);
  const timings: StageTimings = new Map();
  const spool = new Spool(spoolDir(rt.config.state_dir), ctx.id, rt.config.limits.spool_memory);
  // Envelope subjects until pass 1 has the header addresses too.
  const people: People = { subjects: messageSubjects(rt, session) };
  let outcome: Outcome;
  try {
    outcome = await runMessage(rt, ctx, stream, spool, session, st, timings, people, hooks);
  } catch (err) {
    // The input fails only when the client's connection went away in DATA;
    // smtp-server tells onClose a moment later, so mark it here.
    if (stream.destroyed && !stream.readableEnded) st.gone.abort();
    if (st.gone.signal.aborted) {
      outcome = { verdict: 'aborted', aborted: true, error: replyError('MV_NEXT_HOP_LOST') };
    } else {
      rt.log.error({ id: ctx.id, err: errorFields(err) }, 'message handling failed');
      outcome = { verdict: 'error', error: replyError('MV_INTERNAL') };
    }
  } finally {
    spool.destroy();
    await spool.dispose();
  }
  const clientGone = st.gone.signal.aborted;
  const result = outcomeOf(outcome, clientGone);
  const m = rt.metrics;
  m.messages.inc({ verdict: outcome.verdict });
  m.bytes.inc({ direction: 'in' }, ctx.size);
  for (const [stage, seconds] of timings) m.stageDuration.observe({ stage }, seconds);
  for (const rule of ctx.verdict.rules) m.ruleHits.inc({ rule, action: ctx.rules.rules.find((r) => r.id === rule)?.action ?? 'unknown' });
  const code = outcome.error ? outcome.error.responseCode : 250;
  rt.log.info(
    {
      event: 'message',
      id: ctx.id,
      queue_id: forwardedQueueId(session), // Postfix's XFORWARD IDENT; undefined (left out) without one
      client: st.clientPseudonym,
      from: session.envelope.mailFrom ? rt.pseudonyms.token('addr', session.envelope.mailFrom.address) : undefined,
      rcpt_count: session.envelope.rcptTo.length,
      size: ctx.size,
      verdict: outcome.verdict,
      outcome: result,
      rules: ctx.verdict.rules,
      next_hop_reply: outcome.reply ? replyStatus(outcome.reply) : null,
      reply: clientGone ? null : code,
      ...(st.deadline ? { deadline: st.deadline } : {}),
      duration_ms: Date.now() - ctx.receivedAt,
    },
    'message',
  );
  try {
    await rt.audit.append({
      event: 'verdict',
      actor: SMTP_ACTOR,
      id: ctx.id,
      subjects: people.subjects,
      details: {
        verdict: outcome.verdict,
        outcome: result,
        rules: ctx.verdict.rules,
        queue_id: forwardedQueueId(session),
        ...(ctx.unscannable.length ? { reasons: ctx.unscannable } : {}),
        reply: clientGone ? null : code,
        reply_class: clientGone ? null : replyClass(code),
        ...(outcome.reply ? { next_hop_reply: replyStatus(outcome.reply) } : {}),
        rcpt_count: session.envelope.rcptTo.length,
        size: ctx.size,
      },
    });
  } catch (err) {
    rt.log.error({ id: ctx.id, err: errorFields(err) }, 'audit write failed');
  }
  if (outcome.error) throw outcome.error;
  return outcome.text!;
}

async function runMessage(
  rt: Runtime,
  ctx: MessageContext,
  stream: SMTPServerDataStream,
  spool: Spool,
  session: SMTPServerSession,
  st: SessionState,
  timings: StageTimings,
  people: People,
  hooks: MessageHooks,
): Promise<Outcome> {
  const { config } = rt;
  // The client's final dot: from here the drain lets the message finish.
  stream.once('end', () => (st.received = true));
  const deadline = new DataDeadline(config.timeouts.client_idle, config.timeouts.client_min_data_rate, () => {
    // smtp-server's idle timer got there first, or the data is already in.
    if (st.deadline || st.gone.signal.aborted || stream.readableEnded) return;
    st.deadline = 'client_data_rate';
    rt.metrics.deadlines.inc({ deadline: 'client_data_rate' });
    rt.log.info({ event: 'deadline', deadline: 'client_data_rate', id: ctx.id }, 'client too slow in DATA; session closed');
    const r = replyError('MV_CLIENT_TIMEOUT');
    hooks.kick(r.responseCode, r.message);
  });
  const t1 = now();
  let pass1;
  try {
    pass1 = await runPass1(ctx, stream, spool, timings, { maxBytes: config.limits.max_message_size, onBytes: (n) => deadline.add(n) });
  } finally {
    deadline.stop();
    timings.set('pass1', now() - t1);
  }
  if (pass1.tooBig) return { verdict: 'too_big', error: replyError('MV_TOO_BIG') };
  if (pass1.failure) {
    const code = (pass1.failure as NodeJS.ErrnoException).code;
    rt.log.error({ id: ctx.id, err: errorFields(pass1.failure) }, 'pass 1 failed; the message is not accepted');
    return { verdict: 'error', error: replyError(code === 'ENOSPC' || code === 'EDQUOT' ? 'MV_NO_SPACE' : 'MV_INTERNAL') };
  }
  try {
    const header = await readHeaderBlock(spool.read(), rt.config.limits.max_header_size);
    people.subjects = messageSubjects(rt, session, header);
  } catch (err) {
    // The index is best effort: the envelope subjects stay.
    rt.log.warn({ id: ctx.id, err: { message: (err as Error).message } }, 'could not read header addresses for the subject index');
  }

  runDecide(ctx, timings);
  for (const reason of ctx.unscannable) rt.metrics.unscannable.inc({ reason });
  if (ctx.notExtracted) rt.metrics.unscannable.inc({ reason: 'not_extracted' }, ctx.notExtracted);
  // Nothing is committed anywhere for a client that has already left.
  if (st.gone.signal.aborted) return { verdict: 'aborted', aborted: true, error: replyError('MV_NEXT_HOP_LOST') };

  switch (ctx.verdict.action) {
    case 'reject':
      return { verdict: 'reject', error: ruleReply(ctx.verdict.reply, 'MV_POLICY_REJECT') };
    case 'tempfail':
      return { verdict: 'tempfail', error: ruleReply(ctx.verdict.reply, 'MV_POLICY_TEMPFAIL') };
    case 'quarantine':
      return hold(rt, ctx, spool, session, people);
  }
  // A header we cannot see whole cannot be anonymised: never deliver it.
  if (ctx.unscannable.includes(HEADER_SIZE_REASON)) return { verdict: 'too_big', error: replyError('MV_HEADER_TOO_LARGE') };
  return deliver(rt, ctx, spool, session, st, timings, people);
}

/** The subject index of the message being handled (sar/subjects.ts). */
interface People {
  subjects: string[];
}

/**
 * The subject index of a message (sar/subjects.ts): keyed pseudonyms of the
 * envelope sender and recipients, plus the addresses in the From, To, Cc,
 * Reply-To... fields once pass 1 has the header. The same tokens go into
 * the quarantine entry and the verdict event, so `sar` finds both.
 */
export function messageSubjects(rt: Runtime, session: SMTPServerSession, header?: Buffer): string[] {
  const env = session.envelope;
  return subjectTokens(rt.pseudonyms, { from: env.mailFrom ? env.mailFrom.address : '', rcpts: env.rcptTo.map((r) => r.address) }, header);
}

const MAIL_PARAM_NAMES = ['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID'];
const RCPT_PARAM_NAMES = ['NOTIFY', 'ORCPT'];

function keepParams(args: unknown, names: string[]): SmtpParams {
  const out: SmtpParams = {};
  const a = (args && typeof args === 'object' ? args : {}) as Record<string, unknown>;
  for (const n of names) {
    const v = a[n];
    if (v === true || (typeof v === 'string' && !/[\r\n]/.test(v))) out[n] = v;
  }
  return out;
}

/** The envelope as received, for `quarantine release` (stored only inside the encrypted metadata). */
export function heldEnvelope(session: SMTPServerSession): QuarantineEnvelope {
  const env = session.envelope;
  const client: Record<string, string | false> = {};
  for (const [k, v] of clientAttributes(session)) client[k] = v === false || v === undefined || v === null || v === '' ? false : String(v);
  return {
    from: env.mailFrom ? env.mailFrom.address : '',
    rcpts: env.rcptTo.map((r) => r.address),
    params: env.mailFrom ? keepParams(env.mailFrom.args, MAIL_PARAM_NAMES) : {},
    rcptParams: env.rcptTo.map((r) => keepParams(r.args, RCPT_PARAM_NAMES)),
    client,
  };
}

/** Quarantine: 250 only once the entry is durable (file, rename, directory fsync'd). */
async function hold(rt: Runtime, ctx: MessageContext, spool: Spool, session: SMTPServerSession, people: People): Promise<Outcome> {
  const { pseudonyms } = rt;
  const env = session.envelope;
  const from = env.mailFrom ? env.mailFrom.address : '';
  const rcpts = env.rcptTo.map((r) => r.address);
  try {
    await rt.quarantine.put(
      {
        id: ctx.id,
        receivedAt: new Date(ctx.receivedAt).toISOString(),
        size: ctx.size,
        verdict: ctx.unscannable.length && !ctx.verdict.rules.length ? 'unscannable' : 'quarantine',
        rules: ctx.verdict.rules,
        reasons: ctx.unscannable,
        from: pseudonyms.token('addr', from),
        rcpts: rcpts.map((r) => pseudonyms.token('addr', r)),
        findings: ctx.findings.map(({ rule, detector, count, part, offset, scope }) => ({ rule, detector, count, part, offset, scope })),
        subjects: people.subjects,
        envelope: heldEnvelope(session),
      },
      spool.read(),
    );
  } catch (err) {
    rt.log.error({ id: ctx.id, err: errorFields(err) }, 'quarantine write failed');
    const code = (err as NodeJS.ErrnoException).code;
    return { verdict: 'error', error: replyError(code === 'ENOSPC' || code === 'EDQUOT' ? 'MV_NO_SPACE' : 'MV_QUARANTINE_UNAVAILABLE') };
  }
  rt.metrics.quarantineMessages.inc();
  return { verdict: 'quarantine', text: `2.0.0 Ok: held in quarantine as ${ctx.id}` };
}

async function deliver(rt: Runtime, ctx: MessageContext, spool: Spool, session: SMTPServerSession, st: SessionState, timings: StageTimings, people: People): Promise<Outcome> {
  const hop = st.hop;
  const verdict = ctx.verdict.action;
  if (!hop?.usable || st.accepted === 0) {
    if (hop?.failureCause) rt.hopEvents.failure(hop.failureCause, 'DATA');
    return { verdict: 'error', error: replyError('MV_NEXT_HOP_LOST') };
  }
  const t2 = now();
  let reply: Reply;
  try {
    reply = await hop.data(pass2Stream(ctx, spool, timings), st.gone.signal);
    rt.metrics.bytes.inc({ direction: 'out' }, hop.dataBytes);
  } catch (err) {
    const e = err instanceof NextHopError ? err : new NextHopError('aborted', (err as Error).message, { cause: err });
    rt.hopEvents.failure(e, 'DATA');
    if (e.kind === 'client_gone') return { verdict: 'aborted', aborted: true, error: replyError('MV_NEXT_HOP_LOST') };
    rt.metrics.nextHopReplies.inc({ class: e.kind === 'timeout' || e.kind === 'write_timeout' ? 'timeout' : 'connection' });
    if (e.kind === 'aborted') {
      rt.log.error({ id: ctx.id, err: { message: e.message } }, 'pass 2 failed; next hop transaction aborted');
      // A value that could not be redacted must not leave: hold the original instead.
      if (e.cause instanceof RedactionError) {
        ctx.unscannable.push('redact_failed');
        rt.metrics.unscannable.inc({ reason: 'redact_failed' });
        return hold(rt, ctx, spool, session, people);
      }
      return { verdict: 'error', error: replyError('MV_INTERNAL') };
    }
    return { verdict: 'error', error: replyError(e.kind === 'timeout' || e.kind === 'write_timeout' ? 'MV_NEXT_HOP_TIMEOUT' : 'MV_NEXT_HOP_LOST') };
  } finally {
    timings.set('pass2', now() - t2);
  }
  rt.metrics.nextHopReplies.inc({ class: replyClass(reply.code) });
  if (reply.code >= 200 && reply.code < 300) {
    return { verdict, reply, text: `2.0.0 Ok: queued as ${ctx.id}; next hop said: ${formatReply(reply)}` };
  }
  if (reply.code >= 500) return { verdict: 'error', reply, error: passThrough(reply) };
  // 4xx, or a nonsense code: the client keeps the message and retries.
  const enhanced = reply.enhanced?.startsWith('4.') ? reply.enhanced : '4.4.0';
  return { verdict: 'error', reply, error: smtpError(451, `${enhanced} Next hop deferred the message: ${formatReply(reply)}`) };
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}
