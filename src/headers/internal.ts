/*
 * What counts as "internal" for header anonymisation: an address inside the
 * policy's internal_networks, or a host name inside one of its
 * internal_domains (the name itself or any name below it). Names are compared
 * lower-case without a trailing root dot. Address literals follow RFC 5321
 * 4.1.3 ("[10.1.2.3]", "[IPv6:fd00::5]"); an IPv6 zone ("%13", as Exchange
 * writes link-local hops) is dropped before the lookup.
 */
import { isIP } from 'node:net';
import { CidrSet } from '../config/address';

/** A DNS-ish name: letters, digits, '-', '_' (Windows host names) in dot-separated labels. */
const NAME_RE = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$/i;
/** RFC 1035 2.3.4: longer is not a DNS name, so not one of ours. */
const MAX_NAME = 255;

/** The address in a token such as `10.1.2.3`, `IPv6:fd00::5` or `fe80::1%13`; undefined if it is none. */
export function normaliseIp(token: string): string | undefined {
  if (token.length > 64) return undefined;
  let t = token;
  if (t.length > 5 && t.slice(0, 5).toLowerCase() === 'ipv6:') t = t.slice(5);
  const zone = t.indexOf('%');
  if (zone > 0) t = t.slice(0, zone);
  return isIP(t) ? t.toLowerCase() : undefined;
}

/** The canonical form of a host name, or undefined if `token` is not shaped like one (or is an address). */
export function hostName(token: string): string | undefined {
  if (token.length === 0 || token.length > MAX_NAME || !NAME_RE.test(token)) return undefined;
  if (isIP(token)) return undefined;
  const name = token.toLowerCase();
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

export class InternalHosts {
  private readonly networks: CidrSet;
  private readonly suffixes: string[];

  constructor(networks: readonly string[], domains: readonly string[]) {
    this.networks = new CidrSet(networks);
    this.suffixes = [];
    for (const d of domains) {
      const s = d.trim().toLowerCase().replace(/^\.+|\.+$/g, '');
      if (s) this.suffixes.push(s);
    }
  }

  /** `ip` as returned by normaliseIp. */
  hasAddress(ip: string): boolean {
    return this.networks.has(ip);
  }

  /** `name` as returned by hostName. */
  inDomains(name: string): boolean {
    for (const s of this.suffixes) {
      if (name === s || (name.length > s.length && name.endsWith(s) && name.charCodeAt(name.length - s.length - 1) === 0x2e)) return true;
    }
    return false;
  }
}
