/*
 * What mx delivery asks before it connects anywhere, built once per
 * process: DNS through the validating resolver (dns.servers), the MTA-STS
 * resolver with its cache in state_dir (refreshed in the background, and
 * counted by mailveil_mta_sts_cache_entries), the TLS-RPT counters, and the
 * static map of the live rule set. policyFor() is tls/policy.ts over these.
 */
import { DnsClient } from '../../dns/client';
import { DnsLookups } from '../../dns/lookups';
import { StsCache } from '../../mta-sts/cache';
import { StsResolver } from '../../mta-sts/resolve';
import { stsLookups } from '../../mta-sts/dns';
import { TlsRptStore } from '../../tlsrpt/store';
import { resolveDomainPolicy, type DomainPolicy } from '../../tls/policy';
import { staticPolicy, type TlsLevel } from '../../tls/levels';
import type { Config } from '../../config/load';
import type { RuleSet } from '../../rules/types';
import type { Logger } from '../../observability/log';
import type { Metrics } from '../../observability/metrics';

/** How often due MTA-STS policies are looked at (each has its own jittered refresh time). */
const STS_REFRESH_TICK_MS = 60_000;

export interface PolicyServices {
  lookups: DnsLookups;
  sts?: StsResolver;
  tlsrpt: TlsRptStore;
  /** `relaxed`: DANE and MTA-STS set aside, default level may (TLS-Required: No, RFC 8689 5); the static map still applies. */
  policyFor(domain: string, relaxed?: boolean): Promise<DomainPolicy>;
  /** Opens the MTA-STS cache and starts its refresh loop. */
  start(): Promise<void>;
  /** Stops the loop and writes the TLS-RPT counters out. */
  close(): Promise<void>;
}

/**
 * TLS-Required: No sets aside the recipient's DANE and MTA-STS, never the
 * operator's own floor: encrypt, verify and secure stay; dane becomes may
 * and dane-only encrypt (STARTTLS still required, no DANE to check against).
 */
export function relaxedLevel(level: TlsLevel): TlsLevel {
  if (level === 'dane') return 'may';
  if (level === 'dane-only') return 'encrypt';
  return level;
}

export function policyServices(config: Config, rules: () => RuleSet, log: Logger, metrics: Metrics): PolicyServices {
  const lookups = new DnsLookups(new DnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout }));
  const cache = new StsCache(config.state_dir);
  const sts = config.tls.mta_sts
    ? new StsResolver({
        cache,
        ...stsLookups(lookups),
        ...(config.tls.ca_file ? { ca: config.tls.ca_file.pem } : {}),
        onEvent: (e) => log.warn({ ...e }, 'MTA-STS'),
      })
    : undefined;
  const tlsrpt = new TlsRptStore(config.state_dir, { onError: (err) => log.warn({ event: 'tlsrpt_flush_failed', err: { message: (err as Error).message } }, 'TLS-RPT counters not written; retried') });
  let stopRefresh: (() => void) | undefined;
  let gauge: NodeJS.Timeout | undefined;
  const countEntries = () => metrics.mtaStsCacheEntries.set(cache.all().length);
  return {
    lookups,
    sts,
    tlsrpt,
    async policyFor(domain: string, relaxed = false): Promise<DomainPolicy> {
      const policy = await resolveDomainPolicy(domain, {
        lookups,
        staticPolicy: (d) => staticPolicy(rules().tlsPolicy, d),
        sts: relaxed ? undefined : sts,
        dane: relaxed ? false : config.tls.dane,
        defaultLevel: relaxed ? relaxedLevel(config.tls.default_level) : config.tls.default_level,
        maxMx: config.delivery.max_mx,
      });
      if (sts) countEntries();
      return policy;
    },
    async start() {
      if (!sts) return;
      await cache.open();
      countEntries();
      stopRefresh = sts.startRefreshLoop(STS_REFRESH_TICK_MS);
      gauge = setInterval(countEntries, STS_REFRESH_TICK_MS);
      gauge.unref();
    },
    async close() {
      stopRefresh?.();
      if (gauge) clearInterval(gauge);
      await tlsrpt.close();
    },
  };
}
