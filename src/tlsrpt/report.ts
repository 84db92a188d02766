/*
 * The RFC 8460 aggregate report (section 4.4) for one policy domain and one
 * UTC day, built from the merged counters (store.ts readDay()). The JSON
 * key names are the RFC's, byte for byte; test/unit/tlsrpt-report.test.ts
 * validates the output against a JSON Schema transcribed from 4.4.
 *
 *  - date-range: the whole UTC day, 00:00:00Z to 23:59:59Z (as in the RFC's
 *    Appendix B example; 4.1 asks for a full UTC day).
 *  - report-id: `<day>T00:00:00Z_<policy domain>@<reporter>` where the
 *    reporter is our host name: the same day and domain give the same id
 *    when printed again, and two mailveil hosts reporting on one domain
 *    give two ids.
 *  - policies: one entry per distinct policy seen that day (an MTA-STS
 *    policy that changed mid-day, TLSA records per MX...). `policy-string`
 *    and `mx-host` are left out when empty (no-policy-found).
 *  - failure-details: one per distinct detail, most sessions first; failed
 *    sessions past counts.ts's MAX_FAILURE_ROWS follow as one row per result
 *    type with no host fields. summary counts are exact either way.
 */
import type { DayCounts, DomainCounts, PolicyCounts } from './counts';
import type { PolicyType, ResultType } from './types';

export interface Rfc8460FailureDetail {
  'result-type': ResultType;
  'sending-mta-ip'?: string;
  'receiving-mx-hostname'?: string;
  'receiving-mx-helo'?: string;
  'receiving-ip'?: string;
  'failed-session-count': number;
  'failure-reason-code'?: string;
}

export interface Rfc8460Policy {
  policy: {
    'policy-type': PolicyType;
    'policy-string'?: string[];
    'policy-domain': string;
    'mx-host'?: string[];
  };
  summary: {
    'total-successful-session-count': number;
    'total-failure-session-count': number;
  };
  'failure-details'?: Rfc8460FailureDetail[];
}

export interface Rfc8460Report {
  'organization-name': string;
  'date-range': { 'start-datetime': string; 'end-datetime': string };
  'contact-info': string;
  'report-id': string;
  policies: Rfc8460Policy[];
}

export interface ReportIdentity {
  /** `organization-name`. */
  organization: string;
  /** `contact-info`: an address of the reporting organisation (a role), never a user's. */
  contact: string;
  /** Our host name: the part of `report-id` after the `@`. */
  reporter: string;
}

/** The report for one domain of a day's counts, or undefined when that domain has no sessions. */
export function buildReport(counts: DayCounts, domain: string, id: ReportIdentity): Rfc8460Report | undefined {
  const d = counts.domains.get(domain);
  const policies = d ? policyReports(domain, d) : [];
  if (policies.length === 0) return undefined;
  return {
    'organization-name': id.organization,
    'date-range': { 'start-datetime': `${counts.day}T00:00:00Z`, 'end-datetime': `${counts.day}T23:59:59Z` },
    'contact-info': id.contact,
    'report-id': `${counts.day}T00:00:00Z_${domain}@${id.reporter}`,
    policies,
  };
}

/** Every domain of the day with sessions, in name order. */
export function reportDomains(counts: DayCounts): string[] {
  return [...counts.domains.keys()].filter((d) => policyReports(d, counts.domains.get(d)!).length > 0).sort();
}

function policyReports(domain: string, d: DomainCounts): Rfc8460Policy[] {
  return [...d.policies.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, p]) => policyReport(domain, p))
    .filter((p): p is Rfc8460Policy => p !== undefined);
}

function policyReport(domain: string, p: PolicyCounts): Rfc8460Policy | undefined {
  const rows = [...p.failures.values()];
  const failed = rows.reduce((n, r) => n + r.count, 0) + [...p.overflow.values()].reduce((n, c) => n + c, 0);
  if (p.successful + failed === 0) return undefined;
  // Key order as in RFC 8460 4.4.
  const policy: Rfc8460Policy['policy'] = {
    'policy-type': p.policy.type,
    ...(p.policy.strings.length > 0 ? { 'policy-string': [...p.policy.strings] } : {}),
    'policy-domain': domain,
    ...(p.policy.mxHosts.length > 0 ? { 'mx-host': [...p.policy.mxHosts] } : {}),
  };
  const out: Rfc8460Policy = {
    policy,
    summary: { 'total-successful-session-count': p.successful, 'total-failure-session-count': failed },
  };
  if (failed > 0) {
    const details: Rfc8460FailureDetail[] = rows
      .map((r) => ({ key: JSON.stringify(r), r }))
      .sort((a, b) => b.r.count - a.r.count || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map(({ r }) => {
        // Key order as in RFC 8460 4.4.
        const f: Partial<Rfc8460FailureDetail> = { 'result-type': r.type };
        if (r.sendingMtaIp !== undefined) f['sending-mta-ip'] = r.sendingMtaIp;
        if (r.receivingMxHostname !== undefined) f['receiving-mx-hostname'] = r.receivingMxHostname;
        if (r.receivingMxHelo !== undefined) f['receiving-mx-helo'] = r.receivingMxHelo;
        if (r.receivingIp !== undefined) f['receiving-ip'] = r.receivingIp;
        f['failed-session-count'] = r.count;
        if (r.failureReasonCode !== undefined) f['failure-reason-code'] = r.failureReasonCode;
        return f as Rfc8460FailureDetail;
      });
    for (const [type, n] of [...p.overflow].sort(([a], [b]) => (a < b ? -1 : 1))) details.push({ 'result-type': type, 'failed-session-count': n });
    out['failure-details'] = details;
  }
  return out;
}
