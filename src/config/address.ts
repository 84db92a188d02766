/* host:port endpoints and CIDR lists, checked with node's own net module. */
import { BlockList, isIP } from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or `v6-address:port`; undefined when malformed. */
export function parseEndpoint(text: unknown): Endpoint | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:\s]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const host = m[1];
  if (text.startsWith('[') && isIP(host) !== 6) return undefined;
  if (!isIP(host) && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(host)) return undefined;
  return { host, port };
}

export function formatEndpoint(e: Endpoint): string {
  return isIP(e.host) === 6 ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Parses `addr/len` or a bare address (a host route). */
export function parseCidr(text: unknown): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  if (typeof text !== 'string') return undefined;
  const [address, len, ...rest] = text.trim().split('/');
  if (rest.length) return undefined;
  const v = isIP(address);
  if (!v) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * Matches addresses against a CIDR list. IPv4-mapped IPv6 (::ffff:a.b.c.d),
 * as a dual-stack socket reports IPv4 peers, is checked as IPv4.
 */
export class CidrSet {
  private readonly list = new BlockList();

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const p = parseCidr(c);
      if (!p) throw new Error(`not a CIDR: ${c}`);
      this.list.addSubnet(p.address, p.prefix, p.family);
    }
  }

  has(address: string): boolean {
    const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/^ipv6:/i, '');
    const v = isIP(a);
    if (!v) return false;
    return this.list.check(a, v === 4 ? 'ipv4' : 'ipv6');
  }
}
