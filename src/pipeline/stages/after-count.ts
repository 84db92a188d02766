/*
 * After step `count`: the message's metrics. Rule hits are labelled with the
 * action of the rule set the message was judged by (ctx.rules), never the
 * live one: a reload between decide and here must not move a hit to another
 * action. Unscannable reasons are counted once decide has seen them.
 */
import { verdictLabel } from '../outcome-reply';
import type { AfterStep } from '../message';

export const afterCount: AfterStep = async (m, outcome) => {
  const { ctx } = m;
  const metrics = m.services.metrics;
  metrics.messages.inc({ verdict: verdictLabel(outcome, ctx) });
  metrics.bytes.inc({ direction: 'in' }, ctx.size);
  for (const [stage, seconds] of m.timings) metrics.stageDuration.observe({ stage }, seconds);
  const actions = new Map(ctx.rules.rules.map((r) => [r.id, r.action]));
  for (const rule of ctx.verdict.rules) metrics.ruleHits.inc({ rule, action: actions.get(rule) ?? 'unknown' });
  if (m.trail.includes('decide')) {
    for (const reason of ctx.unscannable) metrics.unscannable.inc({ reason });
    if (ctx.notExtracted) metrics.unscannable.inc({ reason: 'not_extracted' }, ctx.notExtracted);
  }
};
