/*
 * The reply an outcome gives (lifecycle.ts, OUTCOMES), and the one-word
 * `outcome` and `verdict` labels the log line, the audit event and
 * messages_total carry. Replies never carry a matched value, an address or a
 * host name; a passed-back next-hop reply is the next hop's own text.
 */
import { CATALOGUE, smtpReplyOf } from '../errors';
import { formatReply, passedBack } from './reply';
import { OUTCOMES, type Outcome } from './lifecycle';
import type { MessageContext } from './context';

export interface FinalReply {
  code: number;
  /** The text after the code, enhanced status code first. */
  text: string;
}

export function replyFor(outcome: Outcome, ctx: MessageContext): FinalReply {
  const src = OUTCOMES[outcome.kind].reply;
  switch (src.from) {
    case 'queued': {
      const r = (outcome as Extract<Outcome, { kind: 'delivered' }>).reply;
      return { code: 250, text: `2.0.0 Ok: queued as ${ctx.id}; next hop said: ${formatReply(r)}` };
    }
    case 'held':
      return { code: 250, text: `2.0.0 Ok: held in quarantine as ${ctx.id}` };
    case 'catalogue':
      return smtpReplyOf(src.code);
    case 'rule': {
      // A rule's reply ("550 5.7.1 ..."), validated by the rule schema.
      const written = (outcome as { ruleReply?: string }).ruleReply;
      const m = written ? /^([45]\d\d) (.+)$/.exec(written) : null;
      return m ? { code: Number(m[1]), text: m[2] } : smtpReplyOf(src.fallback);
    }
    case 'next-hop': {
      return passedBack((outcome as Extract<Outcome, { kind: 'next_hop_refused' }>).reply);
    }
    case 'outcome-code':
      return smtpReplyOf((outcome as Extract<Outcome, { kind: 'recipient_tls_policy' }>).code);
    case 'per-recipient': {
      // The message as a whole (the log's `reply`): 250 when any domain took it, else the first refusal.
      const parts = (outcome as Extract<Outcome, { kind: 'per_recipient' }>).parts;
      const replies = parts.map((p) => replyFor(p.outcome, ctx));
      if (parts.length === 1) return replies[0];
      const ok = replies.find((r) => r.code < 300);
      return ok ? { code: 250, text: `2.0.0 Ok: per-recipient replies for ${ctx.id}` } : replies[0];
    }
    case 'deferred': {
      const r = (outcome as Extract<Outcome, { kind: 'next_hop_deferred' }>).reply;
      const own = CATALOGUE['MV_NEXT_HOP_DEFERRED'].smtp;
      const enhanced = r.enhanced?.startsWith('4.') ? r.enhanced : own.enhanced;
      return { code: own.code, text: `${enhanced} ${own.text}: ${formatReply(r)}` };
    }
  }
}

/** The `verdict` label: messages_total's, the log line's and the audit event's. */
export function verdictLabel(outcome: Outcome, ctx: MessageContext): string {
  const v = OUTCOMES[outcome.kind].verdict;
  return v === 'action' ? ctx.verdict.action : v;
}

/** The outcome in one word, as an operator reads it: aborted, rejected, deferred, quarantined, delivered, *_client_gone. */
export function outcomeWord(outcome: Outcome, ctx: MessageContext, clientGone: boolean): string {
  if (outcome.kind === 'client_gone') return 'aborted';
  if (outcome.kind === 'per_recipient') {
    const words = new Set(outcome.parts.map((p) => outcomeWord(p.outcome, ctx, clientGone)));
    return words.size === 1 ? [...words][0] : 'per_recipient';
  }
  const { code } = replyFor(outcome, ctx);
  if (code >= 500) return 'rejected';
  if (code >= 400) return 'deferred';
  const base = outcome.kind === 'held' ? 'quarantined' : 'delivered';
  return clientGone ? `${base}_client_gone` : base;
}

/** LMTP: one reply per accepted recipient, in envelope order. */
export function recipientReplies(outcome: Outcome, ctx: MessageContext, rcptCount: number): FinalReply[] {
  if (outcome.kind !== 'per_recipient') return Array.from({ length: rcptCount }, () => replyFor(outcome, ctx));
  const out: FinalReply[] = Array.from({ length: rcptCount }, () => smtpReplyOf('MV_INTERNAL'));
  for (const p of outcome.parts) {
    const r = replyFor(p.outcome, ctx);
    for (const i of p.recipients) out[i] = r;
  }
  return out;
}

/** The next hop's reply, if the outcome has one. */
export function nextHopReplyOf(outcome: Outcome): { code: number; enhanced?: string; text: string } | undefined {
  return 'reply' in outcome ? outcome.reply : undefined;
}
