/*
 * Step `route`: the verdict picks the branch. reject and tempfail answer
 * with the rule's reply; quarantine holds; everything else is delivered
 * (redacted, tagged or as is) by pass 2, through step `escalate` when it
 * may leave only over verified TLS. Nothing is committed anywhere for
 * a client that has already left.
 */
import { HEADER_SIZE_REASON } from './header-scan';
import { tlsRequirement } from '../tls-requirement';
import type { Step } from '../message';

export const route: Step = async (m) => {
  const { ctx } = m;
  if (m.client.hasGone()) return { end: { kind: 'client_gone' } };
  switch (ctx.verdict.action) {
    case 'reject':
      return { end: { kind: 'policy_reject', ruleReply: ctx.verdict.reply } };
    case 'tempfail':
      return { end: { kind: 'policy_tempfail', ruleReply: ctx.verdict.reply } };
    case 'quarantine':
      return { next: 'hold' };
  }
  // A header we cannot see whole cannot be anonymised: never deliver it.
  if (ctx.unscannable.includes(HEADER_SIZE_REASON)) return { end: { kind: 'header_too_big' } };
  // Only over verified TLS (a require_tls rule fired, or REQUIRETLS): escalate.ts.
  return { next: tlsRequirement(ctx) ? 'escalate' : 'deliver' };
};
