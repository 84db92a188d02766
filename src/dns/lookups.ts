/*
 * The lookups outbound delivery makes, as typed results (RFC 5321 5.1 for
 * MX and the implicit MX, RFC 7505 for the null MX, RFC 7672 2.2 for TLSA,
 * RFC 8461 3.1 for the MTA-STS TXT record).
 *
 * Every failure to get an answer is a value, `temp`, never an exception:
 * a timeout, REFUSED everywhere, a malformed answer, and SERVFAIL, which a
 * validating resolver gives for bogus data and for unreachable servers
 * alike. Delivery defers on `temp`. The one exception thrown is DnsError of
 * kind 'name' for a name that is not a valid host name (check with
 * canonicalHost first when the name comes from outside).
 *
 * `secure` is the resolver's AD bit for the answer the result comes from;
 * for results built from two answers (A and AAAA, or MX then A/AAAA for an
 * implicit MX) both must have it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { DnsError } from './errors';
import { recordsFor } from './answers';
import { canonicalHost, requireHost, requireServiceName } from './names';
import type { DnsQuerier, DnsResponse, QueryType } from './client';

export type TempReason = 'servfail' | 'timeout' | 'network' | 'refused' | 'malformed' | 'rcode' | 'bad-mx-names';

export interface Temp {
  kind: 'temp';
  reason: TempReason;
  /** For logs: the rcode or the error message. */
  detail: string;
}

export interface MxHost {
  exchange: string;
  preference: number;
}

export type MxResult =
  /** Sorted by preference; ties keep the answer's order (shuffling them is delivery's choice). */
  | { kind: 'mx'; hosts: MxHost[]; secure: boolean }
  /** RFC 7505: the domain accepts no mail (every MX is "."): 556 5.1.10. */
  | { kind: 'null-mx'; secure: boolean }
  /** No MX, but the domain has addresses: it is its own MX, preference 0. */
  | { kind: 'implicit'; secure: boolean }
  /** The domain exists but has neither MX nor A/AAAA: nowhere to deliver. */
  | { kind: 'nodata'; secure: boolean }
  | { kind: 'nxdomain'; secure: boolean }
  | Temp;

export type AddressResult =
  /** Empty lists when the name exists without addresses. */
  | { kind: 'addresses'; ipv4: string[]; ipv6: string[]; secure: boolean }
  | { kind: 'nxdomain'; secure: boolean }
  | Temp;

export interface TlsaRecord {
  usage: number;
  selector: number;
  matchingType: number;
  data: Buffer;
}

export type TlsaResult =
  | { kind: 'secure'; records: TlsaRecord[] }
  /** Not signed (no AD bit), whether records came or not: no DANE. */
  | { kind: 'insecure' }
  /** Signed, and proven to have no TLSA records (NXDOMAIN or NODATA with AD). */
  | { kind: 'none-secure' }
  /** SERVFAIL from the validating resolver: bogus or unreachable, defer. */
  | { kind: 'bogus' }
  | Temp;

export type TxtResult =
  /** One string per RR, its character-strings concatenated; empty when there are none. */
  | { kind: 'txt'; records: string[]; secure: boolean }
  | { kind: 'nxdomain'; secure: boolean }
  | Temp;

function temp(reason: TempReason, detail: string): Temp {
  return { kind: 'temp', reason, detail };
}

/** An answer the lookups can read, or the `temp` it amounts to. */
type Asked = { ok: true; r: DnsResponse } | { ok: false; temp: Temp };

export class DnsLookups {
  constructor(private readonly dns: DnsQuerier) {}

  async mx(domain: string): Promise<MxResult> {
    const name = requireHost(domain);
    const a = await this.ask(name, 'MX');
    if (!a.ok) return a.temp;
    if (a.r.rcode === 'NXDOMAIN') return { kind: 'nxdomain', secure: a.r.secure };
    const records = recordsFor(a.r.answers, name, 'MX');
    if (records.length === 0) return this.implicitMx(name, a.r.secure);
    const real = records.filter((r) => r.data.exchange !== '.' && r.data.exchange !== '');
    if (real.length === 0) return { kind: 'null-mx', secure: a.r.secure };
    const hosts: MxHost[] = [];
    for (const r of real) {
      const exchange = canonicalHost(r.data.exchange);
      if (exchange !== undefined && !hosts.some((h) => h.exchange === exchange)) hosts.push({ exchange, preference: r.data.preference ?? 0 });
    }
    // Postfix defers on a malformed MX name rather than bouncing: the zone may be fixed.
    if (hosts.length === 0) return temp('bad-mx-names', `no MX of ${name} is a valid host name`);
    hosts.sort((x, y) => x.preference - y.preference);
    return { kind: 'mx', hosts, secure: a.r.secure };
  }

  async addresses(host: string): Promise<AddressResult> {
    const name = requireHost(host);
    const [a, aaaa] = await Promise.all([this.ask(name, 'A'), this.ask(name, 'AAAA')]);
    if (!a.ok) return a.temp;
    if (!aaaa.ok) return aaaa.temp;
    const secure = a.r.secure && aaaa.r.secure;
    if (a.r.rcode === 'NXDOMAIN' || aaaa.r.rcode === 'NXDOMAIN') return { kind: 'nxdomain', secure };
    const ipv4 = recordsFor(a.r.answers, name, 'A').map((r) => r.data).filter((ip) => isIPv4(ip));
    const ipv6 = recordsFor(aaaa.r.answers, name, 'AAAA').map((r) => r.data).filter((ip) => isIPv6(ip));
    return { kind: 'addresses', ipv4, ipv6, secure };
  }

  /** TLSA at _port._tcp.host. Ask only when host's addresses were secure (RFC 7672 2.2.2). */
  async tlsa(host: string, port = 25): Promise<TlsaResult> {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`tlsa: bad port ${port}`);
    const name = `_${port}._tcp.${requireHost(host)}`;
    const a = await this.ask(name, 'TLSA');
    if (!a.ok) return a.temp.reason === 'servfail' ? { kind: 'bogus' } : a.temp;
    if (!a.r.secure) return { kind: 'insecure' };
    if (a.r.rcode === 'NXDOMAIN') return { kind: 'none-secure' };
    const records = recordsFor(a.r.answers, name, 'TLSA').map((r) => ({
      usage: r.data.usage,
      selector: r.data.selector,
      matchingType: r.data.matchingType,
      data: Buffer.from(r.data.certificate),
    }));
    return records.length ? { kind: 'secure', records } : { kind: 'none-secure' };
  }

  async txt(owner: string): Promise<TxtResult> {
    const name = requireServiceName(owner);
    const a = await this.ask(name, 'TXT');
    if (!a.ok) return a.temp;
    if (a.r.rcode === 'NXDOMAIN') return { kind: 'nxdomain', secure: a.r.secure };
    // latin1 keeps every byte as one character, so a parser can still reject non-ASCII.
    const records = recordsFor(a.r.answers, name, 'TXT').map((r) => {
      const parts = Array.isArray(r.data) ? r.data : [r.data];
      return parts.map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : p)).join('');
    });
    return { kind: 'txt', records, secure: a.r.secure };
  }

  private async implicitMx(name: string, mxSecure: boolean): Promise<MxResult> {
    const addr = await this.addresses(name);
    if (addr.kind !== 'addresses') return addr;
    const secure = mxSecure && addr.secure;
    return addr.ipv4.length + addr.ipv6.length > 0 ? { kind: 'implicit', secure } : { kind: 'nodata', secure };
  }

  /** One query, with every way of not getting a usable answer turned into `temp`. */
  private async ask(name: string, type: QueryType): Promise<Asked> {
    let r: DnsResponse;
    try {
      r = await this.dns.query(name, type);
    } catch (e) {
      if (e instanceof DnsError && e.kind !== 'name') return { ok: false, temp: temp(e.kind, e.message) };
      throw e;
    }
    if (r.rcode === 'SERVFAIL') return { ok: false, temp: temp('servfail', `SERVFAIL from ${r.server.host}:${r.server.port}`) };
    if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN') return { ok: false, temp: temp('rcode', `${r.rcode} from ${r.server.host}:${r.server.port}`) };
    return { ok: true, r };
  }
}
