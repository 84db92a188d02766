/*
 * The TLS policy for one recipient domain in mx delivery: which MX hosts to
 * try, in what order, and at which TLS level each, with the source that
 * decided. Pure logic over injected lookups (DNS, MTA-STS, the static map),
 * so every branch is unit-tested with fakes; it connects to nothing.
 *
 * Sources, strongest first (the first that applies decides, per MX host):
 *
 *   static    a `tls_policy:` entry for the domain (exact, then nearest
 *             `.parent`): its level for every MX host. A static dane or
 *             dane-only still uses the DANE data of each host (below).
 *   dane      `tls.dane`, the MX RRset secure, the host's A/AAAA secure, and
 *             its TLSA RRset (RFC 7672 2.2) secure:
 *               usable records      -> dane (verified against TLSA)
 *               none usable         -> encrypt (Postfix)
 *               bogus / SERVFAIL /
 *               other temp failure  -> that host defers, 451 4.7.5
 *               insecure, or proven
 *               absent (NXDOMAIN/NODATA with AD) -> no DANE for that host
 *             TLSA is asked only when the host's address answer was secure
 *             (and the MX answer, as Postfix does: an insecure MX RRset
 *             could have been forged to point at an attacker's signed host).
 *   mta-sts   `tls.mta_sts` and a policy in mode enforce: only MX hosts
 *             matching its patterns, each at verify with its own name.
 *             Never for a host DANE already governs (RFC 8461 2).
 *             Mode testing decides nothing: the host stays at the default
 *             level, and the mismatch is reported (`sts.failure`).
 *   default   `tls.default_level` (may unless configured).
 *
 * The default level and a static entry may themselves be dane or dane-only:
 * then a host without DANE is at may (dane) or defers 4.7.5 (dane-only,
 * RFC 8460 `dane-required`). DANE never downgrades: no outcome here turns a
 * host with TLSA data into plain text or unverified TLS, other than a static
 * entry the operator wrote for that domain.
 *
 * Domain outcomes that are not a TLS matter (typed, delivery picks replies):
 *   null MX (RFC 7505)                  bounce 556 5.1.10
 *   NXDOMAIN, or no MX and no address   bounce 550 5.4.4  (Postfix: "Host or
 *                                       domain name not found", dsn 5.4.4)
 *   MX lookup temp failure              defer  451 4.4.3
 *   every host fails its address lookup defer  451 4.4.3
 *   every host excluded by TLS policy   defer  451 4.7.5
 * MX hosts beyond `maxMx` (preference order) are not considered.
 */
import type { AddressResult, MxResult, TlsaRecord, TlsaResult } from '../dns/lookups';
import type { StsAnswer } from '../mta-sts/resolve';
import { mxInPolicy } from '../mta-sts/policy';
import { usable } from './tlsa';
import { matchNames, type StaticTlsEntry, type TlsLevel } from './levels';

export type PolicySource = 'static' | 'dane' | 'mta-sts' | 'default';

/** What the resolver needs from DNS (DnsLookups has exactly these). */
export interface PolicyLookups {
  mx(domain: string): Promise<MxResult>;
  addresses(host: string): Promise<AddressResult>;
  tlsa(host: string, port?: number): Promise<TlsaResult>;
}

export interface PolicyDeps {
  lookups: PolicyLookups;
  /** The static map lookup (rules' staticPolicy over the live set); absent: no static map. */
  staticPolicy?: (domain: string) => StaticTlsEntry | undefined;
  /** The MTA-STS resolver; absent when `tls.mta_sts` is off. */
  sts?: { policyFor(domain: string): Promise<StsAnswer> };
  /** `tls.dane`. */
  dane: boolean;
  /** `tls.default_level`. */
  defaultLevel: TlsLevel;
  /** `delivery.max_mx`. */
  maxMx: number;
}

/** What DANE found for one MX host. */
export type HostDane =
  | { state: 'usable'; records: TlsaRecord[] }
  /** Secure TLSA RRset, none usable: encrypt. */
  | { state: 'no-usable'; records: TlsaRecord[] }
  /** Signed zone, no TLSA RRset: no DANE for this host. */
  | { state: 'none-secure' }
  | { state: 'insecure' }
  | { state: 'bogus' }
  | { state: 'temp'; detail: string }
  /** Not asked, and why. */
  | { state: 'not-looked-up'; why: 'dane-off' | 'mx-insecure' | 'address-insecure' | 'no-address' | 'static-level' };

export interface HostFailure {
  /** 451 4.7.5 for TLS policy, 451 4.4.3 for DNS. */
  reply: '451';
  enhanced: '4.7.5' | '4.4.3';
  /** RFC 8460 result type where there is one. */
  type?: 'tlsa-invalid' | 'dane-required' | 'validation-failure' | 'sts-policy-fetch-error';
  reason: string;
}

export interface MxTarget {
  host: string;
  preference: number;
  ipv4: string[];
  ipv6: string[];
  /** The AD bit of the host's A/AAAA answer. */
  addressSecure: boolean;
  dane: HostDane;
  source: PolicySource;
  /** The level this host is delivered at (dane only when `dane.state` is usable). */
  level: TlsLevel;
  /** Certificate names for verify/secure (and DANE-TA), keywords expanded. */
  match?: string[];
  /** Under an MTA-STS policy: does the host match its mx patterns? */
  stsMatch?: boolean;
  /** Set when this host is not to be tried. */
  skip?: HostFailure;
}

export type DomainOutcome =
  | { kind: 'deliver' }
  | { kind: 'defer'; reply: '451'; enhanced: '4.4.3' | '4.7.5'; reason: string }
  | { kind: 'bounce'; reply: '556' | '550'; enhanced: '5.1.10' | '5.4.4'; reason: 'null-mx' | 'nxdomain' | 'nodata' };

export interface DomainPolicy {
  domain: string;
  /** The source that decided: the strongest among the hosts that may be tried (else among all). */
  source: PolicySource;
  /** The strongest level among the hosts of that source. */
  level: TlsLevel;
  match?: string[];
  static?: StaticTlsEntry;
  mxLookup: { kind: MxResult['kind']; secure?: boolean; detail?: string };
  /** Up to maxMx hosts, preference order; hosts with `skip` are not to be tried. */
  mx: MxTarget[];
  sts?: StsAnswer;
  outcome: DomainOutcome;
}

const SOURCE_RANK: Record<PolicySource, number> = { static: 3, dane: 2, 'mta-sts': 1, default: 0 };
const LEVEL_RANK: Record<TlsLevel, number> = { none: 0, may: 1, encrypt: 2, dane: 4, 'dane-only': 4, verify: 3, secure: 3 };

const tlsDefer = (type: HostFailure['type'], reason: string): HostFailure => ({ reply: '451', enhanced: '4.7.5', ...(type ? { type } : {}), reason });

export async function resolveDomainPolicy(domain: string, deps: PolicyDeps): Promise<DomainPolicy> {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const entry = deps.staticPolicy?.(d);
  const base = { domain: d, ...(entry ? { static: entry } : {}) };
  const mx = await deps.lookups.mx(d);
  const mxLookup = mx.kind === 'temp' ? { kind: mx.kind, detail: `${mx.reason}: ${mx.detail}` } : { kind: mx.kind, secure: mx.secure };
  const none = (outcome: DomainOutcome): DomainPolicy => ({ ...base, source: entry ? 'static' : 'default', level: entry?.level ?? deps.defaultLevel, mxLookup, mx: [], outcome });
  switch (mx.kind) {
    case 'temp':
      return none({ kind: 'defer', reply: '451', enhanced: '4.4.3', reason: `MX lookup failed (${mx.reason})` });
    case 'null-mx':
      return none({ kind: 'bounce', reply: '556', enhanced: '5.1.10', reason: 'null-mx' });
    case 'nxdomain':
    case 'nodata':
      return none({ kind: 'bounce', reply: '550', enhanced: '5.4.4', reason: mx.kind });
  }
  const hosts = (mx.kind === 'mx' ? mx.hosts : [{ exchange: d, preference: 0 }]).slice(0, Math.max(1, deps.maxMx));
  // Only a static entry (whatever its level) stops MTA-STS from being asked at all.
  const sts = !entry && deps.sts ? await deps.sts.policyFor(d) : undefined;
  const targets = await Promise.all(hosts.map((h) => resolveHost(d, h.exchange, h.preference, mx.secure, entry, sts, deps)));
  return { ...base, ...summarise(targets, entry), mxLookup, mx: targets, ...(sts ? { sts } : {}), outcome: outcomeOf(targets) };
}

async function resolveHost(domain: string, host: string, preference: number, mxSecure: boolean, entry: StaticTlsEntry | undefined, sts: StsAnswer | undefined, deps: PolicyDeps): Promise<MxTarget> {
  const addr = await deps.lookups.addresses(host);
  const t: MxTarget = { host, preference, ipv4: [], ipv6: [], addressSecure: false, dane: { state: 'not-looked-up', why: 'no-address' }, source: 'default', level: deps.defaultLevel };
  if (addr.kind === 'addresses') {
    t.ipv4 = addr.ipv4;
    t.ipv6 = addr.ipv6;
    t.addressSecure = addr.secure;
  }
  const wantLevel = entry?.level ?? deps.defaultLevel;
  const daneWanted = entry ? entry.level === 'dane' || entry.level === 'dane-only' : deps.dane || wantLevel === 'dane' || wantLevel === 'dane-only';
  if (addr.kind !== 'addresses' || addr.ipv4.length + addr.ipv6.length === 0) {
    t.dane = { state: 'not-looked-up', why: 'no-address' };
  } else if (!daneWanted) t.dane = { state: 'not-looked-up', why: entry ? 'static-level' : 'dane-off' };
  else if (!mxSecure) t.dane = { state: 'not-looked-up', why: 'mx-insecure' };
  else if (!addr.secure) t.dane = { state: 'not-looked-up', why: 'address-insecure' };
  else t.dane = daneOf(await deps.lookups.tlsa(host, 25));

  if (entry) {
    t.source = 'static';
    applyLevel(t, entry.level, entry.match, domain);
  } else {
    const daneDecides = t.dane.state === 'usable' || t.dane.state === 'no-usable' || t.dane.state === 'bogus' || t.dane.state === 'temp';
    if (daneDecides && (deps.dane || wantLevel === 'dane' || wantLevel === 'dane-only')) {
      t.source = 'dane';
      applyLevel(t, wantLevel === 'dane-only' ? 'dane-only' : 'dane', undefined, domain);
    } else if (sts?.kind === 'defer') {
      t.source = 'mta-sts';
      t.level = 'verify';
      t.skip = { reply: '451', enhanced: '4.7.5', type: 'sts-policy-fetch-error', reason: `mta-sts: ${sts.detail}` };
    } else if (sts?.kind === 'policy' && sts.policy.mode !== 'none') {
      t.stsMatch = mxInPolicy(sts.policy, host);
      if (sts.policy.mode === 'enforce') {
        t.source = 'mta-sts';
        t.level = 'verify';
        t.match = [host];
        if (!t.stsMatch) t.skip = tlsDefer('validation-failure', `mta-sts enforce: ${host} does not match the policy's mx patterns`);
      } else {
        t.source = 'default';
        applyLevel(t, deps.defaultLevel, undefined, domain);
      }
    } else {
      t.source = 'default';
      applyLevel(t, deps.defaultLevel, undefined, domain);
    }
  }
  // No address at all overrides everything: a DNS failure, not a TLS one.
  if (addr.kind === 'temp') t.skip = { reply: '451', enhanced: '4.4.3', reason: `address lookup failed (${addr.reason})` };
  else if (addr.kind === 'nxdomain' || addr.ipv4.length + addr.ipv6.length === 0) t.skip = { reply: '451', enhanced: '4.4.3', reason: 'MX host has no address' };
  return t;
}

function daneOf(r: TlsaResult): HostDane {
  switch (r.kind) {
    case 'secure':
      return usable(r.records).length ? { state: 'usable', records: r.records } : { state: 'no-usable', records: r.records };
    case 'none-secure':
      return { state: 'none-secure' };
    case 'insecure':
      return { state: 'insecure' };
    case 'bogus':
      return { state: 'bogus' };
    default:
      return { state: 'temp', detail: `${r.reason}: ${r.detail}` };
  }
}

/** Sets a host's effective level from a wanted one, with DANE's fallbacks. */
function applyLevel(t: MxTarget, level: TlsLevel, match: readonly string[] | undefined, domain: string): void {
  if (level === 'dane' || level === 'dane-only') {
    switch (t.dane.state) {
      case 'usable':
        t.level = level;
        // DANE-TA name checks: the MX host (the TLSA base domain) and the domain (RFC 7672 3.2.2), plus the entry's names.
        t.match = [...new Set([t.host, domain, ...(match ? matchNames(level, match, t.host, domain) : [])])];
        return;
      case 'no-usable':
        t.level = 'encrypt';
        return;
      case 'bogus':
        t.level = level;
        t.skip = tlsDefer('tlsa-invalid', `TLSA for ${t.host} is bogus (SERVFAIL from the validating resolver)`);
        return;
      case 'temp':
        t.level = level;
        t.skip = tlsDefer('tlsa-invalid', `TLSA lookup for ${t.host} failed (${t.dane.detail})`);
        return;
      default:
        if (level === 'dane-only') {
          t.level = 'dane-only';
          t.skip = tlsDefer('dane-required', `dane-only: ${t.host} has no secure TLSA records (${t.dane.state === 'not-looked-up' ? t.dane.why : t.dane.state})`);
        } else t.level = 'may';
        return;
    }
  }
  t.level = level;
  if (level === 'verify' || level === 'secure') t.match = matchNames(level, match, t.host, domain);
}

function summarise(targets: MxTarget[], entry: StaticTlsEntry | undefined): Pick<DomainPolicy, 'source' | 'level' | 'match'> {
  const live = targets.filter((t) => !t.skip);
  const pool = live.length ? live : targets;
  const source = entry ? 'static' : pool.reduce<PolicySource>((s, t) => (SOURCE_RANK[t.source] > SOURCE_RANK[s] ? t.source : s), 'default');
  const of = pool.filter((t) => t.source === source);
  const best = of.reduce<MxTarget | undefined>((b, t) => (!b || LEVEL_RANK[t.level] > LEVEL_RANK[b.level] ? t : b), undefined);
  const level = entry && !best ? entry.level : (best?.level ?? 'may');
  return { source, level, ...(best?.match ? { match: best.match } : {}) };
}

function outcomeOf(targets: MxTarget[]): DomainOutcome {
  if (targets.some((t) => !t.skip)) return { kind: 'deliver' };
  const tls = targets.find((t) => t.skip?.enhanced === '4.7.5');
  if (tls) return { kind: 'defer', reply: '451', enhanced: '4.7.5', reason: tls.skip!.reason };
  return { kind: 'defer', reply: '451', enhanced: '4.4.3', reason: targets[0]?.skip?.reason ?? 'no MX host to try' };
}
