/*
 * What an MTA-STS answer means for a domain's candidate MX hosts (RFC 8461
 * 4 and 5), in the manner of Postfix's smtp_tls_enforce_sts_mx_patterns:
 * under `enforce`, mailveil connects only to MX hosts that match a policy
 * pattern, and to each of them only over STARTTLS with a certificate that
 * verifies (WebPKI) for that MX host name.
 *
 *   answer               plan
 *   ------------------   ------------------------------------------------------
 *   none, mode none      any: every MX, no MTA-STS requirement
 *   mode testing         testing: every MX; those outside the patterns are
 *                        reported (validation-failure), delivery goes on
 *   mode enforce         enforce: only matching MX hosts, each with verified TLS
 *                        for its own name; none left -> defer, validation-failure
 *   defer (cache-error)  defer: the cache could not be read, so no MX is tried
 *
 * RFC 8460 has no type of its own for "MX not in the policy"; it is a
 * `validation-failure` (the general type), the policy itself being valid.
 * A failure to validate is never permanent here (RFC 8461 5: defer, do not
 * bounce). DANE comes first: a host with usable TLSA records is judged by
 * DANE alone, and this plan is not consulted for it (RFC 8461 2).
 */
import { mxInPolicy } from './policy';
import type { StsAnswer } from './resolve';
import type { StsFailure, StsPolicy } from './types';

export type MxPlan =
  | { kind: 'any'; hosts: string[] }
  | { kind: 'testing'; hosts: string[]; mismatched: string[]; failure?: StsFailure }
  | { kind: 'enforce'; hosts: string[]; skipped: string[]; tls: 'verify-mx-name' }
  | { kind: 'defer'; failure: StsFailure | undefined; detail: string };

/** May mailveil connect to this MX host under the policy? (testing and none: yes.) */
export function mxAllowed(policy: StsPolicy, host: string): boolean {
  return policy.mode !== 'enforce' || mxInPolicy(policy, host);
}

/** The MX hosts to try, in the given (preference) order, and what MTA-STS requires of each. */
export function planMx(answer: StsAnswer, hosts: readonly string[]): MxPlan {
  if (answer.kind === 'defer') return { kind: 'defer', failure: answer.failure, detail: `mta-sts cache: ${answer.detail}` };
  if (answer.kind === 'none' || answer.policy.mode === 'none') return { kind: 'any', hosts: [...hosts] };
  const policy = answer.policy;
  const matching = hosts.filter((h) => mxInPolicy(policy, h));
  const mismatched = hosts.filter((h) => !mxInPolicy(policy, h));
  if (policy.mode === 'testing') {
    return mismatched.length
      ? { kind: 'testing', hosts: [...hosts], mismatched, failure: { type: 'validation-failure', detail: `${mismatched.length} MX host(s) outside the policy's mx patterns` } }
      : { kind: 'testing', hosts: [...hosts], mismatched };
  }
  if (matching.length === 0) {
    return { kind: 'defer', failure: { type: 'validation-failure', detail: 'no MX host matches the policy' }, detail: 'mta-sts enforce: no MX host matches the policy' };
  }
  return { kind: 'enforce', hosts: matching, skipped: mismatched, tls: 'verify-mx-name' };
}
