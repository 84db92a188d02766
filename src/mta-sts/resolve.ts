/*
 * Which MTA-STS policy applies to a recipient domain now (RFC 8461 3 and
 * 5.1), and the proactive refresh of cached policies.
 *
 *   cache        TXT id            answer
 *   ----------   ---------------   ------------------------------------------
 *   in force     same id           the cached policy
 *   in force     other id          fetch; on failure the cached policy (+ failure)
 *   in force     none/invalid/temp the cached policy (a stripped TXT must not downgrade)
 *   none/expired id               fetch; on failure none (+ failure, for TLS-RPT)
 *   none/expired none/invalid/temp none
 *   unreadable   id                fetch; success repairs the entry; failure defers
 *   unreadable   none/invalid/temp defer (cache-error): never "no policy"
 *
 * "In force" is now < expires_at (fetched_at + max_age): an expired policy
 * is never used (RFC 8461 3.3). A fetched policy is stored under the TXT
 * id; a failure to store it is reported (onEvent) but the fetched policy
 * still answers.
 *
 * Refresh: each entry gets a refresh time when it is stored,
 *   lead       = min(max_age / 4, 1 day)
 *   refresh_at = expires_at - lead * (1 + U/2),  U uniform in [0, 1)
 * so a 7-day policy is fetched again 24 to 36 hours before it expires, and
 * many policies stored at once do not all come due at once. refresh() needs
 * a TXT id (the id a policy is stored under comes from DNS) and an
 * authenticated fetch: a TXT or fetch failure keeps the old entry until it
 * expires, and the domain is tried again after
 *   retry      = clamp(lead / 4, 1 min, 1 hour) * (1 + U/2)
 * Expired entries are purged by refreshAll().
 */
import { domainToASCII } from 'node:url';
import { fetchPolicy, type FetchOptions, type FetchResult } from './fetch';
import { StsCache, type StsCacheEntry } from './cache';
import { normaliseName } from './policy';
import { parseStsTxt } from './txt';
import type { StsFailure, StsPolicy, TxtLookup } from './types';

export type StsAnswer =
  | { kind: 'policy'; policy: StsPolicy; id: string; source: 'cache' | 'fetched'; expiresAt: number; failure?: StsFailure }
  | { kind: 'none'; failure?: StsFailure }
  | { kind: 'defer'; reason: 'cache-error'; detail: string; failure?: StsFailure };

export type RefreshResult =
  | { kind: 'refreshed'; entry: StsCacheEntry }
  | { kind: 'kept'; entry: StsCacheEntry; failure: StsFailure }
  | { kind: 'skipped'; detail: string };

/** What a caller may want to log (no addresses: only domains, ids and reasons). */
export type StsEvent =
  | { event: 'mta_sts_store_failed'; domain: string; detail: string }
  | { event: 'mta_sts_cache_error'; domain: string; detail: string }
  | { event: 'mta_sts_refresh_failed'; domain: string; detail: string };

export interface StsResolverOptions extends Partial<Omit<FetchOptions, 'lookup'>> {
  cache: StsCache;
  txt: TxtLookup;
  /** The host lookup for the policy host; needed unless `fetch` is given. */
  lookup?: FetchOptions['lookup'];
  /** Replaces the HTTPS fetch (tests, `tls check` dry runs). */
  fetch?: (domain: string) => Promise<FetchResult>;
  now?: () => number;
  random?: () => number;
  onEvent?: (e: StsEvent) => void;
}

const DAY_MS = 86_400_000;
const MIN_RETRY_MS = 60_000;
const MAX_RETRY_MS = 3_600_000;

export class StsResolver {
  private readonly cache: StsCache;
  private readonly txt: TxtLookup;
  private readonly fetch: (domain: string) => Promise<FetchResult>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly onEvent: (e: StsEvent) => void;
  private readonly inflight = new Map<string, Promise<StsAnswer>>();
  private readonly refreshing = new Map<string, Promise<RefreshResult>>();
  /** Domain -> epoch ms before which a failed refresh is not tried again. */
  private readonly retryAfter = new Map<string, number>();

  constructor(opts: StsResolverOptions) {
    this.cache = opts.cache;
    this.txt = opts.txt;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.onEvent = opts.onEvent ?? (() => undefined);
    if (opts.fetch) this.fetch = opts.fetch;
    else {
      const lookup = opts.lookup;
      if (!lookup) throw new Error('StsResolver needs lookup or fetch');
      this.fetch = (d) => fetchPolicy(d, { lookup, ca: opts.ca, timeoutMs: opts.timeoutMs, port: opts.port, maxBytes: opts.maxBytes });
    }
  }

  /** The policy for a recipient domain. Concurrent calls for one domain share one resolution. */
  policyFor(domain: string): Promise<StsAnswer> {
    const d = normaliseDomain(domain);
    if (d === undefined) return Promise.resolve({ kind: 'none' });
    let p = this.inflight.get(d);
    if (!p) {
      p = this.resolve(d).finally(() => this.inflight.delete(d));
      this.inflight.set(d, p);
    }
    return p;
  }

  private async resolve(domain: string): Promise<StsAnswer> {
    const cached = await this.cache.get(domain);
    const now = this.now();
    const live = cached.kind === 'hit' && cached.entry.expiresAt > now ? cached.entry : undefined;
    if (cached.kind === 'error') this.onEvent({ event: 'mta_sts_cache_error', domain, detail: cached.detail });

    const txt = await this.lookupId(domain);
    if (txt.kind !== 'ok') {
      if (live) return fromCache(live);
      if (cached.kind === 'error') return { kind: 'defer', reason: 'cache-error', detail: cached.detail };
      return txt.failure ? { kind: 'none', failure: txt.failure } : { kind: 'none' };
    }
    if (live && live.id === txt.id) return fromCache(live);

    const fetched = await this.fetch(domain);
    if (fetched.kind === 'failed') {
      if (live) return { ...fromCache(live), failure: fetched.failure };
      if (cached.kind === 'error') return { kind: 'defer', reason: 'cache-error', detail: cached.detail, failure: fetched.failure };
      return { kind: 'none', failure: fetched.failure };
    }
    const entry = await this.store(domain, txt.id, fetched);
    return { kind: 'policy', policy: entry.policy, id: entry.id, source: 'fetched', expiresAt: entry.expiresAt };
  }

  /** Domains whose refresh time has come (in force, not waiting out a failed try), soonest expiry first. */
  refreshDue(now = this.now()): string[] {
    return this.cache
      .all()
      .filter((e) => e.expiresAt > now && e.refreshAt <= now && (this.retryAfter.get(e.domain) ?? 0) <= now)
      .sort((a, b) => a.expiresAt - b.expiresAt)
      .map((e) => e.domain);
  }

  /** Fetches a cached domain's policy again; on any failure the old entry stays until it expires. */
  refresh(domain: string): Promise<RefreshResult> {
    const d = normaliseDomain(domain);
    if (d === undefined) return Promise.resolve({ kind: 'skipped', detail: 'not a domain name' });
    let p = this.refreshing.get(d);
    if (!p) {
      p = this.doRefresh(d).finally(() => this.refreshing.delete(d));
      this.refreshing.set(d, p);
    }
    return p;
  }

  private async doRefresh(domain: string): Promise<RefreshResult> {
    const cached = await this.cache.get(domain);
    if (cached.kind !== 'hit') return { kind: 'skipped', detail: cached.kind === 'miss' ? 'not cached' : cached.detail };
    const old = cached.entry;
    const txt = await this.lookupId(domain);
    const fetched: FetchResult | undefined = txt.kind === 'ok' ? await this.fetch(domain) : undefined;
    if (txt.kind === 'ok' && fetched?.kind === 'ok') {
      this.retryAfter.delete(domain);
      return { kind: 'refreshed', entry: await this.store(domain, txt.id, fetched) };
    }
    const failure: StsFailure =
      fetched?.kind === 'failed' ? fetched.failure : (txt.kind !== 'ok' && txt.failure) || { type: 'sts-policy-fetch-error', detail: 'no _mta-sts TXT record' };
    this.retryAfter.set(domain, this.now() + this.retryDelay(old));
    this.onEvent({ event: 'mta_sts_refresh_failed', domain, detail: failure.detail });
    return { kind: 'kept', entry: old, failure };
  }

  /** Purges expired entries, then refreshes every due one in turn. */
  async refreshAll(now = this.now()): Promise<RefreshResult[]> {
    await this.cache.purgeExpired(now).catch(() => undefined);
    for (const d of this.retryAfter.keys()) if (!this.cache.all().some((e) => e.domain === d)) this.retryAfter.delete(d);
    const out: RefreshResult[] = [];
    for (const d of this.refreshDue(now)) out.push(await this.refresh(d));
    return out;
  }

  /** Runs refreshAll() every intervalMs (unref'd); returns the stop function. */
  startRefreshLoop(intervalMs = 60_000): () => void {
    let running = false;
    const t = setInterval(() => {
      if (running) return;
      running = true;
      this.refreshAll()
        .catch(() => undefined)
        .finally(() => (running = false));
    }, intervalMs);
    t.unref();
    return () => clearInterval(t);
  }

  private async lookupId(domain: string): Promise<{ kind: 'ok'; id: string } | { kind: 'none'; failure?: StsFailure }> {
    let r: Awaited<ReturnType<TxtLookup>>;
    try {
      r = await this.txt(`_mta-sts.${domain}`);
    } catch {
      r = { kind: 'temp' }; // a lookup that throws is a temporary failure, never "no record"
    }
    if (r.kind === 'none') return { kind: 'none' };
    if (r.kind === 'temp') return { kind: 'none', failure: { type: 'sts-policy-fetch-error', detail: 'txt: temporary DNS failure' } };
    const t = parseStsTxt(r.records);
    if (t.kind === 'ok') return t;
    // Several or invalid STSv1 records: no policy as far as DNS goes (RFC 8461 3.1).
    return t.reason === 'no-record' ? { kind: 'none' } : { kind: 'none', failure: { type: 'sts-policy-invalid', detail: `txt: ${t.reason}` } };
  }

  private async store(domain: string, id: string, fetched: Extract<FetchResult, { kind: 'ok' }>): Promise<StsCacheEntry> {
    const fetchedAt = this.now();
    const expiresAt = fetchedAt + fetched.policy.maxAge * 1000;
    const entry: StsCacheEntry = { domain, id, policy: fetched.policy, text: fetched.text, fetchedAt, expiresAt, refreshAt: refreshTime(fetchedAt, expiresAt, this.random()) };
    try {
      await this.cache.put(entry);
    } catch (err) {
      this.onEvent({ event: 'mta_sts_store_failed', domain, detail: String((err as Error)?.message ?? err) });
    }
    return entry;
  }

  private retryDelay(e: StsCacheEntry): number {
    const lead = leadTime(e.expiresAt - e.fetchedAt);
    return Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, lead / 4)) * (1 + this.random() / 2);
  }
}

/** How long before expiry the refresh window opens: a quarter of max_age, at most a day. */
export function leadTime(maxAgeMs: number): number {
  return Math.min(maxAgeMs / 4, DAY_MS);
}

/** The refresh time of an entry, with `u` in [0, 1) as the jitter. */
export function refreshTime(fetchedAt: number, expiresAt: number, u: number): number {
  const lead = leadTime(expiresAt - fetchedAt);
  return Math.max(fetchedAt, Math.round(expiresAt - lead * (1 + u / 2)));
}

function fromCache(e: StsCacheEntry): Extract<StsAnswer, { kind: 'policy' }> {
  return { kind: 'policy', policy: e.policy, id: e.id, source: 'cache', expiresAt: e.expiresAt };
}

/** A recipient domain as the cache keys it: A-labels, lower case, no trailing dot. */
export function normaliseDomain(domain: string): string | undefined {
  const ascii = domainToASCII(domain.replace(/\.$/, ''));
  return ascii ? normaliseName(ascii) : undefined;
}
