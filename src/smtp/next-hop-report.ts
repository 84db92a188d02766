/*
 * Makes next-hop trouble visible (issue: a next hop that is down used to
 * leave no trace): each connection or command failure and each deadline hit
 * becomes one log line and a counter. The lines name the step and the kind,
 * never an address: the next hop's own reply texts may quote one.
 */
import type { Logger } from '../observability/log';
import type { Metrics } from '../observability/metrics';
import type { NextHopError } from './next-hop';
import type { NextHopObserver } from './next-hop-pool';

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
  };
}
