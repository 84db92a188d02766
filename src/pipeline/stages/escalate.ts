/*
 * Step `escalate`: a message that may leave only over verified TLS (issue
 * 10, DESIGN "require_tls"; RFC 8689 REQUIRETLS) gets a verified path, or
 * none and the reply tls.escalation_failure picks. Which messages:
 *  - a fired rule with `require_tls: verified` (monitor rules never bite);
 *  - REQUIRETLS on MAIL FROM, or a `Require-TLS-ESMTP: yes` header field.
 * `TLS-Required: No` (RFC 8689 section 5) relaxes recipient-side policy
 * only; it relaxes neither of these.
 *
 * The mirrored connection was opened at MAIL FROM, before the content was
 * known. It serves only when it was verified (tls.next_hop level verify or
 * secure); otherwise tls.secure_next_hop gets a new connection at level
 * secure with the envelope replayed. REQUIRETLS goes on MAIL FROM wherever
 * the chosen hop advertises it; a message that arrived with REQUIRETLS on
 * MAIL FROM has no path to a hop that does not advertise it (RFC 8689
 * 4.2.1). No path: 451 4.7.5 (defer) or 550 5.7.10 (bounce).
 */
import { tlsRequirement } from '../tls-requirement';
import { combine, settlePolicyFailures } from '../parts';
import type { Delivery, Escalation, EscalationFacts, Message, RequireTlsMode, Step } from '../message';
import type { Outcome } from '../lifecycle';

export { tlsRequirement };

export type EscalationPlan = { path: 'mirrored' | 'secure_next_hop'; requireTls: RequireTlsMode } | { path: 'none' };

/**
 * The path for a message that needs verified TLS. REQUIRETLS received on
 * MAIL FROM makes REQUIRETLS support required of the hop; a rule or the
 * Require-TLS-ESMTP header asks for it only where offered (the header stays
 * in the message for the hop after us).
 */
export function planEscalation(f: EscalationFacts & { esmtpRequireTls: boolean }): EscalationPlan {
  const requireTls: RequireTlsMode = f.esmtpRequireTls ? 'required' : 'if-offered';
  const vouched = requireTls === 'if-offered' || f.mirroredNameVouched !== false;
  if (f.mirroredVerified && vouched && (requireTls === 'if-offered' || f.mirroredOffersRequireTls)) return { path: 'mirrored', requireTls };
  if (f.secureNextHop) return { path: 'secure_next_hop', requireTls };
  return { path: 'none' };
}

export const escalate: Step = async (m) => {
  if (!m.parts) {
    const r = await escalateOne(m, m.escalation);
    if ('end' in r) return r;
    m.delivery = r.delivery;
    return { next: 'deliver' };
  }
  // mx mode: each recipient domain finds its own verified path, or its recipients get the refusal.
  if (m.parts.length === 0) return { end: { kind: 'next_hop_lost' } };
  await settlePolicyFailures(m, m.parts);
  for (const p of m.parts) {
    if (p.ended) continue;
    const r = await escalateOne(m, p.escalation);
    if ('end' in r) p.ended = r.end;
    else p.delivery = r.delivery;
  }
  if (m.parts.every((p) => p.ended)) return { end: combine(m.parts, m.parts.map((p) => p.ended!)) };
  return { next: 'deliver' };
};

type PartEnd = Exclude<Outcome, { kind: 'per_recipient' }>;

async function escalateOne(m: Message, esc: Escalation | undefined): Promise<{ delivery: Delivery } | { end: PartEnd }> {
  const { ctx, services } = m;
  // In mx mode mailveil is the last hop that can honour it: Postfix 3.11's header means REQUIRETLS (RFC 8689 via a content filter).
  const esmtpRequireTls = ctx.requireTls.esmtp || (ctx.config.delivery.mode === 'mx' && ctx.requireTls.header);
  const plan = esc ? planEscalation({ ...esc.facts(), esmtpRequireTls }) : ({ path: 'none' } as const);
  const count = (result: string) => services.metrics.tlsEscalations.inc({ result });
  if (plan.path !== 'none') {
    const r = await esc!.open(plan.path, plan.requireTls);
    if (r.ok) {
      ctx.tlsPath = plan.path;
      count(plan.path);
      return { delivery: r.delivery };
    }
    if (r.failure === 'client_gone' || m.client.hasGone()) return { end: { kind: 'client_gone' } };
    if (r.failure === 'refused') {
      // The hop took the envelope once already (mirrored at MAIL/RCPT): a refusal now
      // is never turned into a bounce of recipients we accepted; the client retries.
      count('refused');
      return { end: { kind: 'next_hop_deferred', reply: r.reply } };
    }
    if (r.failure === 'lost') {
      count('lost');
      return { end: { kind: 'next_hop_lost' } };
    }
  }
  services.log.warn({ event: 'tls_escalation', id: ctx.id, tls: 'verified-required', path: plan.path, result: ctx.config.tls.escalation_failure }, 'no verified TLS path for a message that requires one');
  const bounce = ctx.config.tls.escalation_failure === 'bounce';
  count(bounce ? 'bounced' : 'deferred');
  return { end: { kind: bounce ? 'tls_required_bounced' : 'tls_required_deferred' } };
}
