/*
 * One message, from the client's DATA to our reply (guarantees 1-3):
 *  1. pass 1 streams the client's bytes through the analyzers into the spool;
 *  2. SIZE is enforced (552 5.3.4) once the data has ended, since smtp-server
 *     only flags `sizeExceeded` and keeps reading;
 *  3. decide;
 *  4. pass 2 streams the spooled original through the rewriters to the next
 *     hop; its reply to the final "." becomes our reply: 250 only after its
 *     250, its 5xx passed back unchanged, anything else 451.
 * The resolved value is the text of our 250; a rejection is an SmtpError.
 * One log line and one `verdict` audit event per message, with pseudonyms
 * only. The audit event is written before we reply; a failure to write it
 * is logged and does not change the reply (the message itself is already
 * delivered or durably held).
 */
import { randomBytes } from 'node:crypto';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { newContext, type MessageContext } from '../pipeline/context';
import { pass2Stream, runDecide, runPass1, type StageTimings } from '../pipeline/run';
import { Spool, spoolDir } from '../pipeline/spool';
import { HEADER_SIZE_REASON } from '../pipeline/header-scan';
import { NextHopError } from './next-hop';
import { RedactionError } from '../pipeline/redact';
import { passThrough, replyError, ruleReply, smtpError, type SmtpError } from './errors';
import { formatReply, replyClass, replyStatus, type Reply } from './reply';
import type { SessionState } from './session-state';
import type { Runtime } from '../runtime';
import type { QuarantineEnvelope, SmtpParams } from '../quarantine/meta';
import { clientAttributes } from './envelope';
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
}

export async function handleMessage(rt: Runtime, stream: SMTPServerDataStream, session: SMTPServerSession, st: SessionState): Promise<string> {
  const ctx = newContext(newMessageId(), rt.config, rt.rules(), rt.pseudonyms);
  const timings: StageTimings = new Map();
  const spool = new Spool(spoolDir(rt.config.state_dir), ctx.id, rt.config.limits.spool_memory);
  // Envelope subjects until pass 1 has the header addresses too.
  const people: People = { subjects: messageSubjects(rt, session) };
  let outcome: Outcome;
  try {
    outcome = await runMessage(rt, ctx, stream, spool, session, st, timings, people);
  } catch (err) {
    rt.log.error({ id: ctx.id, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'message handling failed');
    outcome = { verdict: 'error', error: replyError('INTERNAL') };
  } finally {
    await spool.dispose();
  }
  const m = rt.metrics;
  m.messages.inc({ verdict: outcome.verdict });
  m.bytes.inc({ direction: 'in' }, ctx.size);
  for (const [stage, seconds] of timings) m.stageDuration.observe({ stage }, seconds);
  for (const rule of ctx.verdict.rules) m.ruleHits.inc({ rule, action: rt.rules().rules.find((r) => r.id === rule)?.action ?? 'unknown' });
  rt.log.info(
    {
      id: ctx.id,
      client: st.clientPseudonym,
      from: session.envelope.mailFrom ? rt.pseudonyms.token('addr', session.envelope.mailFrom.address) : undefined,
      rcpt_count: session.envelope.rcptTo.length,
      size: ctx.size,
      verdict: outcome.verdict,
      rules: ctx.verdict.rules,
      next_hop_reply: outcome.reply ? replyStatus(outcome.reply) : null,
      reply: outcome.error ? outcome.error.responseCode : 250,
      duration_ms: Date.now() - ctx.receivedAt,
    },
    'message',
  );
  const code = outcome.error ? outcome.error.responseCode : 250;
  try {
    await rt.audit.append({
      event: 'verdict',
      actor: SMTP_ACTOR,
      id: ctx.id,
      subjects: people.subjects,
      details: {
        verdict: outcome.verdict,
        rules: ctx.verdict.rules,
        ...(ctx.unscannable.length ? { reasons: ctx.unscannable } : {}),
        reply: code,
        reply_class: replyClass(code),
        ...(outcome.reply ? { next_hop_reply: replyStatus(outcome.reply) } : {}),
        rcpt_count: session.envelope.rcptTo.length,
        size: ctx.size,
      },
    });
  } catch (err) {
    rt.log.error({ id: ctx.id, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'audit write failed');
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
): Promise<Outcome> {
  const t1 = now();
  await runPass1(ctx, stream, spool, timings);
  timings.set('pass1', now() - t1);
  ctx.size = spool.size;
  try {
    const header = await readHeaderBlock(spool.read(), rt.config.limits.max_header_size);
    people.subjects = messageSubjects(rt, session, header);
  } catch (err) {
    // The index is best effort: the envelope subjects stay.
    rt.log.warn({ id: ctx.id, err: { message: (err as Error).message } }, 'could not read header addresses for the subject index');
  }

  if (stream.sizeExceeded) {
    return { verdict: 'too_big', error: replyError('TOO_BIG') };
  }
  runDecide(ctx, timings);
  for (const reason of ctx.unscannable) rt.metrics.unscannable.inc({ reason });
  if (ctx.notExtracted) rt.metrics.unscannable.inc({ reason: 'not_extracted' }, ctx.notExtracted);

  switch (ctx.verdict.action) {
    case 'reject':
      return { verdict: 'reject', error: ruleReply(ctx.verdict.reply, 'POLICY_REJECT') };
    case 'tempfail':
      return { verdict: 'tempfail', error: ruleReply(ctx.verdict.reply, 'POLICY_TEMPFAIL') };
    case 'quarantine':
      return hold(rt, ctx, spool, session, people);
  }
  // A header we cannot see whole cannot be anonymised: never deliver it.
  if (ctx.unscannable.includes(HEADER_SIZE_REASON)) return { verdict: 'too_big', error: replyError('HEADER_TOO_BIG') };
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
    rt.log.error({ id: ctx.id, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'quarantine write failed');
    return { verdict: 'error', error: replyError('INTERNAL') };
  }
  rt.metrics.quarantineMessages.inc();
  return { verdict: 'quarantine', text: `2.0.0 Ok: held in quarantine as ${ctx.id}` };
}

async function deliver(rt: Runtime, ctx: MessageContext, spool: Spool, session: SMTPServerSession, st: SessionState, timings: StageTimings, people: People): Promise<Outcome> {
  const hop = st.hop;
  const verdict = ctx.verdict.action;
  if (!hop?.usable || st.accepted === 0) return { verdict: 'error', error: replyError('NEXT_HOP_LOST') };
  const t2 = now();
  let reply: Reply;
  try {
    reply = await hop.data(pass2Stream(ctx, spool, timings));
    rt.metrics.bytes.inc({ direction: 'out' }, hop.dataBytes);
  } catch (err) {
    const kind = err instanceof NextHopError ? err.kind : 'aborted';
    rt.metrics.nextHopReplies.inc({ class: kind === 'timeout' ? 'timeout' : 'connection' });
    if (kind === 'aborted') {
      rt.log.error({ id: ctx.id, err: { message: (err as Error).message } }, 'pass 2 failed; next hop transaction aborted');
      // A value that could not be redacted must not leave: hold the original instead.
      if ((err as { cause?: unknown }).cause instanceof RedactionError) {
        ctx.unscannable.push('redact_failed');
        rt.metrics.unscannable.inc({ reason: 'redact_failed' });
        return hold(rt, ctx, spool, session, people);
      }
      return { verdict: 'error', error: replyError('INTERNAL') };
    }
    return { verdict: 'error', error: replyError(kind === 'timeout' ? 'NEXT_HOP_TIMEOUT' : 'NEXT_HOP_LOST') };
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
