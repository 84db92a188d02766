/*
 * One outbound session as RFC 8460 counts it: the policy that applied to
 * the recipient domain (tlsa, sts, or no-policy-found) and the session's
 * result. MTA-STS in mode testing is reported like enforce, with the
 * failures enforce would have had (RFC 8461 5: testing exists to be
 * reported on) while delivery went ahead at the default level.
 */
import type { DomainPolicy, MxTarget } from '../../tls/policy';
import type { TlsRptPolicy, TlsRptRecord } from '../../tlsrpt/types';
import type { TlsOutcome } from '../next-hop-tls';

function tlsaText(r: { usage: number; selector: number; matchingType: number; data: Buffer }): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

export function rptPolicy(policy: DomainPolicy, t: MxTarget): TlsRptPolicy {
  if (t.source === 'dane' && (t.dane.state === 'usable' || t.dane.state === 'no-usable')) return { type: 'tlsa', strings: t.dane.records.map(tlsaText), mxHosts: [] };
  const sts = policy.sts;
  if (sts?.kind === 'policy' && sts.policy.mode !== 'none') {
    const p = sts.policy;
    return { type: 'sts', strings: ['version: STSv1', `mode: ${p.mode}`, ...p.mx.map((m) => `mx: ${m}`), `max_age: ${p.maxAge}`], mxHosts: p.mx };
  }
  return { type: 'no-policy-found', strings: [], mxHosts: [] };
}

/** The record for one connection attempt to `ip` (an MX address), or undefined for a plain-text session nothing asked to secure. */
export function rptRecord(policy: DomainPolicy, t: MxTarget, ip: string, o: TlsOutcome): TlsRptRecord | undefined {
  const p = rptPolicy(policy, t);
  const where = { receivingMxHostname: t.host, receivingIp: ip };
  if (o.level === 'none') return undefined;
  if (o.result !== 'ok' && o.result !== 'downgraded') return { policyDomain: policy.domain, policy: p, result: { type: o.result, ...where } };
  if (o.result === 'downgraded') return { policyDomain: policy.domain, policy: p, result: { type: 'starttls-not-supported', ...where } };
  if (p.type === 'sts' && t.stsMatch === false) return { policyDomain: policy.domain, policy: p, result: { type: 'validation-failure', ...where, failureReasonCode: 'mx-not-in-policy' } };
  if (p.type === 'sts' && !o.verified) return { policyDomain: policy.domain, policy: p, result: { type: 'sts-webpki-invalid', ...where } };
  return { policyDomain: policy.domain, policy: p, result: 'success' };
}
