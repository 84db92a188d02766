/*
 * Makes next-hop trouble visible (issue: a next hop that is down used to
 * leave no trace): each connection or command failure and each deadline hit
 * becomes one log line and a counter. The lines name the step and the kind,
 * never an address: the next hop's own reply texts may quote one.
 *
 * Each connection attempt's TLS outcome is one `event: tls` line (the next
 * hop as host:port: in relay mode it is our own infrastructure, never a
 * recipient's) and one mailveil_tls_outbound_total{policy,result}.
 */
import type { Logger } from '../observability/log';
import type { Metrics } from '../observability/metrics';
import type { NextHopError } from './next-hop';
import type { NextHopObserver } from './next-hop-pool';
import type { TlsOutcome } from './next-hop-tls';

export function nextHopReport(log: Logger, metrics: Metrics): NextHopObserver {
  // A dead connection is noticed by every later user of it: report it once.
  const reported = new WeakSet<NextHopError>();
  return {
    failure(err: NextHopError, step: string) {
      if (reported.has(err)) return;
      reported.add(err);
      metrics.nextHopFailures.inc({ kind: err.kind });
      if (err.deadline) metrics.deadlines.inc({ deadline: err.deadline });
      // Our client leaving is the client's business, not a next-hop fault.
      const level = err.kind === 'client_gone' ? 'info' : 'warn';
      log[level]({ event: 'next_hop_failure', step, kind: err.kind, ...(err.deadline ? { deadline: err.deadline } : {}), reason: err.message }, 'next hop failure');
    },
    violation(what: string) {
      log.error({ event: 'next_hop_protocol_violation', what }, 'next hop broke the SMTP protocol; connection destroyed');
    },
    recovered() {
      log.info({ event: 'next_hop_recovered' }, 'next hop answers again');
    },
    tls(o: TlsOutcome) {
      metrics.tlsOutbound.inc({ policy: o.level, result: o.result });
      const failed = o.result !== 'ok' && o.result !== 'downgraded';
      log[failed ? 'warn' : 'info'](
        {
          event: 'tls',
          next_hop: o.nextHop,
          policy_source: o.source,
          tls_level: o.level,
          result: o.result,
          protocol: o.protocol ?? null,
          cipher: o.cipher ?? null,
          verified: o.verified ?? false,
          ...(o.reason ? { reason: o.reason } : {}),
        },
        failed ? 'next hop TLS does not meet the policy' : 'next hop TLS',
      );
    },
  };
}
