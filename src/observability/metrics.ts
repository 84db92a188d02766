/*
 * Every metric mailveil exports, in one registry. Labels are low-cardinality
 * by construction (verdict, direction, stage, rule id, action, reply class,
 * reason); no address, host or value is ever a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly messages = new Counter({
    name: 'mailveil_messages_total',
    help: 'Messages by final verdict (pass, tag, redact, monitor, quarantine, reject, tempfail, too_big, error)',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'mailveil_bytes_total',
    help: 'Message bytes received from clients (in) and sent to the next hop (out)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly ruleHits = new Counter({
    name: 'mailveil_rule_hits_total',
    help: 'Messages in which a rule fired, by rule id and action',
    labelNames: ['rule', 'action'] as const,
    registers: [this.registry],
  });
  readonly stageDuration = new Histogram({
    name: 'mailveil_stage_duration_seconds',
    help: 'Time spent per message in each pipeline stage or pass',
    labelNames: ['stage'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly nextHopReplies = new Counter({
    name: 'mailveil_next_hop_replies_total',
    help: 'Replies from the next hop to the final dot by class (2xx, 4xx, 5xx) or failure (timeout, connection)',
    labelNames: ['class'] as const,
    registers: [this.registry],
  });
  readonly unscannable = new Counter({
    name: 'mailveil_unscannable_total',
    help: 'Messages or parts that could not be fully scanned, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly quarantineMessages = new Gauge({
    name: 'mailveil_quarantine_messages',
    help: 'Messages currently held in quarantine',
    registers: [this.registry],
  });
  readonly rulesReload = new Counter({
    name: 'mailveil_rules_reload_total',
    help: 'Rule set reloads by result (ok, error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly tlsOutbound = new Counter({
    name: 'mailveil_tls_outbound_total',
    help: 'Outbound TLS per connection attempt by policy (none, may, encrypt, dane, mta-sts, verify, secure) and result (ok, downgraded, or an RFC 8460 failure type)',
    labelNames: ['policy', 'result'] as const,
    registers: [this.registry],
  });
  readonly tlsEscalations = new Counter({
    name: 'mailveil_tls_escalations_total',
    help: 'Messages that may leave only over verified TLS, by result (mirrored, secure_next_hop, deferred, bounced, refused, lost)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly mtaStsCacheEntries = new Gauge({
    name: 'mailveil_mta_sts_cache_entries',
    help: 'MTA-STS policies in the cache (state_dir/mta-sts) that are still in force',
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'mailveil_messages_in_flight',
    help: 'Messages between DATA and their final log line; back to 0 whenever mailveil is idle',
    registers: [this.registry],
  });
  readonly nextHopFailures = new Counter({
    name: 'mailveil_next_hop_failures_total',
    help: 'Next-hop connections or commands that failed, by kind (connect, timeout, write_timeout, closed, protocol, aborted, client_gone, tls)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly deadlines = new Counter({
    name: 'mailveil_deadlines_total',
    help: 'Waits that hit their deadline (client_idle, client_data_rate, next_hop_connect, next_hop_command, next_hop_write, next_hop_data, drain)',
    labelNames: ['deadline'] as const,
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'mailveil_connections',
    help: 'Open client SMTP connections',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Make the always-present series visible at zero from the start, so a
    // dashboard can tell "nothing happened" from "not scraped".
    for (const direction of ['in', 'out']) this.bytes.inc({ direction }, 0);
    for (const result of ['ok', 'error']) this.rulesReload.inc({ result }, 0);
    this.quarantineMessages.set(0);
    this.inFlight.set(0);
    this.mtaStsCacheEntries.set(0);
  }
}
