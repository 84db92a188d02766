/*
 * A message with one transaction per recipient domain (mx mode; message.ts,
 * DeliveryPart): how its parts' outcomes become the message's, and how a
 * part whose TLS policy failed at RCPT time is settled once the message's
 * header is known. Used by steps escalate and deliver.
 */
import { tlsRequirement } from './tls-requirement';
import type { DeliveryPart, Message } from './message';
import type { Reply } from './reply';
import type { Outcome } from './lifecycle';

/** One part: its own outcome (so SMTP mode's replies and labels stay as in relay mode); several: per_recipient. */
export function combine(parts: readonly DeliveryPart[], ends: readonly Exclude<Outcome, { kind: 'per_recipient' }>[]): Outcome {
  if (parts.length === 1) return ends[0];
  return { kind: 'per_recipient', parts: parts.map((p, i) => ({ label: p.label, recipients: p.recipients, outcome: ends[i] })) };
}

/**
 * Parts whose recipient-side policy (DANE, MTA-STS) failed: `TLS-Required:
 * No` (RFC 8689 5) lets them go at level may, unless the message must have
 * verified TLS anyway (a require_tls rule, REQUIRETLS), which the header
 * never relaxes. Every other such part ends with the policy's own reply.
 */
export async function settlePolicyFailures(m: Message, parts: DeliveryPart[]): Promise<void> {
  const { ctx, services } = m;
  const relax = ctx.requireTls.relaxed && !tlsRequirement(ctx);
  for (const p of [...parts]) {
    const f = p.policyFailure;
    if (!f || p.ended) continue;
    p.policyFailure = undefined;
    if (!relax) {
      // A flagged message that finds no verified channel follows tls.escalation_failure, as in step escalate.
      const bounce = tlsRequirement(ctx) && ctx.config.tls.escalation_failure === 'bounce';
      p.ended = bounce ? { kind: 'tls_required_bounced' } : { kind: 'recipient_tls_policy', code: f.code };
      continue;
    }
    const r = await f.relax();
    services.log.info({ event: 'tls_required_no', id: ctx.id, domain: p.label, result: r.ok ? 'relaxed' : r.failure }, 'TLS-Required: No: recipient domain policy set aside (RFC 8689 5)');
    if (r.ok) {
      p.delivery = r.delivery;
      if (r.refused.length) split(parts, p, r.refused);
    } else if (r.failure === 'refused') {
      // The MX has not seen these recipients before: its refusal of all of them is final as it is; anything less is retried.
      p.ended = r.every && r.reply.code >= 500 ? { kind: 'next_hop_refused', reply: r.reply } : { kind: 'next_hop_deferred', reply: r.reply };
    } else if (r.failure === 'client_gone') p.ended = { kind: 'client_gone' };
    else p.ended = { kind: 'recipient_tls_policy', code: f.code };
  }
}

/** LMTP: the recipients the MX refused leave the part with their own replies; the rest are delivered. */
function split(parts: DeliveryPart[], p: DeliveryPart, refused: { recipient: number; reply: Reply }[]): void {
  const out = new Set(refused.map((x) => x.recipient));
  p.recipients = p.recipients.filter((i) => !out.has(i));
  for (const { recipient, reply } of refused) {
    parts.push({ label: p.label, recipients: [recipient], delivery: p.delivery, ended: reply.code >= 500 ? { kind: 'next_hop_refused', reply } : { kind: 'next_hop_deferred', reply } });
  }
}
