/*
 * Step `deliver`: pass 2 streams the spooled original through the rewriters
 * into the next hop's open transaction (message.ts, Delivery). Its reply to
 * the final "." becomes ours: 250 only after its 250, its 5xx passed back
 * unchanged, anything else a 451 (lifecycle.ts, OUTCOMES). A value that
 * could not be redacted must not leave: the transaction is aborted and the
 * original is held instead (deliver -> hold).
 *
 * With several transactions (mx mode over LMTP, one per recipient domain)
 * each gets its own pass 2 run, in parallel, and its own outcome. Pass 2
 * is deterministic over the same spool and rule set, so a redaction that
 * fails fails in every run, before any of them sends its final dot.
 */
import { pass2Stream } from '../run';
import { RedactionError } from '../../redact/error';
import { replyClass } from '../reply';
import type { Delivery, Message, Step, StepResult } from '../message';
import type { PartOutcome } from '../lifecycle';
import { combine, settlePolicyFailures } from '../parts';

export const deliver: Step = async (m) => {
  if (!m.parts) return deliverOne(m, m.delivery);
  if (m.parts.length === 0) return { end: { kind: 'next_hop_lost' } };
  await settlePolicyFailures(m, m.parts);
  const results = await Promise.all(m.parts.map(async (p) => (p.ended ? { end: p.ended } : deliverOne(m, p.delivery))));
  if (results.some((r) => 'next' in r)) return { next: 'hold' };
  return { end: combine(m.parts, results.map((r) => (r as { end: PartOutcome['outcome'] }).end)) };
};

async function deliverOne(m: Message, delivery: Delivery): Promise<StepResult> {
  const { ctx, services } = m;
  if (!delivery.usable()) return { end: { kind: 'next_hop_lost' } };
  const start = process.hrtime.bigint();
  let result;
  try {
    result = await delivery.send(pass2Stream(ctx, m.spool, m.timings), m.client.gone);
  } finally {
    m.timings.set('pass2', Number(process.hrtime.bigint() - start) / 1e9);
  }
  const replies = services.metrics.nextHopReplies;
  if (result.ok) {
    services.metrics.bytes.inc({ direction: 'out' }, result.bytes);
    const { reply } = result;
    replies.inc({ class: replyClass(reply.code) });
    if (reply.code >= 200 && reply.code < 300) return { end: { kind: 'delivered', reply } };
    if (reply.code >= 500) return { end: { kind: 'next_hop_refused', reply } };
    // 4xx, or a nonsense code: the client keeps the message and retries.
    return { end: { kind: 'next_hop_deferred', reply } };
  }
  switch (result.failure) {
    case 'client_gone':
      return { end: { kind: 'client_gone' } };
    case 'timeout':
      replies.inc({ class: 'timeout' });
      return { end: { kind: 'next_hop_timeout' } };
    case 'lost':
      replies.inc({ class: 'connection' });
      return { end: { kind: 'next_hop_lost' } };
    case 'pass2':
      replies.inc({ class: 'connection' });
      services.log.error({ id: ctx.id, err: { message: (result.cause as Error)?.message } }, 'pass 2 failed; next hop transaction aborted');
      if (result.cause instanceof RedactionError) {
        if (!ctx.unscannable.includes('redact_failed')) ctx.unscannable.push('redact_failed');
        return { next: 'hold' };
      }
      return { end: { kind: 'internal' } };
  }
}
