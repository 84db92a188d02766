/*
 * Outbound TLS levels for mx delivery, with Postfix's names and meanings
 * (smtp_tls_security_level): none, may, encrypt, dane, dane-only, verify,
 * secure. Shared by the static `tls_policy:` map (rules), the per-domain
 * policy resolver (policy.ts) and `mailveil tls check`.
 *
 *   none       never STARTTLS
 *   may        STARTTLS when offered, any certificate, else plain text
 *   encrypt    STARTTLS or no delivery, any certificate
 *   dane       DANE when the MX host has usable secure TLSA records; a
 *              secure TLSA RRset with none usable: encrypt; no DANE: may
 *   dane-only  DANE or no delivery (4.7.5)
 *   verify     STARTTLS, a WebPKI-trusted chain, a certificate naming a
 *              `match` name (default: the MX host name, Postfix's `hostname`)
 *   secure     as verify, default match: the domain and its subdomains
 *              (Postfix's `nexthop, dot-nexthop`), never the MX name alone
 */
export const TLS_LEVELS = ['none', 'may', 'encrypt', 'dane', 'dane-only', 'verify', 'secure'] as const;
export type TlsLevel = (typeof TLS_LEVELS)[number];

/** Where a static entry was written (a rule file), for `rules check` and `tls check`. */
export interface StaticTlsSource {
  file: string;
  line: number;
  layer?: 'shipped' | 'local';
  /** For a local entry that replaced a shipped one: `file:line` of the shipped entry. */
  replaces?: string;
}

/** One `tls_policy:` entry. */
export interface StaticTlsEntry {
  /** The key as normalised: lower case, no trailing dot; `.example.com` covers subdomains only. */
  key: string;
  level: TlsLevel;
  /**
   * Certificate names for verify/secure (and for DANE-TA name checks):
   * literal names, `.example.com` for any name below it, or Postfix's
   * keywords `hostname` (the MX host), `nexthop` (the recipient domain) and
   * `dot-nexthop` (any name below it).
   */
  match?: string[];
  source?: StaticTlsSource;
}

/** The static map, keyed by the normalised key. */
export type StaticTlsMap = ReadonlyMap<string, StaticTlsEntry>;

/** A `tls_policy:` key: a domain, or `.domain` for its subdomains. ASCII (A-labels) only. */
export const TLS_POLICY_KEY_RE = /^\.?([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.?$/;

export function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/\.$/, '');
}

/**
 * Postfix's lookup order for smtp_tls_policy_maps with `parent_domain_matches_subdomains`
 * off: the exact domain first, then `.parent` entries from the nearest parent
 * up. `.example.com` matches `mx.example.com` and `a.b.example.com`, never
 * `example.com` itself.
 */
export function staticPolicy(map: StaticTlsMap | undefined, domain: string): StaticTlsEntry | undefined {
  if (!map || map.size === 0) return undefined;
  const d = normaliseKey(domain);
  const exact = map.get(d);
  if (exact) return exact;
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) {
    const hit = map.get('.' + labels.slice(i).join('.'));
    if (hit) return hit;
  }
  return undefined;
}

/** The match names a level uses for one MX host, keywords expanded. */
export function matchNames(level: TlsLevel, match: readonly string[] | undefined, mxHost: string, domain: string): string[] {
  const d = normaliseKey(domain);
  const words = match && match.length ? match : level === 'secure' ? ['nexthop', 'dot-nexthop'] : ['hostname'];
  return words.map((w) => (w === 'hostname' ? normaliseKey(mxHost) : w === 'nexthop' ? d : w === 'dot-nexthop' ? '.' + d : normaliseKey(w)));
}
