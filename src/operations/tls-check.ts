/*
 * `mailveil tls check DOMAIN`: what mx delivery would do for a recipient
 * domain, and whether its MX hosts can meet it, in the manner of Postfix's
 * posttls-finger. It resolves the policy exactly as delivery does
 * (tls/policy.ts: static map, DANE, MTA-STS, tls.default_level), then makes
 * a real STARTTLS handshake to each MX host (up to delivery.max_mx) and
 * reports protocol, cipher, certificate names, PKIX verification (system
 * store plus tls.ca_file), DANE verification where TLSA applies, and the
 * certificate name check the level asks for. It never sends MAIL.
 *
 * The MTA-STS cache in state_dir is read, never written (read-only-cache.ts):
 * a policy fetched here is shown as `fetched (not stored)`.
 *
 * `ok` (exit 0 in the CLI) means the domain's policy can be met by at least
 * one MX host as probed now; a bounce, a deferral, or no host meeting its
 * level is `ok: false` (exit 1).
 */
import type { X509Certificate } from 'node:crypto';
import type { Config } from '../config/load';
import { DnsClient } from '../dns/client';
import { DnsLookups } from '../dns/lookups';
import { stsLookups } from '../mta-sts/dns';
import { ReadOnlyStsCache } from '../mta-sts/read-only-cache';
import { StsResolver, type StsAnswer } from '../mta-sts/resolve';
import { trustedCas } from '../mta-sts/fetch';
import { verifyDane } from '../tls/dane';
import { certNames, nameMatch } from '../tls/names';
import { resolveDomainPolicy, type DomainPolicy, type MxTarget } from '../tls/policy';
import type { StaticTlsEntry } from '../tls/levels';
import { probeStartTls, type ProbeResult } from './tls-probe';

/** Each probe step (connect, a reply, the handshake) waits at most this long: a check must not hang. */
export const MAX_PROBE_STEP_MS = 30_000;

export interface TlsCheckOptions {
  config: Config;
  /** The static map lookup of the loaded rule set. */
  staticPolicy?: (domain: string) => StaticTlsEntry | undefined;
  /** Port of the MX hosts (25; tests only give another). */
  port?: number;
  now?: () => number;
}

export interface HostReport {
  host: string;
  preference: number;
  addresses: string[];
  address_secure: boolean;
  source: MxTarget['source'];
  level: MxTarget['level'];
  match?: string[];
  dane: { state: string; why?: string; records?: string[] };
  mta_sts_match?: boolean;
  skip?: MxTarget['skip'];
  probe?: {
    ip: string;
    port: number;
    connected: boolean;
    banner?: string;
    starttls: ProbeResult['starttls'];
    protocol?: string | null;
    cipher?: string;
    certificate?: { subject: string; names: string[]; issuer: string; valid_to: string };
    pkix?: { trusted: boolean; error?: string };
    name_match?: { ok: boolean; names: string[]; matched?: string };
    dane?: { ok: boolean; usage?: number; depth?: number; failure?: string; detail?: string; no_usable?: boolean };
    error?: string;
  };
  /** The host's level is met by what the probe saw. */
  met: boolean;
  why?: string;
}

export interface TlsCheckReport {
  domain: string;
  mx: DomainPolicy['mxLookup'];
  static: { domain: string; level: string; match?: string[]; file?: string; line?: number; layer?: string } | null;
  mta_sts: StsReport;
  effective: { source: DomainPolicy['source']; level: DomainPolicy['level']; match?: string[] };
  outcome: DomainPolicy['outcome'];
  hosts: HostReport[];
  ok: boolean;
}

type StsReport =
  | { enabled: false }
  | { enabled: true; state: 'none'; failure?: { type: string; detail: string } }
  /** A static tls_policy entry decides: MTA-STS is not asked. */
  | { enabled: true; state: 'not-consulted' }
  | { enabled: true; state: 'defer'; detail: string; failure?: { type: string; detail: string } }
  | { enabled: true; state: 'policy'; mode: string; mx: string[]; max_age: number; id: string; cache: 'cached' | 'fetched (not stored)'; expires_at: string; failure?: { type: string; detail: string } };

function stsReport(config: Config, a: StsAnswer | undefined, staticEntry: boolean): StsReport {
  if (!config.tls.mta_sts) return { enabled: false };
  if (staticEntry) return { enabled: true, state: 'not-consulted' };
  if (!a) return { enabled: true, state: 'none' };
  const failure = a.failure ? { failure: { type: a.failure.type, detail: a.failure.detail } } : {};
  if (a.kind === 'none') return { enabled: true, state: 'none', ...failure };
  if (a.kind === 'defer') return { enabled: true, state: 'defer', detail: a.detail, ...failure };
  return {
    enabled: true,
    state: 'policy',
    mode: a.policy.mode,
    mx: a.policy.mx,
    max_age: a.policy.maxAge,
    id: a.id,
    cache: a.source === 'cache' ? 'cached' : 'fetched (not stored)',
    expires_at: new Date(a.expiresAt).toISOString(),
    ...failure,
  };
}

/** Subject alternative DNS names of a certificate, else its CN. */
export { certNames, nameMatch };

function tlsaText(r: { usage: number; selector: number; matchingType: number; data: Buffer }): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

export async function tlsCheck(domain: string, o: TlsCheckOptions): Promise<TlsCheckReport> {
  const { config } = o;
  const dns = new DnsLookups(new DnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout }));
  const ca = config.tls.ca_file ? trustedCas(config.tls.ca_file.pem) : undefined;
  const sts = config.tls.mta_sts
    ? new StsResolver({ cache: new ReadOnlyStsCache(config.state_dir), ...stsLookups(dns), ...(config.tls.ca_file ? { ca: config.tls.ca_file.pem } : {}), ...(o.now ? { now: o.now } : {}) })
    : undefined;
  const policy = await resolveDomainPolicy(domain, {
    lookups: dns,
    staticPolicy: o.staticPolicy,
    sts,
    dane: config.tls.dane,
    defaultLevel: config.tls.default_level,
    maxMx: config.delivery.max_mx,
  });
  const port = o.port ?? 25;
  const hosts = await Promise.all(policy.mx.map((t) => checkHost(t, port, config, ca)));
  const e = policy.static;
  return {
    domain: policy.domain,
    mx: policy.mxLookup,
    static: e ? { domain: e.key, level: e.level, ...(e.match ? { match: e.match } : {}), ...(e.source ? { file: e.source.file, line: e.source.line, layer: e.source.layer ?? 'shipped' } : {}) } : null,
    mta_sts: stsReport(config, policy.sts, policy.static !== undefined),
    effective: { source: policy.source, level: policy.level, ...(policy.match ? { match: policy.match } : {}) },
    outcome: policy.outcome,
    hosts,
    ok: policy.outcome.kind === 'deliver' && hosts.some((h) => h.met),
  };
}

async function checkHost(t: MxTarget, port: number, config: Config, ca: (string | Buffer)[] | undefined): Promise<HostReport> {
  const dane: HostReport['dane'] = { state: t.dane.state };
  if (t.dane.state === 'not-looked-up') dane.why = t.dane.why;
  if (t.dane.state === 'usable' || t.dane.state === 'no-usable') dane.records = t.dane.records.map(tlsaText);
  const r: HostReport = {
    host: t.host,
    preference: t.preference,
    addresses: [...t.ipv4, ...t.ipv6],
    address_secure: t.addressSecure,
    source: t.source,
    level: t.level,
    ...(t.match ? { match: t.match } : {}),
    dane,
    ...(t.stsMatch !== undefined ? { mta_sts_match: t.stsMatch } : {}),
    ...(t.skip ? { skip: t.skip } : {}),
    met: false,
  };
  const ip = t.ipv4[0] ?? t.ipv6[0];
  if (!ip) {
    r.why = t.skip?.reason ?? 'no address';
    return r;
  }
  const p = await probeStartTls({ ip, port, servername: t.host, helo: config.hostname, ca, timeoutMs: Math.min(MAX_PROBE_STEP_MS, Math.max(config.timeouts.next_hop_connect, config.timeouts.next_hop_command)) });
  const probe: NonNullable<HostReport['probe']> = { ip, port, connected: p.connected, ...(p.banner ? { banner: p.banner } : {}), starttls: p.starttls, ...(p.error ? { error: p.error } : {}) };
  r.probe = probe;
  const leaf = p.tls?.chain[0];
  if (p.tls) {
    probe.protocol = p.tls.protocol;
    probe.cipher = p.tls.cipher;
    probe.pkix = { trusted: p.tls.trusted, ...(p.tls.trustError ? { error: p.tls.trustError } : {}) };
    if (leaf) probe.certificate = { subject: leaf.subject.replace(/\n/g, ', '), names: certNames(leaf), issuer: leaf.issuer.replace(/\n/g, ', '), valid_to: leaf.validTo };
    const names = t.match ?? [t.host];
    const matched = leaf ? nameMatch(leaf, names) : undefined;
    probe.name_match = { ok: matched !== undefined, names, ...(matched ? { matched } : {}) };
    if (t.dane.state === 'usable') {
      const d = verifyDane({ chain: p.tls.chain, records: t.dane.records, names: t.match ?? [t.host] });
      probe.dane = d.ok === true ? { ok: true, usage: d.usage, depth: d.depth } : d.ok === false ? { ok: false, failure: d.failure, detail: d.detail } : { ok: false, no_usable: true };
    }
  }
  [r.met, r.why] = judge(t, p, probe);
  return r;
}

/** Would delivery at this host's level go ahead with what the probe saw? */
function judge(t: MxTarget, p: ProbeResult, probe: NonNullable<HostReport['probe']>): [boolean, string | undefined] {
  if (t.skip) return [false, t.skip.reason];
  if (!p.connected || (p.error && !p.tls && p.starttls !== 'not-offered')) {
    if (t.level === 'may' || t.level === 'none') {
      // may: a failed handshake falls back to plain text, but only on a new connection that reached EHLO.
      if (p.connected && p.ehlo) return [true, `TLS failed (${p.error}); may falls back to plain text`];
    }
    return [false, p.error ?? 'could not connect'];
  }
  switch (t.level) {
    case 'none':
      return [true, undefined];
    case 'may':
      return [true, p.tls ? undefined : 'no STARTTLS: plain text at level may'];
    case 'encrypt':
      return p.tls ? [true, undefined] : [false, 'STARTTLS not offered (starttls-not-supported)'];
    case 'dane':
    case 'dane-only':
      if (!p.tls) return [false, 'STARTTLS not offered (starttls-not-supported)'];
      return probe.dane?.ok ? [true, undefined] : [false, `DANE: ${probe.dane?.failure ?? 'no match'}${probe.dane?.detail ? `: ${probe.dane.detail}` : ''}`];
    case 'verify':
    case 'secure':
      if (!p.tls) return [false, 'STARTTLS not offered (starttls-not-supported)'];
      if (!p.tls.trusted) return [false, `certificate not trusted (${p.tls.trustError ?? 'unknown'})`];
      if (!probe.name_match?.ok) return [false, `certificate names none of ${(probe.name_match?.names ?? []).join(', ')} (certificate-host-mismatch)`];
      return [true, undefined];
  }
}

/** The report as posttls-finger-like text. */
export function tlsCheckText(r: TlsCheckReport): string {
  const L: string[] = [];
  L.push(`domain: ${r.domain}`);
  const mxSec = r.mx.secure === undefined ? '' : r.mx.secure ? ' (DNSSEC: secure, AD)' : ' (DNSSEC: insecure, no AD)';
  L.push(`MX lookup: ${r.mx.kind}${mxSec}${r.mx.detail ? `: ${r.mx.detail}` : ''}`);
  for (const h of r.hosts) L.push(`  ${String(h.preference).padStart(3)} ${h.host}  ${h.addresses.join(' ') || '(no address)'}${h.addresses.length ? (h.address_secure ? '  (addresses: secure)' : '  (addresses: insecure)') : ''}`);
  L.push(`static tls_policy: ${r.static ? `${r.static.domain} ${r.static.level}${r.static.match ? ` match=${r.static.match.join(',')}` : ''}${r.static.file ? ` (${r.static.layer}, ${r.static.file}:${r.static.line})` : ''}` : 'none'}`);
  const s = r.mta_sts;
  let stsLine: string;
  if (!s.enabled) stsLine = 'off (tls.mta_sts: false)';
  else if (s.state === 'none') stsLine = 'no policy';
  else if (s.state === 'not-consulted') stsLine = 'not consulted (the static tls_policy entry decides)';
  else if (s.state === 'defer') stsLine = `cache error, delivery defers: ${s.detail}`;
  else stsLine = `mode ${s.mode}, mx ${s.mx.join(' ') || '-'}, max_age ${s.max_age}, id ${s.id}, ${s.cache}, expires ${s.expires_at}`;
  if (s.enabled && 'failure' in s && s.failure) stsLine += ` [${s.failure.type}: ${s.failure.detail}]`;
  L.push(`MTA-STS: ${stsLine}`);
  L.push(`effective policy: level ${r.effective.level}, decided by ${r.effective.source}${r.effective.match ? `, match ${r.effective.match.join(', ')}` : ''}`);
  const o = r.outcome;
  L.push(`outcome: ${o.kind === 'deliver' ? 'deliver' : `${o.kind} ${o.reply} ${o.enhanced} (${o.reason})`}`);
  for (const h of r.hosts) {
    L.push('');
    L.push(`${h.host}${h.probe ? `[${h.probe.ip}]:${h.probe.port}` : ''}: level ${h.level} (${h.source})`);
    const d = h.dane;
    L.push(`  DANE/TLSA: ${d.state}${d.why ? ` (${d.why})` : ''}${d.records ? `: ${d.records.join('; ')}` : ''}`);
    if (h.mta_sts_match !== undefined) L.push(`  MTA-STS mx patterns: ${h.mta_sts_match ? 'match' : 'no match'}`);
    if (h.skip) L.push(`  not tried by delivery: ${h.skip.reply} ${h.skip.enhanced} ${h.skip.reason}`);
    const p = h.probe;
    if (p) {
      if (p.banner) L.push(`  banner: ${p.banner}`);
      L.push(`  STARTTLS: ${p.starttls}`);
      if (p.protocol !== undefined) L.push(`  TLS: ${p.protocol} ${p.cipher}`);
      if (p.certificate) L.push(`  certificate: ${p.certificate.subject}; names ${p.certificate.names.join(', ')}; issuer ${p.certificate.issuer}; valid to ${p.certificate.valid_to}`);
      if (p.pkix) L.push(`  PKIX chain: ${p.pkix.trusted ? 'trusted' : `untrusted (${p.pkix.error})`}`);
      if (p.name_match) L.push(`  name check: ${p.name_match.ok ? `matched ${p.name_match.matched}` : 'no match'} (names: ${p.name_match.names.join(', ')})`);
      if (p.dane) L.push(`  DANE verification: ${p.dane.ok ? `verified (usage ${p.dane.usage}, depth ${p.dane.depth})` : `failed: ${p.dane.failure ?? 'no usable record'}${p.dane.detail ? ` (${p.dane.detail})` : ''}`}`);
      if (p.error) L.push(`  error: ${p.error}`);
    }
    L.push(`  result: ${h.met ? 'policy met' : 'policy NOT met'}${h.why ? ` (${h.why})` : ''}`);
  }
  L.push('');
  L.push(r.ok ? 'ok: the policy can be met by at least one MX host' : 'not ok: no MX host meets the policy');
  return L.join('\n') + '\n';
}
