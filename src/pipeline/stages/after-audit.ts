/*
 * After step `audit`: one `verdict` event per message, carrying the subject
 * index so `mailveil sar` finds it. A failed write is logged and does not
 * change the reply: the message's fate is already decided and, for a 250,
 * already committed downstream.
 */
import { SMTP_ACTOR } from '../../audit/actor';
import { replyClass, replyStatus } from '../reply';
import { nextHopReplyOf, outcomeWord, replyFor, verdictLabel } from '../outcome-reply';
import type { AfterStep } from '../message';

export const afterAudit: AfterStep = async (m, outcome) => {
  const { ctx } = m;
  const gone = m.client.gone.aborted;
  const code = replyFor(outcome, ctx).code;
  const hopReply = nextHopReplyOf(outcome);
  try {
    await m.services.audit.append({
      event: 'verdict',
      actor: SMTP_ACTOR,
      id: ctx.id,
      subjects: ctx.subjects,
      details: {
        verdict: verdictLabel(outcome, ctx),
        outcome: outcomeWord(outcome, ctx, gone),
        rules: ctx.verdict.rules,
        queue_id: ctx.queueId,
        ...(ctx.unscannable.length ? { reasons: ctx.unscannable } : {}),
        reply: gone ? null : code,
        reply_class: gone ? null : replyClass(code),
        ...(hopReply ? { next_hop_reply: replyStatus(hopReply) } : {}),
        rcpt_count: m.client.facts().rcptCount,
        size: ctx.size,
      },
    });
  } catch (err) {
    m.services.log.error({ id: ctx.id, err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'audit write failed');
  }
};
