/*
 * mx mode's share of the Runtime, built once at start: the policy services
 * and the destination transactions over them. The time each policy lookup
 * takes is logged at debug with its deciding source (the closing figure
 * issue 10 asks for is measured by bench/, not here).
 */
import { MxDestinations } from './destinations';
import { mxSecureContext } from './target-tls';
import { policyServices } from './policy-services';
import type { Runtime } from '../../runtime';

export function mxRuntime(rt: Omit<Runtime, 'mx'>): NonNullable<Runtime['mx']> {
  const { config, log, metrics } = rt;
  const policies = policyServices(config, rt.rules, log, metrics);
  const destinations = new MxDestinations(
    policies,
    {
      base: {
        helo: config.hostname,
        connectTimeout: config.timeouts.next_hop_connect,
        commandTimeout: config.timeouts.next_hop_command,
        writeTimeout: config.timeouts.next_hop_write,
        dataTimeout: config.timeouts.next_hop_data,
      },
      secureContext: mxSecureContext(config.tls.ca_file),
      pseudonyms: rt.pseudonyms,
      log,
      metrics,
      tlsrpt: policies.tlsrpt,
      onViolation: (what) => rt.hopEvents.violation(what),
    },
    {
      concurrency: config.delivery.destination_concurrency,
      slotWait: config.timeouts.next_hop_connect,
      maxIdle: config.next_hop_pool.max_idle,
      idleTimeout: config.next_hop_pool.idle_timeout,
    },
    (domain, ms, policy) => log.debug({ event: 'tls_policy', domain, ms: Math.round(ms * 10) / 10, policy_source: policy.source, tls_level: policy.level, outcome: policy.outcome.kind }, 'recipient domain policy'),
  );
  return { policies, destinations };
}
