/*
 * The two lookups the MTA-STS library is given (types.ts), made from the
 * validating resolver's typed lookups (src/dns). The TXT record of
 * `_mta-sts.<domain>` and the policy host's address both come from
 * `dns.servers`, like every lookup mailveil makes. A temporary DNS failure
 * is `temp` (the resolver then keeps a cached policy), never "no record".
 */
import type { DnsLookups } from '../dns/lookups';
import type { HostLookup, TxtLookup } from './types';

export function stsLookups(dns: Pick<DnsLookups, 'txt' | 'addresses'>): { txt: TxtLookup; lookup: HostLookup } {
  return {
    txt: async (name) => {
      const r = await dns.txt(name);
      if (r.kind === 'temp') return { kind: 'temp' };
      if (r.kind === 'nxdomain' || r.records.length === 0) return { kind: 'none' };
      return { kind: 'ok', records: r.records };
    },
    lookup: async (host) => {
      const r = await dns.addresses(host);
      if (r.kind !== 'addresses') throw new Error(`${host}: ${r.kind === 'temp' ? `temporary DNS failure (${r.reason})` : 'no such host'}`);
      const ip = r.ipv4[0] ?? r.ipv6[0];
      if (!ip) throw new Error(`${host}: no address`);
      return ip;
    },
  };
}
