/*
 * After step `log`: one `event: message` line per message, with pseudonyms
 * only (guarantee 6), Postfix's queue id so an operator can follow a message
 * from Postfix's log into ours, and `reply: null` when the client had gone.
 */
import { nextHopReplyOf, outcomeWord, replyFor, verdictLabel } from '../outcome-reply';
import { replyStatus } from '../reply';
import type { AfterStep } from '../message';
import { tlsRequirement } from '../tls-requirement';

export const afterLog: AfterStep = async (m, outcome) => {
  const { ctx } = m;
  const gone = m.client.gone.aborted;
  const facts = m.client.facts();
  const hopReply = nextHopReplyOf(outcome);
  const log = m.services.log;
  if (ctx.subjectsPartial) log.warn({ id: ctx.id }, 'could not read header addresses for the subject index');
  log.debug({ event: 'lifecycle', id: ctx.id, steps: m.trail, end: outcome.kind }, 'message lifecycle');
  log.info(
    {
      event: 'message',
      id: ctx.id,
      queue_id: ctx.queueId, // undefined (left out) without XFORWARD IDENT
      client: facts.client,
      from: ctx.envelope ? m.services.pseudonyms.token('addr', ctx.envelope.from) : undefined,
      rcpt_count: facts.rcptCount,
      size: ctx.size,
      verdict: verdictLabel(outcome, ctx),
      outcome: outcomeWord(outcome, ctx, gone),
      rules: ctx.verdict.rules,
      ...(tlsRequirement(ctx) ? { tls: 'verified-required', tls_path: ctx.tlsPath ?? null } : {}),
      next_hop_reply: hopReply ? replyStatus(hopReply) : null,
      reply: gone ? null : replyFor(outcome, ctx).code,
      ...(facts.deadline ? { deadline: facts.deadline } : {}),
      duration_ms: Date.now() - ctx.receivedAt,
    },
    'message',
  );
};
