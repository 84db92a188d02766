/*
 * What the SMTP handlers share for the life of the process. `rules` is read
 * once per message, so a reload swaps the set between messages, never within.
 */
import type { Config } from './config/load';
import type { RuleSet } from './rules/types';
import type { Pseudonymiser } from './privacy/pseudonym';
import type { Metrics } from './observability/metrics';
import type { Logger } from './observability/log';
import type { NextHopPool, NextHopObserver } from './smtp/next-hop-pool';
import type { QuarantineStore } from './quarantine/store';
import type { AuditLog } from './audit/log';
import type { MxDestinations } from './smtp/mx/destinations';
import type { PolicyServices } from './smtp/mx/policy-services';

export interface Runtime {
  config: Config;
  rules(): RuleSet;
  pseudonyms: Pseudonymiser;
  metrics: Metrics;
  log: Logger;
  pool: NextHopPool;
  /** Where next-hop failures are logged and counted (also by the session handlers). */
  hopEvents: NextHopObserver;
  /** Messages between DATA and their log line; the drain waits for every one. */
  inflight: Set<Promise<unknown>>;
  quarantine: QuarantineStore;
  /** One `verdict` event per message; admin events come from the CLI / API. */
  audit: AuditLog;
  /** delivery.mode mx: the recipient domains' policies and transactions. */
  mx?: { policies: PolicyServices; destinations: MxDestinations };
  /** Set when SIGTERM arrives: no new transactions are started. */
  draining: boolean;
}
