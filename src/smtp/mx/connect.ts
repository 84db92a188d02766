/*
 * A connection to the recipient domain's MX, under the domain's TLS policy
 * (tls/policy.ts): each address in attemptOrder() in turn, until one greets,
 * says EHLO and meets its host's TLS level. A host that fails its TLS level
 * is passed over like one that is down (Postfix does the same); what the
 * client is told when none is left says which it was, TLS (4.7.x) before
 * unreachable (4.4.1), never to whom.
 *
 * Every attempt is one `event: tls` log line (the MX host as a pseudonym,
 * the recipient domain in clear, protocol, cipher, policy source, result),
 * one mailveil_tls_outbound_total{policy,result} and one TLS-RPT session.
 * Port 25 always (RFC 5321); tests bind 127.0.0.x:25.
 */
import { NextHopConnection, NextHopError, type NextHopOptions } from '../next-hop';
import { tlsReplyCode, type TlsOutcome } from '../next-hop-tls';
import { attemptOrder, type Attempt } from './attempts';
import { targetTls } from './target-tls';
import { rptRecord } from './tlsrpt-record';
import type { DomainPolicy } from '../../tls/policy';
import type { ReplyCode } from '../../errors';
import type { SecureContext } from 'node:tls';
import type { Pseudonymiser } from '../../privacy/pseudonym';
import type { Logger } from '../../observability/log';
import type { Metrics } from '../../observability/metrics';
import type { TlsRptStore } from '../../tlsrpt/store';

export const MX_PORT = 25;

export interface ConnectDeps {
  base: Pick<NextHopOptions, 'helo' | 'connectTimeout' | 'commandTimeout' | 'writeTimeout' | 'dataTimeout'>;
  secureContext: SecureContext;
  pseudonyms: Pseudonymiser;
  log: Logger;
  metrics: Metrics;
  tlsrpt: TlsRptStore;
  /** Port override for nothing but a test that cannot bind 25 (never configurable). */
  port?: number;
  random?: () => number;
  onViolation(what: string): void;
}

export type MxConnect = { ok: true; conn: NextHopConnection; attempt: Attempt } | { ok: false; code: ReplyCode; reason: string };

export async function connectToDomain(policy: DomainPolicy, deps: ConnectDeps): Promise<MxConnect> {
  const attempts = attemptOrder(policy.mx, deps.random);
  let tlsFailure: ReplyCode | undefined;
  let reason = 'no MX host could be tried';
  for (const a of attempts) {
    const tls = targetTls(a.target, policy.domain, deps.secureContext);
    const opts: NextHopOptions = {
      ...deps.base,
      host: a.ip,
      port: deps.port ?? MX_PORT,
      tls,
      onViolation: deps.onViolation,
      onTls: (o) => report(policy, a, o, deps),
    };
    try {
      return { ok: true, conn: await NextHopConnection.open(opts), attempt: a };
    } catch (err) {
      const e = err instanceof NextHopError ? err : new NextHopError('connect', (err as Error).message);
      if (e.tls) tlsFailure ??= tlsReplyCode(e.tls.level, e.tls.result);
      reason = e.message;
      deps.log.info({ event: 'mx_attempt_failed', domain: policy.domain, mx: deps.pseudonyms.token('host', a.target.host), policy_source: a.target.source, tls_level: a.target.level, kind: e.kind, result: e.tls?.result ?? e.kind }, 'MX host not usable; trying the next');
    }
  }
  return { ok: false, code: tlsFailure ?? 'MV_MX_UNREACHABLE', reason };
}

function report(policy: DomainPolicy, a: Attempt, o: TlsOutcome, deps: ConnectDeps): void {
  deps.metrics.tlsOutbound.inc({ policy: policyLabel(a.target.source, o.level), result: o.result });
  const failed = o.result !== 'ok' && o.result !== 'downgraded';
  deps.log[failed ? 'warn' : 'info'](
    {
      event: 'tls',
      domain: policy.domain,
      mx: deps.pseudonyms.token('host', a.target.host),
      policy_source: a.target.source,
      tls_level: o.level,
      result: o.result,
      protocol: o.protocol ?? null,
      cipher: o.cipher ?? null,
      verified: o.verified ?? false,
      ...(o.reason ? { reason: o.reason } : {}),
    },
    failed ? 'MX TLS does not meet the policy' : 'MX TLS',
  );
  const rec = rptRecord(policy, a.target, a.ip, o);
  if (rec) deps.tlsrpt.record(rec);
}

/** The metric's `policy` label: the source where it names one (dane, mta-sts), else the level. */
export function policyLabel(source: string, level: string): string {
  if (source === 'mta-sts') return 'mta-sts';
  if (level === 'dane' || level === 'dane-only') return 'dane';
  return level;
}
